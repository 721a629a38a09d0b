"""Convert MediaPipe's TFLite segmenter models to ONNX.

Importing this package is cheap: TensorFlow, tf2onnx and LiteRT (the
``convert`` extra) load only when a conversion or comparison runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from ..errors import ModelError

__all__ = ["ConversionError", "ConversionReport", "convert_tflite", "compare_with_tflite", "quiet_native_logs"]


class ConversionError(ModelError):
    """A TFLite file could not be converted, or the result does not match it."""


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    tflite_path: Path
    onnx_path: Path
    onnx_sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    opset: int
    dynamic_batch: bool
    batch_max_abs_diff: float | None  # batch-2 run vs two batch-1 runs; None if batch 2 fails
    tflite_tie_order: bool
    op_counts: dict[str, int]


def convert_tflite(
    tflite_path, onnx_path, *, opset: int = 17, tflite_tie_order: bool = True, batch_inputs=None
) -> ConversionReport:
    """Convert one TFLite file to ONNX, checked and with a dynamic batch where possible.

    ``tflite_tie_order`` pools in N,C,W,H order so max-pool ties resolve as in
    TFLite (a few ms on the hair model); without it results can differ where
    a pooling window holds equal values.  ``batch_inputs`` (N,H,W,C, N >= 2)
    check the dynamic batch; real images make that check meaningful for the
    selfie models, which answer ~0 everywhere to noise.
    """
    from ._convert import convert

    return convert(
        tflite_path, onnx_path, opset=opset, tflite_tie_order=tflite_tie_order, batch_inputs=batch_inputs
    )


def compare_with_tflite(tflite_path, onnx_path, inputs) -> float:
    """Max abs difference over all outputs between LiteRT and onnxruntime for NHWC ``inputs``."""
    from ._convert import compare

    return compare(tflite_path, onnx_path, inputs)


@contextlib.contextmanager
def quiet_native_logs():
    """TensorFlow, absl and XNNPACK log from C++ straight to file descriptor 2 (oneDNN notices,
    "Created TensorFlow Lite XNNPACK delegate", ...): point it elsewhere while they run.

    What segtool itself has to say comes afterwards, as the one-line error or the install line.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
