"""``mediapipe.X.Y`` -> ``segtool.mediapipe.X.Y`` once ``sys.modules["mediapipe"]`` is this package.

Aliasing the top package alone is not enough: Python would look for ``mediapipe.tasks`` on the
alias's ``__path__`` and load segtool's files a second time, as new modules with their own
classes (an ``ImageSegmenter`` from one would not be an instance of the other's). This finder
answers every ``mediapipe.*`` name with the module already loaded (or loaded now) under
``segtool.mediapipe.*``, so both names give one and the same module.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

ALIAS = "mediapipe"
TARGET = "segtool.mediapipe"


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mediapipe.*`` in ``segtool.mediapipe.*`` while ``mediapipe`` is segtool's."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(ALIAS + ".") or sys.modules.get(ALIAS) is not sys.modules.get(TARGET):
            return None
        real_name = TARGET + fullname[len(ALIAS):]
        try:
            module = importlib.import_module(real_name)
        except ModuleNotFoundError as exc:
            if exc.name == real_name:  # this name has no counterpart: `mediapipe.X` not found, as usual
                return None
            raise
        return importlib.machinery.ModuleSpec(fullname, self, origin=getattr(module, "__file__", None),
                                              is_package=hasattr(module, "__path__"))

    def create_module(self, spec):
        module = importlib.import_module(TARGET + spec.name[len(ALIAS):])
        spec.loader_state = module.__spec__  # Python sets __spec__ to the alias's spec next; restored below
        return module

    def exec_module(self, module) -> None:
        """Already executed under its segtool name: only give it back its own ``__spec__``, which
        relative imports check against ``__package__``."""
        alias_spec = module.__spec__
        if alias_spec is not None and alias_spec.loader_state is not None:
            module.__spec__ = alias_spec.loader_state


_FINDER = AliasFinder()


def install_finder() -> None:
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)
