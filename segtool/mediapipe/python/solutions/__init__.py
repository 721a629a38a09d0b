"""``mediapipe.python.solutions`` (``mp.solutions``): the legacy ``selfie_segmentation`` solution and
``drawing_utils``, which MediaPipe's samples for it import."""
from . import drawing_utils, selfie_segmentation

__all__ = ["drawing_utils", "selfie_segmentation"]
