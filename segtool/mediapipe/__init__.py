"""MediaPipe's Python API for image segmentation, on segtool: MediaPipe code changes only its imports.

    import segtool.mediapipe as mp
    from segtool.mediapipe.tasks.python import vision

or, leaving the code untouched, one line before it imports ``mediapipe``:

    import segtool.mediapipe; segtool.mediapipe.install_as_mediapipe()

(``sys.modules["mediapipe"] = segtool.mediapipe`` works too.) Every ``mediapipe.X.Y`` module that
MediaPipe's image segmenter code and tests import then resolves to ``segtool.mediapipe.X.Y``, the
very same module objects. What exists: ``mp.Image``, ``mp.ImageFormat``, ``mp.tasks`` (``BaseOptions``,
``vision.ImageSegmenter`` and its options, result, running mode, image processing options),
``mp.solutions.selfie_segmentation`` (the legacy solution MediaPipe 0.10.31 removed), and the
deep module paths below them. Other MediaPipe tasks are not provided.
"""
from __future__ import annotations

import importlib
import sys

from .aliasing import ALIAS, install_finder

__version__ = "0.10.21"  # the MediaPipe release whose API and outputs this reproduces

_LAZY = {
    "Image": ("segtool.mediapipe.images", "Image"),
    "ImageFormat": ("segtool.mediapipe.images", "ImageFormat"),
    "tasks": ("segtool.mediapipe.tasks", None),
    "solutions": ("segtool.mediapipe.python.solutions", None),  # as in MediaPipe: mp.solutions is python.solutions
    "python": ("segtool.mediapipe.python", None),
}

__all__ = ["Image", "ImageFormat", "install_as_mediapipe", "solutions", "tasks"]


def install_as_mediapipe() -> None:
    """Make ``import mediapipe`` (and every ``mediapipe.*`` submodule) load segtool's.

    Refuses, with ImportError, when the real MediaPipe was imported already: two copies of its
    classes would not recognise each other's objects.
    """
    current = sys.modules.get(ALIAS)
    if current is not None and current is not sys.modules[__name__]:
        raise ImportError(
            f"'{ALIAS}' is already imported from {getattr(current, '__file__', current)}; "
            "call segtool.mediapipe.install_as_mediapipe() before anything imports mediapipe"
        )
    sys.modules[ALIAS] = sys.modules[__name__]


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'segtool.mediapipe' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


# Dormant until sys.modules["mediapipe"] is this package: then `import mediapipe.tasks...` finds
# segtool's modules instead of loading second copies of them from this folder.
install_finder()
