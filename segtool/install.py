"""`segtool models install` and `verify`: fetch a TFLite file, check it, convert it, record it."""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import registry
from .errors import ModelError, UsageError
from .io import atomic_output

Progress = Callable[[int, Optional[int]], None]


@dataclass(frozen=True)
class InstallReport:
    name: str
    path: Path
    already: bool = False
    source: str = ""
    source_sha256: str = ""
    pinned: bool = True


def install(name: str, *, source: Optional[str] = None, force: bool = False,
            on_progress: Progress = lambda done, total: None) -> InstallReport:
    """Install model ``name`` into the user's model directory; a second install is a no-op.

    ``source``: a folder holding the model's TFLite file, a URL, or None for the official URL.
    """
    spec = registry.spec_for(name)
    if spec.bundled:
        return InstallReport(name, registry.bundled_dir() / spec.file, already=True, source="bundled")
    target = registry.installed_path(spec)
    if not force and _intact(name):
        return InstallReport(name, target, already=True)
    registry.user_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segtool-install-") as work:
        tflite, origin = fetch_tflite(spec, source, Path(work), on_progress)
        facts = convert_and_describe(spec, tflite, Path(work) / spec.file)
        source_sha256 = registry.sha256_of(tflite)
        facts["source"] = {"sha256": source_sha256, "from": origin}
        with atomic_output(target, guarded=False) as tmp:  # segtool's own model store
            shutil.copyfile(Path(work) / spec.file, tmp)
        with atomic_output(registry.sidecar_path(target), guarded=False) as tmp:
            tmp.write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
    return InstallReport(name, target, source=origin, source_sha256=source_sha256,
                         pinned=bool(spec.source_sha256))


def _intact(name: str) -> bool:
    with contextlib.suppress(ModelError):
        registry.verify(registry.locate(name))
        return True
    return False


def fetch_tflite(spec: registry.ModelSpec, source: Optional[str], work: Path,
                 on_progress: Progress) -> tuple[Path, str]:
    """The model's TFLite file in ``work``, its sha256 checked where the manifest pins one."""
    destination = work / spec.source_file
    if source and not _is_url(source):
        origin = Path(source) / spec.source_file if Path(source).is_dir() else Path(source)
        if not origin.is_file():
            raise UsageError(f"{origin}: no such file (expected {spec.source_file} there)")
        shutil.copyfile(origin, destination)
        origin = str(origin)
    else:
        origin = source or spec.source_url
        download(origin, destination, on_progress)
    _check_sha256(spec, destination, origin)
    return destination, origin


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


def download(url: str, destination: Path, on_progress: Progress) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                done += len(block)
                on_progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelError(f"{url}: download failed ({exc}); use --from DIR with a copy of the file") from exc


def _check_sha256(spec: registry.ModelSpec, path: Path, origin: str) -> None:
    # A model with no pinned sha256 (multiclass: no copy was reachable to pin) is accepted on
    # its TFLite signature alone; the CLI prints the sha256 it recorded so users can compare.
    if spec.source_sha256 and registry.sha256_of(path) != spec.source_sha256:
        raise ModelError(
            f"{origin}: sha256 {registry.sha256_of(path)[:16]}… is not the pinned "
            f"{spec.source_sha256[:16]}… of {spec.source_file}; refusing to install it"
        )


def convert_and_describe(spec: registry.ModelSpec, tflite: Path, onnx_path: Path) -> dict:
    """Check the TFLite signature, convert to ONNX, and return the sidecar's facts."""
    try:
        from .convert import convert_tflite
        from .convert.metadata import NotTFLiteError, check_signature, read_metadata
    except ImportError as exc:
        raise ModelError(f"converting '{spec.name}' needs TensorFlow: pip install 'segtool[convert]' ({exc})") from exc
    height, width, channels = spec.input_height, spec.input_width, spec.input_channels
    try:
        check_signature(tflite, [(1, height, width, channels)], [(1, height, width, spec.output_channels)])
    except NotTFLiteError as exc:
        raise ModelError(f"{tflite.name}: not the expected '{spec.name}' model ({exc})") from exc
    convert_tflite(tflite, onnx_path)
    return _facts(spec, read_metadata(tflite), registry.sha256_of(onnx_path))


def _facts(spec: registry.ModelSpec, metadata, onnx_sha256: str) -> dict:
    facts = {"onnx_sha256": onnx_sha256,
             "input": {"height": spec.input_height, "width": spec.input_width, "channels": spec.input_channels}}
    if metadata.labels and len(metadata.labels) == len(spec.labels):
        facts["labels"] = list(metadata.labels)
    if metadata.localized_labels:
        facts["localized_labels"] = {k: list(v) for k, v in metadata.localized_labels.items()}
    if metadata.normalization:
        facts["normalization"] = {"mean": metadata.normalization.mean[0], "std": metadata.normalization.std[0]}
    return facts


@dataclass(frozen=True)
class VerifyReport:
    name: str
    state: str  # "ok", "bundled ok", "damaged", "not installed"
    detail: str = ""


def verify_all() -> list[VerifyReport]:
    reports = []
    for name, spec in registry.load_manifest().items():
        try:
            registry.verify(registry.locate(name))
            reports.append(VerifyReport(name, "ok"))
        except registry.ModelNotInstalledError:
            reports.append(VerifyReport(name, "not installed"))
        except ModelError as exc:
            reports.append(VerifyReport(name, "damaged", str(exc)))
    return reports
