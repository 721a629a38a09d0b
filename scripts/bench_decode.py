"""JPEG decode speed of read_image (strict: simplejpeg) against the Pillow decode it replaced.

    python scripts/bench_decode.py [--count 24] [--rounds 5]

The JPEGs are memory_check.py's 1920x1080 pictures (baseline, quality 90), plus the same as
progressive files. Each round reads every file once per path, alternating the paths file by
file, so that a neighbour's load hits both alike. Reported per path: the best round's CPU ms per
file in one thread (the steady figure on a shared machine) and the median wall ms per file; the
ratio is strict / Pillow. The Pillow path is read_image as it was: Image.open, load, np.asarray,
one writeable copy.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_check import base_pictures  # noqa: E402  the same 1080p pictures

from segtool.io import read_image  # noqa: E402


def pillow_read(path: Path) -> np.ndarray:
    """read_image's decode before strict JPEG decoding (orientation 1: no transform)."""
    with Image.open(path) as image:
        image.load()
        return np.require(np.asarray(image), np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])


def make_files(folder: Path, count: int) -> dict[str, list[Path]]:
    bases = base_pictures(1920, 1080)
    files = {"baseline": [], "progressive": []}
    for index in range(count):
        picture = Image.fromarray(np.roll(bases[index % len(bases)], shift=7 * index, axis=1))
        for kind in files:
            path = folder / f"{kind}{index:03d}.jpg"
            picture.save(path, quality=90, progressive=kind == "progressive")
            files[kind].append(path)
    return files


def measure(paths: list[Path], rounds: int) -> dict[str, tuple[float, float]]:
    """Per path: (best round's CPU ms per file, median wall ms per file)."""
    readers = {"pillow": pillow_read, "strict": read_image}
    for path in paths:  # warm the page cache and check that both read the same pixels
        assert np.array_equal(pillow_read(path), read_image(path)), path
    cpu = {name: [] for name in readers}
    wall = {name: [] for name in readers}
    for _ in range(rounds):
        spent = {name: 0.0 for name in readers}
        for path in paths:
            for name, reader in readers.items():
                started_cpu, started = time.process_time(), time.perf_counter()
                reader(path)
                spent[name] += time.process_time() - started_cpu
                wall[name].append(1000 * (time.perf_counter() - started))
        for name in readers:
            cpu[name].append(1000 * spent[name] / len(paths))
    return {name: (min(cpu[name]), statistics.median(wall[name])) for name in readers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder), args.count)
        print("| JPEG 1920x1080 | Pillow CPU ms | strict CPU ms | ratio | Pillow wall ms (median) "
              "| strict wall ms (median) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind, paths in files.items():
            result = measure(paths, args.rounds)
            (p_cpu, p_wall), (s_cpu, s_wall) = result["pillow"], result["strict"]
            print(f"| {kind} | {p_cpu:.1f} | {s_cpu:.1f} | {s_cpu / p_cpu:.2f} | {p_wall:.1f} | "
                  f"{s_wall:.1f} | {s_wall / p_wall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
