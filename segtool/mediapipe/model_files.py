"""``BaseOptions`` -> what segtool's segmenter is given, with MediaPipe's errors for missing models.

MediaPipe's own words where its tests assert them: no model at all is ValueError "ExternalFile
must specify at least one of ...", a path that does not exist "Unable to open file at PATH"
(RuntimeError in 0.10.21, FileNotFoundError in later releases: ``ModelFileNotFoundError`` is
both), a file or buffer that is not a model ValueError.
"""
from __future__ import annotations

import os

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
        return {"model_buffer": bytes(buffer)}
    if path is None or os.fspath(path) == "":
        raise ValueError(NO_MODEL)
    full = os.path.abspath(os.fspath(path))
    if not os.path.exists(full):
        raise ModelFileNotFoundError(f"Unable to open file at {full}")
    if os.path.isdir(full):
        raise ModelFileNotFoundError(f"Unable to open file at {full}: it is a directory, not a model file")
    return {"model": full}


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
