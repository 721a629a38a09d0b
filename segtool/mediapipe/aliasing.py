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
import importlib.util
import os
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
            if exc.name and (real_name + ".").startswith(exc.name + "."):  # no counterpart (nor parent):
                # a test of a MediaPipe tree, or not found as usual
                return test_module_spec(fullname) if self.package_alias else None
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


def test_module_spec(fullname: str):
    """MediaPipe's own test files, at their place in a MediaPipe tree on ``sys.path`` (a source
    checkout, the wheel's install), for ``mediapipe.*`` names segtool does not have.

    pytest imports ``mediapipe/tasks/python/test/vision/image_segmenter_test.py`` of such a tree as
    ``mediapipe.tasks.python.test.vision.image_segmenter_test``; under the alias that name must
    still reach the file. Only test modules and the test packages holding them are looked up (a
    name with a ``test`` or ``tests`` part, or one named as pytest collects: ``*_test``,
    ``test_*``): any other MediaPipe module stays "not found", never a copy of MediaPipe's own
    code run against segtool's.
    """
    parts = fullname.split(".")
    if not any(_is_test_name(part) for part in parts[1:]):
        return None
    own = os.path.realpath(os.path.dirname(sys.modules[TARGET].__file__))
    for entry in sys.path:
        place = os.path.join(entry or os.getcwd(), *parts)
        if os.path.realpath(place).startswith(own + os.sep):
            continue
        if os.path.isfile(place + ".py"):
            return importlib.util.spec_from_file_location(fullname, place + ".py")
        if os.path.isdir(place):
            init = os.path.join(place, "__init__.py")
            if os.path.isfile(init):
                return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[place])
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [place]
            return spec
    return None


def _is_test_name(part: str) -> bool:
    return part in ("test", "tests") or part.endswith("_test") or part.startswith("test_")


_FINDERS = (AliasFinder(ALIAS, TARGET, package_alias=True),
            AliasFinder(TARGET + ".solutions", TARGET + ".python.solutions", package_alias=False))


def install_finder() -> None:
    for finder in _FINDERS:
        if not any(getattr(known, "alias", None) == finder.alias for known in sys.meta_path
                   if isinstance(known, AliasFinder)):
            sys.meta_path.insert(0, finder)
