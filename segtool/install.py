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
    trusted: bool = False  # installed under --trust-file although its sha256 is not the pinned one


def install(name: str, *, source: Optional[str] = None, force: bool = False, trust_file: bool = False,
            on_progress: Progress = lambda done, total: None) -> InstallReport:
    """Install model ``name`` into the user's model directory; a second install is a no-op.

    ``source``: a folder holding the model's TFLite file, a URL, or None for the official URL.
    ``trust_file``: install a file whose sha256 is not the pinned one (the user vouches for it);
    its TFLite signature is still checked.
    """
    spec = registry.spec_for(name)
    if spec.bundled:
        return InstallReport(name, registry.bundled_dir() / spec.file, already=True, source="bundled")
    target = registry.installed_path(spec)
    if not force and _intact(name):
        return InstallReport(name, target, already=True)
    folder = _writable_models_dir()
    with tempfile.TemporaryDirectory(prefix="segtool-install-") as work:
        tflite, origin = fetch_tflite(spec, source, Path(work), on_progress)
        source_sha256 = registry.sha256_of(tflite)
        trusted = source_sha256 != spec.source_sha256
        if trusted and not trust_file:
            raise _not_pinned(spec, tflite, origin, source_sha256)
        facts = convert_and_describe(spec, tflite, Path(work) / spec.file)
        facts["source"] = {"sha256": source_sha256, "from": origin, "trusted": trusted}
        try:
            with atomic_output(target, guarded=False) as tmp:
                shutil.copyfile(Path(work) / spec.file, tmp)
            with atomic_output(registry.sidecar_path(target), guarded=False) as tmp:
                tmp.write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise _folder_error(folder, exc) from exc
    return InstallReport(name, target, source=origin, source_sha256=source_sha256, trusted=trusted)


def _not_pinned(spec: registry.ModelSpec, tflite: Path, origin: str, sha256: str) -> ModelError:
    size = tflite.stat().st_size
    if spec.source_size and size != spec.source_size:
        what = f"size {size:,} bytes is not the pinned {spec.source_size:,}"
    else:
        what = f"sha256 {sha256[:16]}… is not the pinned {(spec.source_sha256 or 'none')[:16]}…"
    return ModelError(f"{origin}: {what} of the official {spec.source_file}; refusing to install it "
                      "(--trust-file installs it anyway)")


def _writable_models_dir() -> Path:
    """The user's model folder, created; a ModelError before any download when it cannot take files."""
    folder = registry.user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:  # read-only, no permission, or a regular file somewhere on the path
        raise _folder_error(folder, exc) from exc
    return folder


def _folder_error(folder: Path, exc: OSError) -> ModelError:
    return ModelError(f"{folder}: cannot install models there ({exc.strerror or exc}); "
                      "set SEGTOOL_MODELS_DIR to a writable folder")


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


def convert_and_describe(spec: registry.ModelSpec, tflite: Path, onnx_path: Path) -> dict:
    """Check the TFLite signature, convert to ONNX, and return the sidecar's facts."""
    from .convert import quiet_native_logs

    with quiet_native_logs():
        try:
            from .convert import convert_tflite
            from .convert.metadata import NotTFLiteError, check_signature, read_metadata
        except ImportError as exc:
            raise ModelError(f"converting '{spec.name}' needs TensorFlow: {registry.extra_hint('convert')} "
                             f"({exc})") from exc
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
            registry.verify(registry.locate(name), remembered=False)  # asked to check: every byte
            reports.append(VerifyReport(name, "ok"))
        except registry.ModelNotInstalledError:
            reports.append(VerifyReport(name, "not installed"))
        except ModelError as exc:
            reports.append(VerifyReport(name, "damaged", str(exc)))
    return reports
