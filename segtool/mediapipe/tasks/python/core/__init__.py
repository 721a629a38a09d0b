"""``mediapipe.tasks.python.core``: ``base_options``."""
from . import base_options

__all__ = ["base_options"]
