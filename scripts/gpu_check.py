#!/usr/bin/env python
"""CUDA against CPU for every installed model: the same masks, and throughput at batch 1, 8, 32.

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU and onnxruntime-gpu installed:

    python scripts/gpu_check.py [--models selfie,deeplab] [--seconds 2] [--out FILE.md]

Masks: each model segments real pictures (scikit-image's, at their size and stretched to
1920x1080) through segtool's ImageSegmenter on `--device cuda` and on `--device cpu`; the
category masks must agree with foreground IoU >= 0.999. Throughput: images per second of
(a) onnxruntime alone on a host batch (copies to and from the GPU included) and (b) segtool's
segment_batch end to end (CPU pre/postprocessing included), for batch sizes 1, 8 and 32, with
the CPU provider at batch 1 beside them. Exit status 1 when a model's masks disagree.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCHES = (1, 8, 32)
IOU_FLOOR = 0.999


def pictures() -> list[np.ndarray]:
    import cv2
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    return photos + [cv2.resize(p, (1920, 1080), interpolation=cv2.INTER_CUBIC) for p in photos[:2]]


def segmenter(model: str, device: str):
    from segtool.options import ImageSegmenterOptions
    from segtool.segmenter import ImageSegmenter

    return ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model=model, device=device, output_category_mask=True, output_confidence_masks=True))


def foreground_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero((a > 0) | (b > 0))
    return 1.0 if union == 0 else np.count_nonzero((a > 0) & (b > 0)) / union


def compare_masks(model: str, photos) -> dict:
    """Worst foreground IoU, pixel agreement and confidence difference over the pictures."""
    with segmenter(model, "cuda") as gpu, segmenter(model, "cpu") as cpu:
        if "CUDAExecutionProvider" not in gpu.providers:
            raise SystemExit(f"{model}: the CUDA session runs on {gpu.providers}")
        ious, agree, diffs = [], [], []
        for photo in photos:
            on_gpu, on_cpu = gpu.segment(photo), cpu.segment(photo)
            ious.append(foreground_iou(on_gpu.category_mask, on_cpu.category_mask))
            agree.append(float(np.mean(on_gpu.category_mask == on_cpu.category_mask)))
            diffs.append(float(np.abs(on_gpu.confidence_masks - on_cpu.confidence_masks).max()))
    return {"iou": min(ious), "agree": min(agree), "conf_diff": max(diffs)}


def images_per_second(function, batch: int, seconds: float) -> float:
    for _ in range(3):  # warm-up: cuDNN picks its algorithms for this shape on the first runs
        function()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 3:
        function()
        runs += 1
    return runs * batch / (time.perf_counter() - started)


def throughput(model: str, photo: np.ndarray, seconds: float) -> dict:
    rows = {}
    with segmenter(model, "cuda") as gpu, segmenter(model, "cpu") as cpu:
        tensor = gpu._tensor(photo, 0)  # the same preprocessing segment() does
        for batch in BATCHES:
            host = np.ascontiguousarray(np.broadcast_to(tensor, (batch, *tensor.shape)))
            photos = [photo] * batch
            rows[("cuda", batch)] = (images_per_second(lambda: gpu._session.run(host), batch, seconds),
                                     images_per_second(lambda: gpu.segment_batch(photos), batch, seconds))
        host = tensor[None]
        rows[("cpu", 1)] = (images_per_second(lambda: cpu._session.run(host), 1, seconds),
                            images_per_second(lambda: cpu.segment(photo), 1, seconds))
    return rows


def installed_models(wanted) -> list[str]:
    from segtool import registry

    found = []
    for name in wanted or registry.load_manifest():
        try:
            registry.locate(name)
            found.append(name)
        except registry.ModelError as exc:
            print(f"gpu_check: skipping {name}: {exc}", file=sys.stderr)
    return found


def header() -> str:
    import onnxruntime

    gpu = os.popen("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null").read().strip()
    return (f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} by `scripts/gpu_check.sh` on {gpu or 'an unknown GPU'}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__} "
            f"({', '.join(onnxruntime.get_available_providers())}).")


def report(parity: dict, speed: dict) -> str:
    lines = ["### CUDA masks against CPU masks (worst picture)", "",
             "| model | foreground IoU | pixels equal | max confidence diff | ok |", "| --- | ---: | ---: | ---: | --- |"]
    for model, result in parity.items():
        ok = "yes" if result["iou"] >= IOU_FLOOR else f"**no** (< {IOU_FLOOR})"
        lines.append(f"| {model} | {result['iou']:.5f} | {result['agree'] * 100:.3f}% | {result['conf_diff']:.2e} | {ok} |")
    lines += ["", "### Throughput, images/s (512x512 input; onnxruntime alone / segtool segment_batch end to end)", "",
              "| model | " + " | ".join(f"CUDA batch {b}" for b in BATCHES) + " | CPU batch 1 |",
              "| --- |" + " ---: |" * (len(BATCHES) + 1)]
    for model, rows in speed.items():
        cells = [f"{rows[k][0]:.0f} / {rows[k][1]:.0f}" for k in [("cuda", b) for b in BATCHES] + [("cpu", 1)]]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated (default: every installed model)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    from segtool.runtime import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        print(f"gpu_check: no CUDAExecutionProvider in {available_providers()}", file=sys.stderr)
        return 2
    photos = pictures()
    parity, speed = {}, {}
    for model in installed_models([m for m in args.models.split(",") if m]):
        parity[model] = compare_masks(model, photos)
        print(f"gpu_check: {model}: IoU {parity[model]['iou']:.5f}", file=sys.stderr, flush=True)
        speed[model] = throughput(model, photos[0], args.seconds)
    text = header() + "\n\n" + report(parity, speed)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(r["iou"] >= IOU_FLOOR for r in parity.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
