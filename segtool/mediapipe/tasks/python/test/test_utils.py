"""``mediapipe.tasks.python.test.test_utils``: where MediaPipe's published tests find their data.

``get_test_data_path("mediapipe/tasks/testdata/vision/deeplabv3.tflite")`` (or a bare file name)
looks, in turn, under: absl's ``--test_srcdir``, ``$TEST_SRCDIR``, ``$SEGTOOL_MEDIAPIPE_TESTDATA``,
the working directory, the folder of the test file asking and the folders above it, and
``/tmp/root/sources/mediapipe`` (the root the 0.10.21 wheel's own copy of this module walks). First
for the path itself under each root, then, as MediaPipe does, for any file whose path ends with it.
So a copy of MediaPipe's test tree (``mediapipe/tasks/testdata/vision/...`` beside
``mediapipe/tasks/python/test/vision/image_segmenter_test.py``) works from anywhere.
"""
from __future__ import annotations

import os
import sys

WHEEL_BUILD_ROOT = "/tmp/root/sources/mediapipe"  # hard-coded in mediapipe 0.10.21's test_utils


def test_srcdir() -> str:
    """The test data root from absl's ``--test_srcdir`` or ``$TEST_SRCDIR``."""
    flag = _absl_test_srcdir()
    if flag:
        return flag
    if "TEST_SRCDIR" in os.environ:
        return os.environ["TEST_SRCDIR"]
    raise RuntimeError("Missing TEST_SRCDIR environment.")


def get_test_data_path(file_or_dirname_path: str) -> str:
    """Full path of a test data file or folder; ValueError naming the folders searched if none."""
    if os.path.isabs(file_or_dirname_path) and os.path.exists(file_or_dirname_path):
        return file_or_dirname_path
    caller = sys._getframe(1).f_globals.get("__file__")
    roots = _roots(caller)
    for root in roots + _ancestors(caller):
        candidate = os.path.join(root, file_or_dirname_path)
        if os.path.exists(candidate):
            return candidate
    for root in roots:
        for directory, subdirs, files in os.walk(root):
            for name in subdirs + files:
                path = os.path.join(directory, name)
                if path.endswith(file_or_dirname_path):
                    return path
    raise ValueError(f"No {file_or_dirname_path} in test directory: {os.pathsep.join(roots)}.")


def create_calibration_file(file_dir: str, file_name: str = "score_calibration.txt",
                            content: str = "1.0,2.0,3.0,4.0") -> str:
    """Write a score calibration file, as MediaPipe's helper does; returns its path."""
    path = os.path.join(file_dir, file_name)
    with open(path, mode="w") as stream:
        stream.write(content)
    return path


def _roots(caller) -> list:
    """Folders searched whole: the configured roots, the working directory, the caller's folder."""
    candidates = [_absl_test_srcdir(), os.environ.get("TEST_SRCDIR"),
                  os.environ.get("SEGTOOL_MEDIAPIPE_TESTDATA"), os.getcwd(),
                  os.path.dirname(os.path.abspath(caller)) if caller else None, WHEEL_BUILD_ROOT]
    roots: list = []
    for root in candidates:
        if root and os.path.isdir(root) and root not in roots:
            roots.append(root)
    return roots


def _ancestors(caller) -> list:
    """The folders above the calling test file: a copy of MediaPipe's tree has its root there."""
    if not caller:
        return []
    folders, folder = [], os.path.dirname(os.path.abspath(caller))
    while os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
        folders.append(folder)
    return folders


def _absl_test_srcdir():
    try:
        from absl import flags
    except ImportError:
        return None
    try:
        return flags.FLAGS["test_srcdir"].value if "test_srcdir" in flags.FLAGS else None
    except flags.UnparsedFlagAccessError:  # read before absl parsed the command line
        return None
