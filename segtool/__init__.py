"""segtool: MediaPipe's image segmenter models on onnxruntime, for shells and scripts.

    from segtool import ImageSegmenter, ImageSegmenterOptions
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model="selfie")) as segmenter:
        result = segmenter.segment(rgb_uint8_array)

Attributes load lazily so that `import segtool` (and the CLI's start-up) stays light.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ImageSegmenter": "segtool.segmenter",
    "ImageSegmenterOptions": "segtool.options",
    "ImageProcessingOptions": "segtool.options",
    "RunningMode": "segtool.options",
    "SegmentationResult": "segtool.options",
    "SegtoolError": "segtool.errors",
    "read_image": "segtool.io",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'segtool' has no attribute {name!r}")
