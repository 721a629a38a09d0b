"""``Image`` and ``ImageFormat`` where MediaPipe's newer releases keep them (``vision.core.image``)."""
from segtool.mediapipe.images import Image, ImageFormat

__all__ = ["Image", "ImageFormat"]
