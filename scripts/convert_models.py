#!/usr/bin/env python
"""Convert MediaPipe's TFLite segmenters to ONNX and record what they say about themselves.

For each model: verify the source's pinned sha256, check its signature, read its
metadata, convert, compare with LiteRT on random inputs and a real photo, write
<out>/<file> and update the model's entry in models/manifest.json.

  python scripts/convert_models.py --source ../shared/models
  python scripts/convert_models.py --source ../shared/models --models hair   # hair.onnx stays untracked
  python scripts/convert_models.py --models multiclass                         # downloads, checks the pinned sha256

Needs the conversion and dev extras: pip install -e '.[dev]'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run against this checkout, installed or not

from segtool.convert import ConversionError, convert_tflite  # noqa: E402
from segtool.convert.pinned import compare_pinned  # noqa: E402
from segtool.convert.metadata import NotTFLiteError, check_signature, read_metadata  # noqa: E402
from segtool.registry import sha256_of  # noqa: E402

TOLERANCE = 1e-3
DOWNLOAD_TIMEOUT_S = 60


class ScriptError(Exception):
    """One model failed; the message says what to do."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="folder holding the TFLite files (default: download them)")
    parser.add_argument("--models", help="comma-separated manifest names (default: the bundled models)")
    parser.add_argument("--out", type=Path, default=REPO / "models", help="where the .onnx files go")
    parser.add_argument("--manifest", type=Path, default=REPO / "models" / "manifest.json")
    parser.add_argument(
        "--allow-unpinned", action="store_true", help="accept a source whose manifest sha256 is null"
    )
    return parser.parse_args(argv)


def load_manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dump_json(value, indent: int = 0, width: int = 80) -> str:
    """indent=2, with scalar lists and short scalar dicts on one line, as the manifest is written."""
    pad = " " * indent
    if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and not any(isinstance(v, (dict, list)) for v in value.values()):
        flat = json.dumps(value, ensure_ascii=False)
        if len(flat) <= width:
            return flat
    if isinstance(value, dict) and value:
        items = [f"{pad}  {json.dumps(k)}: {dump_json(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        items = [f"{pad}  {dump_json(v, indent + 2, width)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


def write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_json(manifest) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def select_models(manifest: dict, names: str | None) -> list[str]:
    models = manifest["models"]
    if not names:
        return [name for name, entry in models.items() if entry.get("bundled")]
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in models]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(models)}")
    return chosen


def fetch_source(name: str, entry: dict, args, workdir: Path) -> Path:
    source = entry["source"]
    if args.source is not None:
        path = args.source / source["file"]
        if not path.is_file():
            raise ScriptError(f"{path} does not exist; pass the folder that holds {source['file']}")
    else:
        path = workdir / source["file"]
        log(f"{name}: downloading {source['url']}")
        try:
            with urllib.request.urlopen(source["url"], timeout=DOWNLOAD_TIMEOUT_S) as response:
                with open(path, "wb") as f:
                    shutil.copyfileobj(response, f)
        except OSError as exc:
            raise ScriptError(f"download of {source['url']} failed: {exc}; or pass --source DIR") from exc
    verify_sha256(name, path, source.get("sha256"), args.allow_unpinned)
    return path


def verify_sha256(name: str, path: Path, expected: str | None, allow_unpinned: bool) -> None:
    actual = sha256_of(path)
    if expected is None:
        if not allow_unpinned:
            raise ScriptError(
                f"the manifest pins no sha256 for {name} ({path} has {actual}); "
                "check the file, then pin it in models/manifest.json or pass --allow-unpinned"
            )
        log(f"{name}: unpinned source accepted, sha256 {actual}")
    elif actual != expected:
        raise ScriptError(f"{path} has sha256 {actual}, the manifest pins {expected}: not the expected model")


def expected_shapes(entry: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = entry["input"]
    out_channels = 1 if entry["activation"] == "none" else len(entry["labels"])
    return (
        (1, size["height"], size["width"], size["channels"]),
        (1, size["height"], size["width"], out_channels),
    )


def normalization_of(meta, entry: dict) -> dict:
    """The metadata's normalization when present; one value for all channels is written as a number."""
    if meta.normalization is None:
        return entry["normalization"]

    def compact(values):
        return float(values[0]) if len(set(values)) == 1 else [float(v) for v in values]

    return {"mean": compact(meta.normalization.mean), "std": compact(meta.normalization.std)}


def labels_of(name: str, meta, entry: dict, out_channels: int) -> list[str]:
    """Metadata labels when they name each output channel; a 1-channel model keeps the manifest's pair."""
    labels = list(meta.labels) if meta.labels else None
    if labels is None or labels == entry["labels"]:
        return entry["labels"]
    if out_channels > 1 and len(labels) == out_channels:
        log(f"{name}: labels from the model's metadata replace the manifest's: {labels}")
        return labels
    log(f"{name}: keeping the manifest's labels {entry['labels']}; the metadata says {labels}")
    return entry["labels"]


def model_inputs(shape, normalization: dict):
    """(two random items, the photo and its mirror image) in the model's input range.

    Hair's fourth channel (the previous frame's mask) is zeros, as MediaPipe feeds in image mode.
    """
    import cv2
    import numpy as np
    from skimage import data

    _, h, w, c = shape
    mean = np.asarray(normalization["mean"], np.float32)
    std = np.asarray(normalization["std"], np.float32)
    photo = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    photos = np.stack([photo, photo[:, ::-1]])
    noise = np.random.default_rng(0).uniform(0, 255, (2, h, w, 3)).astype(np.float32)
    real, rand = (photos - mean) / std, (noise - mean) / std
    if c == 4:
        real = np.concatenate([real, np.zeros((2, h, w, 1), np.float32)], axis=-1)
        rand = np.concatenate([rand, np.random.default_rng(1).random((2, h, w, 1), np.float32)], axis=-1)
    return rand, real


def convert_one(name: str, entry: dict, tflite: Path, out_dir: Path) -> dict:
    in_shape, out_shape = expected_shapes(entry)
    try:
        check_signature(tflite, [in_shape], [out_shape])
    except NotTFLiteError as exc:
        raise ScriptError(str(exc)) from exc
    meta = read_metadata(tflite)
    normalization = normalization_of(meta, entry)
    rand, real = model_inputs(in_shape, normalization)
    target = out_dir / entry["file"]
    staging = out_dir / (entry["file"] + ".new")
    try:
        report = convert_tflite(tflite, staging, batch_inputs=real)
        check_against_tflite(name, tflite, staging, rand, real, report)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return derived_fields(name, entry, meta, normalization, out_shape[-1], report)


def check_against_tflite(name: str, tflite: Path, onnx_path: Path, rand, real, report) -> None:
    # Pooling decisions are checked on LiteRT's own inputs to each pooling: where a window's two
    # largest values differ by float rounding only, onnxruntime may pick the other one (counted
    # as "flipped"), which no conversion can avoid (segtool.convert.pinned says why).
    results = {"random": compare_pinned(tflite, onnx_path, rand), "astronaut": compare_pinned(tflite, onnx_path, real)}
    diffs = {label: r.max_abs_diff for label, r in results.items()}
    flipped = sum(r.flipped_windows for r in results.values())
    print(
        f"{name}: max abs diff vs TFLite: random {diffs['random']:.3g}, astronaut {diffs['astronaut']:.3g}; "
        f"{flipped} pooling windows decided by float noise; "
        f"dynamic batch {report.dynamic_batch} (batch-2 diff {report.batch_max_abs_diff})"
    )
    worst = max(diffs.values())
    if worst > TOLERANCE:
        raise ScriptError(f"ONNX differs from TFLite by {worst:.3g} (> {TOLERANCE}); not written")


def derived_fields(name: str, entry: dict, meta, normalization: dict, out_channels: int, report) -> dict:
    _, h, w, c = report.input_shape
    fields = {
        "input": {"height": h, "width": w, "channels": c},
        "normalization": normalization,
        "labels": labels_of(name, meta, entry, out_channels),
    }
    if meta.localized_labels:
        fields["localized_labels"] = {k: list(v) for k, v in sorted(meta.localized_labels.items())}
    # Only a committed file has a stable hash: models converted on a user's machine
    # depend on their tf2onnx version.
    if entry.get("bundled"):
        fields["onnx_sha256"] = report.onnx_sha256
    return fields


def apply_fields(entry: dict, fields: dict) -> dict:
    """The entry with fields set; onnx_sha256 goes right after "file"."""
    updated = {}
    for key, value in entry.items():
        updated[key] = fields.get(key, value)
        if key == "file" and "onnx_sha256" in fields:
            updated["onnx_sha256"] = fields["onnx_sha256"]
    for key, value in fields.items():
        updated.setdefault(key, value)
    if "onnx_sha256" not in fields:
        updated.pop("onnx_sha256", None)
    return updated


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    manifest = load_manifest(args.manifest)
    names = select_models(manifest, args.models)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory(prefix="segtool-models-") as workdir:
        for name in names:
            entry = manifest["models"][name]
            try:
                tflite = fetch_source(name, entry, args, Path(workdir))
                fields = convert_one(name, entry, tflite, args.out)
            except (ScriptError, ConversionError) as exc:
                failures.append(name)
                log(f"error: {name}: {exc}")
                continue
            manifest["models"][name] = apply_fields(entry, fields)
            write_manifest(args.manifest, manifest)
            log(f"{name}: wrote {args.out / entry['file']}")
    if failures:
        log(f"failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
