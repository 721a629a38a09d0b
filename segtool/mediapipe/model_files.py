"""``BaseOptions`` -> what segtool's segmenter is given, with MediaPipe's errors for missing models.

MediaPipe's own words where its tests assert them: no model at all is ValueError "ExternalFile
must specify at least one of ...", a path that does not exist "Unable to open file at PATH"
(RuntimeError in 0.10.21, FileNotFoundError in later releases: ``ModelFileNotFoundError`` is
both), a file or buffer that is not a model ValueError.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Optional

from ..options import ImageSegmenterOptions as EngineOptions
from ..runtime import available_devices

NO_MODEL = ("ExternalFile must specify at least one of 'file_content', 'file_name', "
            "'file_pointer_meta' or 'file_descriptor_meta'.")


class ModelFileNotFoundError(FileNotFoundError, RuntimeError):
    """A model path that does not exist: FileNotFoundError (MediaPipe now) and RuntimeError (0.10.21)."""


def model_choice(base_options) -> dict:
    """The ``model`` (or ``model_buffer``) argument of segtool's ImageSegmenterOptions.

    As MediaPipe's ExternalFile handler, non-empty bytes win over a path.
    """
    buffer, path = base_options.model_asset_buffer, base_options.model_asset_path
    if buffer:
        if not isinstance(buffer, (bytes, bytearray, memoryview)):
            raise TypeError(f"model_asset_buffer must be bytes, not {type(buffer).__name__}")
        return _buffer_choice(bytes(buffer))
    if path is None or os.fspath(path) == "":
        raise ValueError(NO_MODEL)
    full = os.path.abspath(os.fspath(path))
    if not os.path.exists(full):
        raise ModelFileNotFoundError(f"Unable to open file at {full}")
    if os.path.isdir(full):
        raise ModelFileNotFoundError(f"Unable to open file at {full}: it is a directory, not a model file")
    return _path_choice(full)


def device_for(delegate) -> str:
    """segtool's device for MediaPipe's delegate: CPU (and None) -> cpu; GPU -> CUDA, else DirectML."""
    if delegate is None or int(delegate) == 0:
        return "cpu"
    gpus = [device for device in available_devices() if device != "cpu"]
    if not gpus:
        raise RuntimeError(
            "BaseOptions.Delegate.GPU: onnxruntime here has no GPU provider (CUDA needs an NVIDIA GPU "
            "and onnxruntime-gpu, DirectML onnxruntime-directml on Windows); use Delegate.CPU"
        )
    return gpus[0]


def custom_models_supported() -> bool:
    """Whether segtool's registry loads model files and bytes itself (``model_buffer`` exists)."""
    return any(f.name == "model_buffer" for f in dataclasses.fields(EngineOptions))


def _path_choice(full: str) -> dict:
    if custom_models_supported():
        return {"model": full}
    return {"model": _bundled_name(Path(full), None)}


def _buffer_choice(data: bytes) -> dict:
    if custom_models_supported():
        return {"model_buffer": data}
    return {"model": _bundled_name(None, data)}


# ---- SHIM until custom model loading lands (branch `mediapipe`): remove with it. ----------------
# segtool's registry accepts only manifest names today. A file or bytes that IS one of the models
# segtool ships (its ONNX file, or the TFLite file it was converted from, known by sha256) maps to
# that model's name; anything else is refused with a message that says so.

def _bundled_name(path: Optional[Path], data: Optional[bytes]) -> str:
    from .. import registry

    digest = hashlib.sha256(data if data is not None else path.read_bytes()).hexdigest()
    for name, spec in registry.load_manifest().items():
        shipped = path is not None and path.resolve() == (registry.bundled_dir() / spec.file).resolve()
        if shipped or digest in (spec.onnx_sha256, spec.source_sha256):
            return name
    what = str(path) if path is not None else f"model_asset_buffer ({len(data)} bytes)"
    raise ValueError(f"{what}: not a model this segtool can load yet (only the models it ships, "
                     "as their .onnx or original .tflite files)")
