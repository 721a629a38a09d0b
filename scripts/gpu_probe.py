#!/usr/bin/env python
"""Where the GPU's time goes (issue 21): the device graph's network, transfers and provider options.

Run on a machine with onnxruntime-gpu, like scripts/gpu_check.py (whose figures it explains):

    python scripts/gpu_probe.py [--models hair,deeplab,selfie] [--batches 16,32] [--seconds 1]
                                [--profile hair] [--folders hair:16,hair:32] [--images 256]

(1) For each model and CUDA provider option set, the device graph from host pixels at each batch
    size: category graph images/s, confidence graph images/s with its masks downloaded to the
    host and left on the device (the difference is the copy), and the masks against the default
    options' (category pixels equal, largest confidence difference).
(2) --profile: onnxruntime's own profile of one model's category graph: kernel time per operator
    type and on which provider each node ran.
(3) --folders MODEL:BATCH: `segtool image --device cuda` category-only folder runs of 1920x1080
    JPEGs with each option set (set in the child before its sessions are made), steady images/s.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from gpu_check import images_per_second  # noqa: E402  (the same timing as the figures it explains)

OPTION_SETS = {
    "default": {"use_tf32": "0"},
    "nhwc": {"use_tf32": "0", "prefer_nhwc": "1"},
    "heuristic": {"use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC"},
}


def session(graph: bytes, options: dict, profile_prefix: str = ""):
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    settings.log_severity_level = 3
    if profile_prefix:
        settings.enable_profiling = True
        settings.profile_file_prefix = profile_prefix
    return ort.InferenceSession(graph, settings, providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"])


def graphs(model: str) -> dict:
    from segtool import gpu_graph, registry

    resolved = registry.locate(model)
    return {kind: gpu_graph.build(resolved.path, resolved.spec, gpu_graph.GraphOutputs(confidence=conf, category=cat))
            for kind, conf, cat in (("category", False, True), ("confidence", True, False))}, resolved.spec


def pixels_for(spec, batch: int) -> np.ndarray:
    import cv2
    from gpu_check import pictures
    from segtool.preprocess import resample_to_model

    photos = pictures()
    return np.stack([resample_to_model(cv2.resize(photos[i % 4], (1920, 1080)), spec.input_size,
                                       input_channels=spec.input_channels) for i in range(batch)])


def two_callers(run, batch: int, seconds: float) -> float:
    """images/s of two threads calling ``run`` side by side (copies of one overlap the other's kernels)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        rates = list(pool.map(lambda _: images_per_second(run, batch, seconds), range(2)))
    return sum(rates)


def options_table(models, batches, seconds) -> list[str]:
    import onnxruntime as ort

    lines = ["#### Device graph from host pixels, 1920x1080 masks, images/s: category / category, two threads / "
             "confidence downloaded / confidence left on the GPU; masks against the default options", "",
             "| model | options | " + " | ".join(f"batch {b}" for b in batches) + " | category equal | max conf diff |",
             "| --- | --- |" + " ---: |" * (len(batches) + 2)]
    for model in models:
        built, spec = graphs(model)
        size = np.asarray([1080, 1920], np.int64)
        reference = None
        for label, options in OPTION_SETS.items():
            try:
                category, confidence = session(built["category"], options), session(built["confidence"], options)
            except Exception as exc:  # an option this onnxruntime lacks: say so and go on
                lines.append(f"| {model} | {label} | failed: {str(exc).splitlines()[0][:120]} |")
                continue
            cells = []
            for batch in batches:
                feed = {"segtool_pixels": pixels_for(spec, batch), "segtool_size": size}
                binding = confidence.io_binding()
                binding.bind_cpu_input("segtool_pixels", feed["segtool_pixels"])
                binding.bind_cpu_input("segtool_size", size)
                binding.bind_output("confidence", "cuda" if "CUDAExecutionProvider" in confidence.get_providers() else "cpu")
                cells.append(f"{images_per_second(lambda: category.run(None, feed), batch, seconds):.0f} / "
                             f"{two_callers(lambda: category.run(None, feed), batch, seconds):.0f} / "
                             f"{images_per_second(lambda: confidence.run(None, feed), batch, seconds):.0f} / "
                             f"{images_per_second(lambda: confidence.run_with_iobinding(binding), batch, seconds):.0f}")
            feed = {"segtool_pixels": pixels_for(spec, 4), "segtool_size": size}
            masks = (category.run(None, feed)[0], confidence.run(None, feed)[0])
            if reference is None:
                reference = masks
            equal = float(np.mean(masks[0] == reference[0]))
            worst = float(np.abs(masks[1] - reference[1]).max())
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + f" | {equal * 100:.4f}% | {worst:.2e} |")
            print("\n".join(lines[-1:]), file=sys.stderr, flush=True)
    assert ort  # imported first so a missing onnxruntime fails before any work
    return lines


WARM_UP = 3


def profile(model: str, batch: int, options_label: str) -> list[str]:
    built, spec = graphs(model)
    with tempfile.TemporaryDirectory() as scratch:
        run = session(built["category"], OPTION_SETS[options_label], profile_prefix=str(Path(scratch) / "p"))
        feed = {"segtool_pixels": pixels_for(spec, batch), "segtool_size": np.asarray([1080, 1920], np.int64)}
        for _ in range(WARM_UP + 5):
            run.run(None, feed)
        events = json.loads(Path(run.end_profiling()).read_text())
    # The first runs pick cuDNN's algorithms for this shape (seconds): only the runs after them count.
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    counted_from = starts[WARM_UP] if len(starts) > WARM_UP else 0
    runs = len(starts) - WARM_UP
    by_op, providers = defaultdict(float), defaultdict(int)
    for event in events:
        args = event.get("args", {})
        if event.get("ts", 0) < counted_from:
            continue
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            by_op[args.get("op_name", "?")] += event.get("dur", 0)
            providers[(args.get("op_name", "?"), args.get("provider", "?"))] += 1
    runs = max(1, runs)
    total = sum(by_op.values())
    lines = ["", f"#### {model}: onnxruntime profile of the category graph, batch {batch}, options {options_label}, "
                 f"mean of {runs} runs (host-side kernel time, µs per batch)", "",
             "| operator | µs per batch | share | nodes per run, provider |", "| --- | ---: | ---: | --- |"]
    for op, micros in sorted(by_op.items(), key=lambda kv: -kv[1])[:14]:
        where = ", ".join(f"{n // runs} {p.replace('ExecutionProvider', '')}" for (o, p), n in providers.items() if o == op)
        lines.append(f"| {op} | {micros / runs:.0f} | {micros / total:.1%} | {where} |")
    return lines


def folder_rates(pairs, images: int) -> list[str]:
    from gpu_check import write_jpegs

    lines = ["", f"#### `segtool image --device cuda --category-mask --no-confidence-masks -b B`, {images} JPEGs "
                 "1920x1080, steady images/s (with start-up), per CUDA option set", "",
             "| model | batch | " + " | ".join(OPTION_SETS) + " |", "| --- | ---: |" + " ---: |" * len(OPTION_SETS)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "in"
        write_jpegs(folder, images, (1080, 1920))
        for model, batch in pairs:
            cells = []
            for label, options in OPTION_SETS.items():
                cells.append(folder_run(folder, Path(scratch) / f"out-{model}-{batch}-{label}", model, batch, options))
                print(f"gpu_probe: {model} -b {batch} {label}: {cells[-1]}", file=sys.stderr, flush=True)
            lines.append(f"| {model} | {batch} | " + " | ".join(cells) + " |")
    return lines


def folder_run(folder: Path, out: Path, model: str, batch: int, options: dict) -> str:
    from gpu_check import CLI, segtool_image

    setup = f"import segtool.runtime as r; r.PROVIDER_OPTIONS['CUDAExecutionProvider'] = {options!r}; {CLI}"
    try:
        rate = segtool_image(folder, out, model, "cuda", ["--category-mask", "--no-confidence-masks"], batch, setup)
    except SystemExit as failed:  # one option set that does not run: say so in its cell
        return f"failed: {str(failed)[-100:]}"
    return f"{rate['steady']:.0f} ({rate['overall']:.0f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="hair,deeplab,selfie")
    parser.add_argument("--batches", default="16,32")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--profile", default="hair", help="model to profile ('' for none)")
    parser.add_argument("--folders", default="", help="MODEL:BATCH,... folder runs")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = []

    def emit(more):
        lines.extend(more)
        text = "\n".join(lines) + "\n"
        if args.out:
            args.out.write_text(text)
        print("\n".join(more), flush=True)

    models = [m for m in args.models.split(",") if m]
    batches = [int(b) for b in args.batches.split(",") if b]
    if models:
        emit(options_table(models, batches, args.seconds))
    if args.profile:
        for label in ("default", "nhwc"):
            emit(profile(args.profile, batches[0], label))
    pairs = [(p.split(":")[0], int(p.split(":")[1])) for p in args.folders.split(",") if p]
    if pairs:
        emit(folder_rates(pairs, args.images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
