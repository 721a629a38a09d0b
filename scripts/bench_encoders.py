#!/usr/bin/env python
"""Encoders for what a folder job writes: the category PNG and the composite's JPEG, side by side.

    python scripts/bench_encoders.py [--rounds 7]

PNG: 1920x1080 category masks of the selfie and DeepLab models on bench.py's four pictures
(one of them all background), through every candidate, alternated candidate by candidate within
a round; CPU ms (one thread, ``time.thread_time``) median over rounds and masks, and the mean
file size. Every file is decoded by Pillow and OpenCV and must give the mask back.
JPEG: bench.py's 1920x1080 pictures at quality 95, 4:2:0, each candidate's bytes compared with
Pillow's. Candidates that need a package not installed here (isal, simplejpeg) are skipped.
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import picture, segmenter  # noqa: E402

from segtool.io import encoders  # noqa: E402


def masks() -> list[np.ndarray]:
    found = []
    for model in ("selfie", "deeplab"):
        with segmenter(model, True) as ours:
            found += [ours.segment(picture(1080, 1920, i)).category_mask for i in range(4)]
    return found


def _pillow_png(mask, **options) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(mask).save(stream, format="PNG", **options)
    return stream.getvalue()


def _opencv_png(mask, *params) -> bytes:
    return cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1, *params])[1].tobytes()


def _deflated_png(mask, deflate) -> bytes:
    """A plain PNG (filter None) whose rows ``deflate`` compresses: the zlib library, not the format, varies."""
    height, width = mask.shape
    rows = np.zeros((height, width + 1), np.uint8)
    rows[:, 1:] = mask

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", deflate(rows)) + chunk(b"IEND", b"")


def _zlib_rle(module, level=1):
    def deflate(rows):
        compressor = module.compressobj(level, module.DEFLATED, 15, 9, module.Z_RLE)
        return compressor.compress(rows) + compressor.flush()
    return deflate


def png_candidates() -> dict:
    rle, none = cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_FILTER_NONE
    candidates = {
        "Pillow, zlib level 1, adaptive filters (before)": lambda m: _pillow_png(m, compress_level=1),
        "Pillow, level 6 (its default)": lambda m: _pillow_png(m, compress_level=6),
        "Pillow, optimize=True (level 9)": lambda m: _pillow_png(m, optimize=True),
        "OpenCV, level 1": lambda m: _opencv_png(m),
        "OpenCV, level 1, Z_RLE": lambda m: _opencv_png(m, cv2.IMWRITE_PNG_STRATEGY, rle),
        "OpenCV, level 1, filter None": lambda m: _opencv_png(m, cv2.IMWRITE_PNG_FILTER, none),
        "OpenCV, level 1, Z_RLE, filter None": lambda m: _opencv_png(m, cv2.IMWRITE_PNG_STRATEGY, rle,
                                                                       cv2.IMWRITE_PNG_FILTER, none),
        "Python's zlib, level 1, Z_RLE, filter None": lambda m: _deflated_png(m, _zlib_rle(zlib)),
    }
    try:
        from isal import isal_zlib
        candidates["isal (ISA-L) level 1, filter None"] = lambda m: _deflated_png(m, lambda r: isal_zlib.compress(r, 1))
    except ImportError:
        pass
    candidates["segtool: zlib-ng, level 1, Z_RLE, filter None (after)"] = encoders.png_bytes
    return candidates


def jpeg_candidates() -> dict:
    def pillow(image):
        stream = io.BytesIO()
        Image.fromarray(image).save(stream, format="JPEG", quality=95)
        return stream.getvalue()

    candidates = {"Pillow (before)": pillow,
                  "segtool: OpenCV, spliced metadata (after)": lambda image: encoders.jpeg_bytes(image, 95)}
    try:
        import simplejpeg
        candidates["simplejpeg 4:2:0"] = lambda image: simplejpeg.encode_jpeg(
            image, quality=95, colorspace="RGB", colorsubsampling="420")
    except ImportError:
        pass
    return candidates


def measure(candidates: dict, inputs: list, rounds: int, check) -> dict:
    times = {name: [] for name in candidates}
    sizes = {name: [] for name in candidates}
    for round_ in range(rounds):
        for name, encode in candidates.items():
            for item in inputs:
                started = time.thread_time()
                data = encode(item)
                times[name].append(1000 * (time.thread_time() - started))
                if round_ == 0:
                    sizes[name].append(len(data))
                    check(name, item, data)
    return {name: (statistics.median(times[name]), statistics.mean(sizes[name])) for name in candidates}


def check_png(name, mask, data) -> None:
    for decoded in (np.asarray(Image.open(io.BytesIO(data))),
                    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)):
        if not np.array_equal(decoded, mask):
            raise SystemExit(f"{name}: decoded pixels differ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    pngs = measure(png_candidates(), masks(), args.rounds, check_png)
    photos = [picture(1080, 1920, i) for i in range(3)]
    reference = {id(p): jpeg_candidates()["Pillow (before)"](p) for p in photos}
    identical = {}

    def check_jpeg(name, image, data):
        identical[name] = identical.get(name, True) and data == reference[id(image)]

    jpegs = measure(jpeg_candidates(), photos, args.rounds, check_jpeg)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Measured {when} by `python scripts/bench_encoders.py {' '.join(argv or sys.argv[1:])}` on "
          f"{platform.machine()}, {os.cpu_count()} CPUs (load average at start {os.getloadavg()[0]:.1f}), "
          f"OpenCV {cv2.__version__}, Pillow {Image.__version__}.\n")
    base = pngs["Pillow, zlib level 1, adaptive filters (before)"][0]
    print("| category PNG, 1920x1080 (8 masks) | CPU ms (median) | vs before | mean size |")
    print("| --- | ---: | ---: | ---: |")
    for name, (ms, size) in pngs.items():
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}x | {size / 1024:.1f} KB |")
    base = jpegs["Pillow (before)"][0]
    print("\n| blur JPEG, 1920x1080, quality 95, 4:2:0 | CPU ms (median) | vs before | mean size | Pillow's bytes |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, (ms, size) in jpegs.items():
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}x | {size / 1024:.0f} KB | {'yes' if identical[name] else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
