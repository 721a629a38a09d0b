"""``ImageProcessingOptions``: a rotation (multiple of 90 degrees, clockwise) applied before inference.

The image segmenter, as MediaPipe's, refuses ``region_of_interest`` (ValueError). Rotated masks
come back in MediaPipe's layout: the masks of the rotated view, resized to the input's width and
height (segtool's own API turns them back instead).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from segtool.mediapipe.tasks.python.components.containers.rect import Rect


@dataclasses.dataclass
class ImageProcessingOptions:
    region_of_interest: Optional[Rect] = None
    rotation_degrees: int = 0
