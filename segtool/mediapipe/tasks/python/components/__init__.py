"""``mediapipe.tasks.python.components``: the ``containers`` the segmenter's options use."""
from . import containers

__all__ = ["containers"]
