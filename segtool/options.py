"""Options and results: small frozen dataclasses named as MediaPipe Tasks names them."""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union


class RunningMode(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    LIVE_STREAM = "live_stream"


@dataclass(frozen=True)
class ImageSegmenterOptions:
    """What to run and what to return; fixed for the life of one ImageSegmenter.

    ``model`` is a manifest name (``segtool models list``), a name kept with ``segtool models add``,
    or a path (``str`` or ``os.PathLike``) to a TFLite or ONNX segmentation model.
    ``model_buffer`` holds such a file's bytes instead (MediaPipe's ``model_asset_buffer``) and wins
    over ``model``. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``directml``.
    """

    model: Union[str, os.PathLike] = "selfie"
    running_mode: RunningMode = RunningMode.IMAGE
    output_category_mask: bool = False
    output_confidence_masks: bool = True
    display_names_locale: str = "en"
    result_callback: Optional[Callable[["SegmentationResult", Any, int], None]] = None
    device: str = "auto"
    num_threads: Optional[int] = None
    # onnxruntime's idle threads spin, waiting for the next call: the lowest latency for
    # back-to-back segment() calls, but CPU taken from threads decoding or encoding beside them
    # (`segtool image` turns it off and runs several images at once instead).
    busy_wait: bool = True
    model_buffer: Optional[bytes] = None
    # segtool's own, for composites: also return SegmentationResult.subject_alpha, the sum of these
    # categories' confidence masks (postprocess.subject_classes). On the device graph it is added
    # up on the GPU, so the masks need not come back (DeepLab's 21 full-size masks are 174 MB an
    # image at 1080p) unless output_confidence_masks asks for them.
    output_subject_classes: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class ImageProcessingOptions:
    """Rotate the image clockwise by this many degrees (a multiple of 90) before inference.

    Masks still come back at the input's size and orientation.
    """

    rotation_degrees: int = 0


@dataclass(frozen=True)
class SegmentationResult:
    """``confidence_masks``: float32 (C, H, W) in label order, or None when not asked for.

    ``category_mask``: uint8 (H, W) holding category indices, or None when not asked for.

    ``subject_alpha``: float32 (H, W), with ImageSegmenterOptions.output_subject_classes only.
    """

    confidence_masks: Optional[Any] = None
    category_mask: Optional[Any] = None
    subject_alpha: Optional[Any] = None
