"""``mediapipe.solutions.selfie_segmentation``: see ``segtool.mediapipe.python.solutions.selfie_segmentation``."""
from ..python.solutions.selfie_segmentation import SelfieSegmentation

__all__ = ["SelfieSegmentation"]
