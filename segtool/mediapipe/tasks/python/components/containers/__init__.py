"""``mediapipe.tasks.python.components.containers``: ``rect`` (``Rect``, ``NormalizedRect``)."""
from . import rect
from .rect import NormalizedRect, Rect

__all__ = ["NormalizedRect", "Rect", "rect"]
