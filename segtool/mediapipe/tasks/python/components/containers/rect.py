"""Rectangles, as MediaPipe's ``rect`` module has them (a region of interest is a ``Rect``)."""
from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass
class Rect:
    """A rectangle in coordinates normalised to the image (0..1, origin top left)."""

    left: float
    top: float
    right: float
    bottom: float


@dataclasses.dataclass
class NormalizedRect:
    """A rectangle with rotation (radians, clockwise) in normalised coordinates."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: Optional[float] = 0.0
    rect_id: Optional[int] = None
