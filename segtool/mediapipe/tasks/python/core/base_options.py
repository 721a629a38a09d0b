"""``BaseOptions``: which model to run, and on what.

``model_asset_path`` or ``model_asset_buffer`` name the model as in MediaPipe (a TFLite or ONNX
file, or its bytes). ``delegate``: ``CPU`` (and ``None``, MediaPipe's default) runs on the CPU;
``GPU`` runs on CUDA where onnxruntime-gpu sees an NVIDIA GPU, else DirectML where
onnxruntime-directml is installed (Windows), and is an error where neither is: segtool has no
OpenGL/EGL path, but it does have a GPU on Windows, which MediaPipe's Python does not.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Optional


@dataclasses.dataclass
class BaseOptions:
    """Base options of MediaPipe Tasks: the model (a path or its bytes) and the delegate."""

    class Delegate(enum.IntEnum):
        CPU = 0
        GPU = 1

    model_asset_path: Optional[str] = None
    model_asset_buffer: Optional[bytes] = None
    delegate: Optional[Delegate] = None
