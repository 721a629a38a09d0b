"""``mediapipe.python._framework_bindings.image_frame``: ``ImageFormat``."""
from ...images import ImageFormat

__all__ = ["ImageFormat"]
