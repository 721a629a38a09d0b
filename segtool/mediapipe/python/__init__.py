"""``mediapipe.python``: ``Image``, ``ImageFormat`` and ``solutions``, where MediaPipe 0.10.21 keeps them."""
from ..images import Image, ImageFormat

__all__ = ["Image", "ImageFormat"]
