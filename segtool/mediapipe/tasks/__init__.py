"""``mediapipe.tasks`` and ``mp.tasks``: ``BaseOptions`` and ``vision``, from ``tasks.python``.

(In MediaPipe ``mp.tasks`` is the ``tasks.python`` module itself; here both give the same names.)
"""
from .python import BaseOptions, components, core, vision

__all__ = ["BaseOptions", "components", "core", "vision"]
