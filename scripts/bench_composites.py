"""Composite cost per 1080p frame: prints the markdown table for BENCHMARKS.md's "Composites".

    python scripts/bench_composites.py [--runs 40]

The frame is a package-shipped photograph framed like a 1920x1080 webcam shot; its masks come from
segtool's own segmenter (selfie; hair for recolouring, when installed). Times are those of
``effects.render`` for one frame: mask refinement (on by default) plus the composite itself, not
the inference, decoding or encoding.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time

import cv2
import numpy as np

from segtool import effects
from segtool.errors import SegtoolError
from segtool.options import ImageSegmenterOptions
from segtool.segmenter import ImageSegmenter

SIZE = (1080, 1920)


def frame() -> np.ndarray:
    """A webcam-like frame: the astronaut, head to chest, centred; her backdrop extended sideways."""
    from skimage import data

    height, width = SIZE
    person = cv2.resize(data.astronaut(), (height, height), interpolation=cv2.INTER_CUBIC)
    side = (width - height) // 2
    return cv2.copyMakeBorder(person, 0, 0, side, width - height - side, cv2.BORDER_REPLICATE)


def masks(image: np.ndarray, model: str):
    try:
        with ImageSegmenter.create_from_options(ImageSegmenterOptions(model=model)) as segmenter:
            return segmenter.segment(image).confidence_masks
    except SegtoolError:
        return None


def timings_ms(call, runs: int, clock) -> list[float]:
    call()
    times = []
    for _ in range(runs):
        started = clock()
        call()
        times.append(1000 * (clock() - started))
    return times


def measure(calls: dict, runs: int) -> dict:
    """Per call: the median wall ms with OpenCV's threads, and the best CPU ms of one thread.

    On a machine shared with other work both move with the neighbours' load; one thread's best
    CPU time is the steadiest estimate of the work itself, the median wall time what a video
    pipeline waited for at the time.
    """
    threads = cv2.getNumThreads()
    wall = {key: statistics.median(timings_ms(call, runs, time.perf_counter)) for key, call in calls.items()}
    cv2.setNumThreads(1)
    try:
        cpu = {key: min(timings_ms(call, runs, time.thread_time)) for key, call in calls.items()}
    finally:
        cv2.setNumThreads(threads)
    return {key: (wall[key], cpu[key]) for key in calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    runs = parser.parse_args().runs

    from skimage import data

    image = frame()
    person = masks(image, "selfie")
    hair = masks(image, "hair")
    hair_note = "hair model" if hair is not None else "selfie mask (hair model not installed)"
    backdrop = effects.Backdrop(picture=data.coffee())
    calls = {}
    for name in effects.COMPOSITES:
        confidence = hair if name == "recolor" and hair is not None else person
        for refine in (True, False):
            options = effects.EffectOptions(backdrop=backdrop, hair_color=(150, 50, 30), refine=refine)
            calls[name, refine] = functools.partial(effects.render, name, image, confidence, options)
    calls["refine", True] = functools.partial(effects.refine_alpha, effects.subject_alpha(person), image)
    refined = effects.refine_alpha(effects.subject_alpha(person), image)
    calls["foreground", True] = functools.partial(effects.estimate_foreground, image, refined)
    load = os.getloadavg()[0]
    cost = measure(calls, runs)

    print(f"{platform.machine()}, {os.cpu_count()} cores, OpenCV {cv2.__version__} "
          f"({cv2.getNumThreads()} threads), load average {load:.2f} at start; median of {runs} runs; "
          f"recolor on the {hair_note}.\n")
    print("| composite | CPU ms, 1 thread (best) | same, `--no-refine` "
          "| wall ms, 2 threads (median) | same, `--no-refine` |")
    print("|---|---:|---:|---:|---:|")
    for name in effects.COMPOSITES:
        (wall, cpu), (wall_plain, cpu_plain) = cost[name, True], cost[name, False]
        label = "alpha (`--alpha-mask`, `--mask-video`)" if name == "alpha" else name
        print(f"| {label} | {cpu:.1f} | {cpu_plain:.1f} | {wall:.1f} | {wall_plain:.1f} |")
    wall, cpu = cost["refine", True]
    print(f"| (edge refinement alone, included above) | {cpu:.1f} | - | {wall:.1f} | - |")
    wall, cpu = cost["foreground", True]
    print(f"| (foreground colour estimate alone, in replace and cutout above) | {cpu:.1f} | - | {wall:.1f} | - |")


if __name__ == "__main__":
    main()
