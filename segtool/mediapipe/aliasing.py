"""Module names that stand for other modules: ``mediapipe.X.Y`` -> ``segtool.mediapipe.X.Y`` once
``sys.modules["mediapipe"]`` is this package, and ``segtool.mediapipe.solutions.*`` ->
``segtool.mediapipe.python.solutions.*`` always (MediaPipe's ``mp.solutions`` IS
``mediapipe.python.solutions``; the shorter path must not be a second copy of it).

Aliasing the top package alone is not enough: Python would look for ``mediapipe.tasks`` on the
alias's ``__path__`` and load segtool's files a second time, as new modules with their own
classes (an ``ImageSegmenter`` from one would not be an instance of the other's). These finders
answer every aliased name with the module already loaded (or loaded now) under its real name,
so both names give one and the same module.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

ALIAS = "mediapipe"
TARGET = "segtool.mediapipe"


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``alias[.X]`` as ``target[.X]``; an alias of a package's submodules only
    (``package_alias``) works while ``sys.modules[alias]`` is the target, i.e. once installed."""

    def __init__(self, alias: str, target: str, package_alias: bool):
        self.alias, self.target, self.package_alias = alias, target, package_alias

    def _real_name(self, fullname: str):
        if self.package_alias:
            installed = sys.modules.get(self.alias) is sys.modules.get(self.target, False)
            if not installed or not fullname.startswith(self.alias + "."):
                return None
        elif fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        return self.target + fullname[len(self.alias):]

    def find_spec(self, fullname, path=None, target=None):
        real_name = self._real_name(fullname)
        if real_name is None:
            return None
        try:
            module = importlib.import_module(real_name)
        except ModuleNotFoundError as exc:
            if exc.name == real_name:  # this name has no counterpart: `mediapipe.X` not found, as usual
                return None
            raise
        return importlib.machinery.ModuleSpec(fullname, self, origin=getattr(module, "__file__", None),
                                              is_package=hasattr(module, "__path__"))

    def create_module(self, spec):
        module = importlib.import_module(self._real_name(spec.name))
        spec.loader_state = module.__spec__  # Python sets __spec__ to the alias's spec next; restored below
        return module

    def exec_module(self, module) -> None:
        """Already executed under its real name: only give it back its own ``__spec__``, which
        relative imports check against ``__package__``."""
        alias_spec = module.__spec__
        if alias_spec is not None and alias_spec.loader_state is not None:
            module.__spec__ = alias_spec.loader_state


_FINDERS = (AliasFinder(ALIAS, TARGET, package_alias=True),
            AliasFinder(TARGET + ".solutions", TARGET + ".python.solutions", package_alias=False))


def install_finder() -> None:
    for finder in _FINDERS:
        if not any(getattr(known, "alias", None) == finder.alias for known in sys.meta_path
                   if isinstance(known, AliasFinder)):
            sys.meta_path.insert(0, finder)
