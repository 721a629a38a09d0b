#!/usr/bin/env python
"""MediaPipe Tasks' side of scripts/bench.py; runs in the MediaPipe environment, not segtool's.

    python scripts/bench_mediapipe.py serve --models-dir ../shared/models
        JSON lines on stdin, one answer line each on stdout:
        {"cmd": "load", "model": "selfie", "category": false}  -> {"ok": true}
        {"cmd": "time", "image": "x.npy", "n": 20}              -> {"ms": [...]}  (segment() calls)
        {"cmd": "quit"}
        Kept alive between rounds so that scripts/bench.py can alternate segtool and MediaPipe
        blocks in one run: both see the same background load.

    python scripts/bench_mediapipe.py folder IN_DIR OUT_DIR --model selfie --models-dir ...
        The loop a MediaPipe user writes for `segtool image --category-mask --blur`: decode
        with OpenCV, segment, write the category mask PNG and a blurred-background JPEG.
        Prints one line per image as it is done (for steady-state timing).

MediaPipe needs TFLite metadata that the landscape and hair files lack; it is added to copies
exactly as scripts/make_reference_masks.py does (mean 0 / std 255, labels, activation).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_reference_masks import model_with_metadata  # noqa: E402  (same metadata as the fixtures)


def create(models_dir: Path, model: str, workdir: Path, category: bool):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_with_metadata(models_dir, model, workdir))),
        running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True,
        output_category_mask=category)
    return vision.ImageSegmenter.create_from_options(options)


def serve(models_dir: Path) -> int:
    import mediapipe as mp

    segmenter = None
    with tempfile.TemporaryDirectory() as workdir:
        for line in sys.stdin:
            request = json.loads(line)
            if request["cmd"] == "quit":
                break
            if request["cmd"] == "load":
                if segmenter is not None:
                    segmenter.close()
                segmenter = create(models_dir, request["model"], Path(workdir), request["category"])
                answer = {"ok": True, "version": mp.__version__}
            else:
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.load(request["image"]))
                answer = {"ms": time_segment(segmenter, image, request["n"])}
            print(json.dumps(answer), flush=True)
        if segmenter is not None:
            segmenter.close()
    return 0


def time_segment(segmenter, image, n: int) -> list[float]:
    segmenter.segment(image)  # warm-up: first-call allocations
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = segmenter.segment(image)
        result.confidence_masks[0].numpy_view()  # the masks are ready for the caller
        times.append((time.perf_counter() - started) * 1000)
    return times


def folder(in_dir: Path, out_dir: Path, models_dir: Path, model: str) -> int:
    import cv2
    import mediapipe as mp

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, create(models_dir, model, Path(workdir), True) as segmenter:
        print("ready", flush=True)
        for path in sorted(in_dir.glob("*.jpg")):
            bgr = cv2.imread(str(path))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            cv2.imwrite(str(out_dir / f"{path.stem}.category.png"), result.category_mask.numpy_view())
            person = result.confidence_masks[-1].numpy_view()
            cv2.imwrite(str(out_dir / f"{path.stem}.blur.jpg"), blur_background(bgr, person),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            print(path.name, flush=True)
    return 0


def blur_background(bgr: np.ndarray, person: np.ndarray) -> np.ndarray:
    """A competent user's blur: the same sigma as segtool's (1.2% of the longer side), computed
    at 1/factor size and upsampled, soft edge from the confidence mask. Cheaper than segtool's
    (no edge refinement, no halo suppression), so the comparison does not favour segtool."""
    import cv2

    height, width = person.shape
    sigma = 0.012 * max(height, width)
    factor = max(1, int(sigma // 4))
    small = cv2.resize(bgr, (-(-width // factor), -(-height // factor)), interpolation=cv2.INTER_AREA)
    background = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / factor), (width, height),
                            interpolation=cv2.INTER_LINEAR)
    alpha = np.ascontiguousarray(person, dtype=np.float32)
    return cv2.blendLinear(bgr, background, alpha, 1.0 - alpha)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["serve", "folder"])
    parser.add_argument("dirs", nargs="*", type=Path)
    parser.add_argument("--models-dir", type=Path, default=HERE.parent.parent / "shared" / "models")
    parser.add_argument("--model", default="selfie")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        return serve(args.models_dir)
    return folder(args.dirs[0], args.dirs[1], args.models_dir, args.model)


if __name__ == "__main__":
    sys.exit(main())
