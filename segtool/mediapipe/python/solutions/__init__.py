"""``mediapipe.python.solutions`` (``mp.solutions``): the legacy ``selfie_segmentation`` solution."""
from . import selfie_segmentation

__all__ = ["selfie_segmentation"]
