"""``mediapipe.python._framework_bindings.image``: ``Image``."""
from ...images import Image

__all__ = ["Image"]
