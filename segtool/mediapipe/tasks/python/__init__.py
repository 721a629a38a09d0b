"""``mediapipe.tasks.python`` (``mp.tasks``): ``BaseOptions`` and the ``vision`` image segmenter."""
from . import components, core, vision
from .core.base_options import BaseOptions

__all__ = ["BaseOptions", "components", "core", "vision"]
