"""``mediapipe.solutions``: the same legacy solutions as ``mp.solutions`` (``python.solutions``)."""
from . import selfie_segmentation

__all__ = ["selfie_segmentation"]
