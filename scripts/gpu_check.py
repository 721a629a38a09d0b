#!/usr/bin/env python
"""One GPU at full speed (issue 13): masks and throughput of segtool on CUDA, tables for BENCHMARKS.md.

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU and onnxruntime-gpu installed:

    python scripts/gpu_check.py [--models selfie,deeplab] [--seconds 2] [--images 64] [--out FILE.md]

(1) Masks: every model segments real pictures (scikit-image's and matplotlib's Grace Hopper, at
    their size and stretched to 1920x1080) on --device (the path auto picks there: the device
    graph on CUDA) and on the CPU's exact path. Passes when the category masks agree on
    >= 99.99% of pixels and confidences differ by <= 1e-3 on average (the worst pixel is shown).
(2) In memory, 512x512: images/s of onnxruntime alone on a host batch (copies to and from the
    device included) and of segment_batch end to end, confidence masks only and category mask
    only, at each --batches size; the CPU's exact path (batch 1, every core) beside them.
(3) Folders: `segtool image --device D -b B` on --images generated JPEGs of 1920x1080 and of
    512x512, category PNG alone and category PNG + blur composite, against the same command on
    the CPU (exact path, every core, its default batch of 1); steady images/s counts the --json
    lines after the first batch's, so start-up is left out (with it in brackets). onnxruntime
    alone at the same batch is the ceiling; the category PNGs of the two runs are compared.
(4) Where a folder image's time goes: one thread's ms for each stage of a 1920x1080 JPEG on
    the path --device runs (decode, prepare, the device's share of a batch, finish, PNG encode,
    blur composite and its JPEG), and the images/s the machine's cores allow for the CPU stages.

With --device cpu every part runs on a machine without a GPU (the device graph forced through
SEGTOOL_PATH=device-graph on the CPU provider): that checks the script, not GPU figures.
Exit status 1 when a model's masks disagree.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AGREEMENT_FLOOR = 0.9999
CONFIDENCE_CEILING = 1e-3


# ---- pictures ---------------------------------------------------------------------------------

def pictures() -> list[np.ndarray]:
    import cv2
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    try:
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as hopper:
            photos.append(np.asarray(hopper.convert("RGB")))
    except ImportError:
        pass
    return photos + [cv2.resize(p, (1920, 1080), interpolation=cv2.INTER_CUBIC) for p in photos[:2]]


def write_jpegs(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` JPEGs of ``size`` (height, width), each shifted so no two decode alike."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    photos = pictures()[:3]
    for i in range(count):
        rgb = cv2.resize(photos[i % 3], size[::-1], interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"img{i:04d}.jpg"), cv2.cvtColor(np.roll(rgb, 37 * i, axis=1), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


# ---- segmenters -------------------------------------------------------------------------------

def segmenter(model: str, device: str, *, path: str = "auto", confidence=True, category=True):
    from segtool.options import ImageSegmenterOptions
    from segtool.segmenter import ImageSegmenter

    previous = os.environ.get("SEGTOOL_PATH")
    os.environ["SEGTOOL_PATH"] = path
    try:
        return ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model=model, device=device, output_category_mask=category, output_confidence_masks=confidence))
    finally:
        if previous is None:
            os.environ.pop("SEGTOOL_PATH")
        else:
            os.environ["SEGTOOL_PATH"] = previous


def tested_path(device: str) -> str:
    # On the CPU auto keeps the exact path; the check is of the device graph, so force it there.
    return "device-graph" if device == "cpu" else "auto"


# ---- (1) masks --------------------------------------------------------------------------------

def foreground_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero((a > 0) | (b > 0))
    return 1.0 if union == 0 else np.count_nonzero((a > 0) & (b > 0)) / union


def compare_masks(model: str, device: str, photos) -> dict:
    """Worst picture's agreement of the tested path with the CPU's exact path."""
    with segmenter(model, device, path=tested_path(device)) as tested, segmenter(model, "cpu", path="exact") as cpu:
        if device == "cuda" and "CUDAExecutionProvider" not in tested.providers:
            raise SystemExit(f"{model}: the CUDA session runs on {tested.providers}")
        ious, agree, worst, mean = [], [], [], []
        for on_device, exact in zip(tested.segment_batch(photos), cpu.segment_batch(photos)):
            ious.append(foreground_iou(on_device.category_mask, exact.category_mask))
            agree.append(float(np.mean(on_device.category_mask == exact.category_mask)))
            difference = np.abs(on_device.confidence_masks - exact.confidence_masks)
            worst.append(float(difference.max()))
            mean.append(float(difference.mean()))
        path = tested.path
    return {"iou": min(ious), "agree": min(agree), "conf_max": max(worst), "conf_mean": max(mean),
            "path": f"{path.name} ({tested.providers[0].replace('ExecutionProvider', '')})"}


def masks_ok(result: dict) -> bool:
    return result["agree"] >= AGREEMENT_FLOOR and result["conf_mean"] <= CONFIDENCE_CEILING


# ---- (2) in memory ----------------------------------------------------------------------------

def images_per_second(function, batch: int, seconds: float) -> float:
    for _ in range(3):  # warm-up: cuDNN picks its algorithms for this shape on the first runs
        function()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 3:
        function()
        runs += 1
    return runs * batch / (time.perf_counter() - started)


def in_memory(model: str, device: str, batches, seconds: float) -> dict:
    """images/s at 512x512: {batch: (ort alone, segment_batch confidence, segment_batch category)}."""
    import cv2

    photo = cv2.resize(pictures()[0], (512, 512), interpolation=cv2.INTER_AREA)
    rows = {}
    path = tested_path(device)
    with segmenter(model, device, path=path, category=False) as confidence, \
            segmenter(model, device, path=path, confidence=False) as category:
        tensor = confidence._tensor(photo, 0)  # the network's input, as the exact path makes it
        for batch in batches:
            host = np.ascontiguousarray(np.broadcast_to(tensor, (batch, *tensor.shape)))
            photos = [photo] * batch
            rows[batch] = (images_per_second(lambda: confidence._session.run(host), batch, seconds),
                           images_per_second(lambda: confidence.segment_batch(photos), batch, seconds),
                           images_per_second(lambda: category.segment_batch(photos), batch, seconds))
    with segmenter(model, "cpu", path="exact", category=False) as cpu:
        rows["cpu"] = (images_per_second(lambda: cpu._session.run(tensor[None]), 1, seconds),
                       images_per_second(lambda: cpu.segment(photo), 1, seconds), None)
    return rows


# ---- (3) folders ------------------------------------------------------------------------------

FOLDER_OUTPUTS = {"category": ["--category-mask", "--no-confidence-masks"],
                  "category + blur": ["--category-mask", "--no-confidence-masks", "--blur"]}


CLI = "from segtool.cli import main; main()"


def segtool_image(folder: Path, out: Path, model: str, device: str, options: list, batch: int,
                  setup: str = CLI) -> dict:
    """One `segtool image --json` run: images/s with start-up, and steady (after the first batch).
    ``setup``: the child's Python code, which ends by calling the CLI (gpu_probe sets options first)."""
    command = [sys.executable, "-c", setup, "image", str(folder),
               "-o", str(out), "--model", model, "--device", device, "--json", "-q", *options]
    if batch:
        command += ["--batch-size", str(batch)]
    env = dict(os.environ, SEGTOOL_PATH=tested_path(device) if batch else "auto")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    arrivals = [time.perf_counter() - started for line in process.stdout if line.strip()]
    error = process.stderr.read().decode()
    if process.wait() != 0:
        raise SystemExit(f"gpu_check: {' '.join(command[3:])} failed: {error[-500:]}")
    wall = time.perf_counter() - started
    # Reports of a batch arrive together: count from the end of the first batch, not its first line.
    first = min(max(1, batch), len(arrivals) - 1)
    steady = (len(arrivals) - first) / max(1e-9, arrivals[-1] - arrivals[first - 1])
    return {"steady": steady, "overall": len(arrivals) / wall}


def category_agreement(a: Path, b: Path) -> float:
    """Worst share of equal pixels between the category PNGs of two output folders."""
    from PIL import Image

    worst = 1.0
    for mask in sorted(a.glob("*.category.png")):
        with Image.open(mask) as one, Image.open(b / mask.name) as other:
            worst = min(worst, float(np.mean(np.asarray(one) == np.asarray(other))))
    return worst


def folders(model: str, device: str, batch: int, folders_by_size: dict, scratch: Path) -> dict:
    """{(size, outputs): (device run, CPU exact run with every core, category PNG agreement)}."""
    rows = {}
    for size, folder in folders_by_size.items():
        for label, options in FOLDER_OUTPUTS.items():
            outs = [scratch / "out" / side / model / size / label.replace(" + ", "_") for side in ("device", "cpu")]
            on_device = segtool_image(folder, outs[0], model, device, options, batch)
            on_cpu = segtool_image(folder, outs[1], model, "cpu", options, 0)
            rows[(size, label)] = (on_device, on_cpu, category_agreement(*outs))
            print(f"gpu_check: {model} {size} {label}: {on_device['steady']:.1f} images/s on {device}, "
                  f"{on_cpu['steady']:.1f} on the CPU", file=sys.stderr, flush=True)
    return rows


# ---- (4) stages -------------------------------------------------------------------------------

def median_ms(function, seconds: float) -> float:
    function()
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        begun = time.perf_counter()
        function()
        times.append(time.perf_counter() - begun)
    return 1000 * sorted(times)[len(times) // 2]


def stages(model: str, device: str, batch: int, jpeg: Path, seconds: float) -> dict:
    """Median ms per 1920x1080 image of each stage, one thread; the device's share is a batch's / batch."""
    from segtool import effects, io as sio

    image = sio.read_image(jpeg)
    with segmenter(model, device, path=tested_path(device), confidence=False) as category, \
            segmenter(model, device, path=tested_path(device)) as both, tempfile.TemporaryDirectory() as out:
        out = Path(out)
        prepared = category.prepare(image)
        output = category.run_prepared([prepared])[0]
        result = category.finish(output, prepared)
        blur_options = effects.EffectOptions()
        confidence = both.segment(image).confidence_masks
        blurred = effects.render("blur", image, confidence, blur_options)
        many = [prepared] * batch
        row = {
            "decode": median_ms(lambda: sio.read_image(jpeg), seconds),
            "prepare": median_ms(lambda: category.prepare(image), seconds),
            "network": median_ms(lambda: category.run_prepared(many), seconds) / batch,
            "finish": median_ms(lambda: category.finish(output, prepared), seconds),
            "category png": median_ms(lambda: sio.write_category_png(out / "c.png", result.category_mask), seconds),
            "confidence (blur's input)": median_ms(lambda: both.run_prepared([both.prepare(image)]), seconds),
            "blur composite": median_ms(lambda: effects.render("blur", image, confidence, blur_options), seconds),
            "blur jpeg": median_ms(lambda: sio.write_image(out / "b.jpg", blurred), seconds),
        }
    return row


# ---- report -----------------------------------------------------------------------------------

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


def header(args) -> str:
    import onnxruntime

    from segtool.runtime import usable_cpus

    gpu = os.popen("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null").read().strip()
    return (f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} by `scripts/gpu_check.py {' '.join(args.argv)}` "
            f"on {gpu or 'no GPU'}, {usable_cpus()} usable CPUs, Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())}); "
            f"--device {args.device}, folders of {args.images} JPEGs, folder batch size {args.batch}.")


def mask_table(parity: dict) -> list[str]:
    lines = ["#### Masks against the CPU's exact path (worst picture)", "",
             "| model | path tested | pixels equal | foreground IoU | mean confidence diff | max confidence diff | ok |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for model, r in parity.items():
        ok = "yes" if masks_ok(r) else f"**no** (< {AGREEMENT_FLOOR:.2%} or > {CONFIDENCE_CEILING:g})"
        lines.append(f"| {model} | {r['path']} | {r['agree'] * 100:.3f}% | {r['iou']:.5f} | "
                     f"{r['conf_mean']:.2e} | {r['conf_max']:.2e} | {ok} |")
    return lines


def memory_table(speed: dict, device: str, batches) -> list[str]:
    lines = ["", f"#### In memory, 512x512, images/s: onnxruntime alone / segment_batch confidence / "
                 f"segment_batch category ({device}); CPU exact path batch 1: ort alone / segment()", "",
             "| model | " + " | ".join(f"batch {b}" for b in batches) + " | CPU batch 1 |",
             "| --- |" + " ---: |" * (len(batches) + 1)]
    for model, rows in speed.items():
        cells = [f"{rows[b][0]:.0f} / {rows[b][1]:.0f} / {rows[b][2]:.0f}" for b in batches]
        cells.append(f"{rows['cpu'][0]:.0f} / {rows['cpu'][1]:.0f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def folder_table(results: dict, speed: dict, device: str, batch: int) -> list[str]:
    lines = ["", f"#### Folders, `segtool image`, images/s steady (with start-up): --device {device} -b {batch} "
                 f"against --device cpu (exact path, every core); onnxruntime alone at batch {batch} on {device}", "",
             "| model | images | outputs | segtool on the device | segtool on the CPU | device / CPU, steady "
             "| ort alone | category PNGs equal |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, rows in results.items():
        alone = speed.get(model, {}).get(batch)
        ceiling = f"{alone[0]:.0f}" if alone else ""
        for (size, label), (on_device, on_cpu, agree) in rows.items():
            lines.append(f"| {model} | {size} | {label} | {on_device['steady']:.1f} ({on_device['overall']:.1f}) | "
                         f"{on_cpu['steady']:.1f} ({on_cpu['overall']:.1f}) | "
                         f"{on_device['steady'] / on_cpu['steady']:.2f}x | {ceiling} | {agree * 100:.3f}% |")
    return lines


STAGES_CATEGORY = ("decode", "prepare", "finish", "category png")
STAGES_BLUR = ("blur composite", "blur jpeg")


def stage_table(rows: dict, device: str, batch: int) -> list[str]:
    from segtool.runtime import usable_cpus

    cores = usable_cpus()
    names = list(next(iter(rows.values())))
    lines = ["", f"#### Where a 1920x1080 JPEG's time goes, median ms on one thread (--device {device}; "
                 f"network = one batch of {batch} / {batch}); images/s {cores} cores allow for the CPU stages", "",
             "| model | " + " | ".join(names) + " | category: cores allow | + blur: cores allow |",
             "| --- |" + " ---: |" * (len(names) + 2)]
    for model, row in rows.items():
        category_ms = sum(row[n] for n in STAGES_CATEGORY)
        blur_ms = category_ms + row["confidence (blur's input)"] + sum(row[n] for n in STAGES_BLUR)
        lines.append(f"| {model} | " + " | ".join(f"{row[n]:.2f}" for n in names)
                     + f" | {cores * 1000 / category_ms:.0f} | {cores * 1000 / blur_ms:.0f} |")
    return lines


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated (default: every installed model)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per in-memory measurement")
    parser.add_argument("--batches", default="1,8,16,32", help="in-memory batch sizes")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the folder runs on --device")
    parser.add_argument("--images", type=int, default=128,
                        help="JPEGs per folder (at least 8 batches, or the steady rate counts overlap)")
    parser.add_argument("--sizes", default="1920x1080,512x512", help="folder picture sizes, WIDTHxHEIGHT")
    parser.add_argument("--skip", default="", help="parts to leave out: masks,memory,folders,stages")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.batch_sizes = [int(b) for b in args.batches.split(",") if b]
    args.skipped = {s for s in args.skip.split(",") if s}
    if args.batch not in args.batch_sizes:
        args.batch_sizes.append(args.batch)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    from segtool.runtime import available_providers

    if args.device == "cuda" and "CUDAExecutionProvider" not in available_providers():
        print(f"gpu_check: no CUDAExecutionProvider in {available_providers()}", file=sys.stderr)
        return 2
    parity, speed, folder_rates, stage_rows = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="segtool-gpu-check-") as scratch:
        scratch = Path(scratch)
        jpegs = {size: scratch / f"in{size}" for size in args.sizes.split(",") if size}
        for size, folder in jpegs.items():
            write_jpegs(folder, args.images, tuple(int(v) for v in size.split("x"))[::-1])
        photo_1080p = scratch / "stages" / "img0000.jpg"
        write_jpegs(photo_1080p.parent, 1, (1080, 1920))
        for model in installed_models([m for m in args.models.split(",") if m]):
            if "masks" not in args.skipped:
                parity[model] = compare_masks(model, args.device, pictures())
                print(f"gpu_check: {model}: {parity[model]}", file=sys.stderr, flush=True)
            if "memory" not in args.skipped:
                speed[model] = in_memory(model, args.device, args.batch_sizes, args.seconds)
            if "folders" not in args.skipped:
                folder_rates[model] = folders(model, args.device, args.batch, jpegs, scratch)
            if "stages" not in args.skipped:
                stage_rows[model] = stages(model, args.device, args.batch, photo_1080p, args.seconds / 4)
            if args.out:  # each model's rows as soon as they are measured: a run cut short keeps them
                args.out.write_text(report(args, parity, speed, folder_rates, stage_rows))
    text = report(args, parity, speed, folder_rates, stage_rows)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(masks_ok(r) for r in parity.values()) else 1


def report(args, parity, speed, folder_rates, stage_rows) -> str:
    lines = [header(args), ""]
    lines += mask_table(parity) if parity else []
    lines += memory_table(speed, args.device, args.batch_sizes) if speed else []
    lines += folder_table(folder_rates, speed, args.device, args.batch) if folder_rates else []
    lines += stage_table(stage_rows, args.device, args.batch) if stage_rows else []
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
