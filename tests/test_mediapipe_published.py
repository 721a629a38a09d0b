"""MediaPipe's published tests for this task, in their shape, run as a checker runs the originals.

tests/mediapipe_shaped/ holds three files written the way MediaPipe's are (0.10.21's
image_segmenter_test.py, the newest one, and the legacy selfie_segmentation_test.py): absltest,
``mediapipe.*`` imports only, data through ``test_utils`` or beside the file. Here they are laid
out as in MediaPipe's source tree, with stand-in data (MediaPipe's recorded masks from
tests/fixtures/mediapipe_compat.npz), and run unchanged with ``mediapipe`` pointed at segtool:
by ``absltest.main()`` after ``install_as_mediapipe()``, and by pytest through a conftest.py alias.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHAPED = ROOT / "tests" / "mediapipe_shaped"
FIXTURE = ROOT / "tests" / "fixtures" / "mediapipe_compat.npz"
SHARED = Path(os.environ.get("SEGTOOL_SHARED_MODELS", ROOT.parent / "shared" / "models"))
DEEPLAB = SHARED / "deeplab_v3.tflite"
pytestmark = pytest.mark.skipif(not DEEPLAB.is_file(), reason=f"MediaPipe's deeplab_v3.tflite is not in {SHARED}")

# shaped file -> where MediaPipe keeps the published one
LAYOUT = {
    "image_segmenter_0_10_21_shaped.py": "mediapipe/tasks/python/test/vision/image_segmenter_test.py",
    "image_segmenter_newest_shaped.py": "mediapipe/tasks/python/test/vision/image_segmenter_newest_test.py",
    "selfie_segmentation_shaped.py": "mediapipe/python/solutions/selfie_segmentation_test.py",
}
ALIAS = "import segtool.mediapipe; segtool.mediapipe.install_as_mediapipe()"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of MediaPipe's test layout: the tests, mediapipe/tasks/testdata/vision, solutions/testdata."""
    root = tmp_path_factory.mktemp("mediapipe_tree")
    recorded = np.load(FIXTURE)
    vision = root / "mediapipe" / "tasks" / "testdata" / "vision"
    vision.mkdir(parents=True)
    shutil.copyfile(DEEPLAB, vision / "deeplabv3.tflite")
    bgr = cv2.cvtColor(recorded["cat"], cv2.COLOR_RGB2BGR)
    # JPEG inputs, as MediaPipe's are; the goldens are MediaPipe's masks of the lossless photo
    cv2.imwrite(str(vision / "segmentation_input_rotation0.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(vision / "segmentation_golden_rotation0.png"), recorded["deeplab_cat_rot0_category"] * 10)
    cv2.imwrite(str(vision / "cat.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cat_mask = np.round(recorded["deeplab_cat_rot0_confidence"].astype(np.float32) * 255).astype(np.uint8)
    cv2.imwrite(str(vision / "cat_mask.jpg"), cat_mask)
    solutions = root / "mediapipe" / "python" / "solutions" / "testdata"
    solutions.mkdir(parents=True)
    cv2.imwrite(str(solutions / "portrait.png"), cv2.cvtColor(recorded["small_person"], cv2.COLOR_RGB2BGR))
    np.savez(solutions / "expected.npz", model_selection_0=recorded["legacy_0"], model_selection_1=recorded["legacy_1"])
    for shaped, published in LAYOUT.items():
        (root / published).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHAPED / shaped, root / published)
    return root


def run(arguments: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("TEST_SRCDIR", "SEGTOOL_MEDIAPIPE_TESTDATA")}
    return subprocess.run([sys.executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


# Each file runs once (the legacy one, fast, both ways): absltest's main, or pytest's collection.
@pytest.mark.parametrize("published", [LAYOUT["image_segmenter_0_10_21_shaped.py"],
                                       LAYOUT["selfie_segmentation_shaped.py"]], ids=["0.10.21", "legacy_selfie"])
def test_absltest_main_through_the_alias(tree, published, tmp_path):
    """``python -c "install alias; run the file as __main__"`` from another folder: the data is
    found beside the test's copy of MediaPipe's tree, as MediaPipe's test_utils finds it."""
    runner = f"{ALIAS}; import runpy, sys; sys.argv = [{str(tree / published)!r}]; " \
             f"runpy.run_path(sys.argv[0], run_name='__main__')"
    done = run(["-c", runner], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = done.stderr.strip().splitlines()
    assert summary[-1] == "OK" and summary[-3].startswith("Ran "), summary[-3:]


@pytest.mark.parametrize("checkout", [True, False], ids=["checkout_with_packages", "flat_copy"])
def test_pytest_collects_them_with_a_conftest_alias(tree, checkout, tmp_path):
    """What a checker with pytest does: a conftest.py that installs the alias, then collection.

    In a MediaPipe checkout (``__init__.py`` in every folder) pytest imports the file as
    ``mediapipe.python.solutions.selfie_segmentation_test``, a name segtool has to resolve to that
    file; in a flat copy it imports it by its file name."""
    newest, legacy = LAYOUT["image_segmenter_newest_shaped.py"], LAYOUT["selfie_segmentation_shaped.py"]
    if checkout:
        root, files = tree, [newest, legacy]
        for folder in {Path(name).parent for name in files}:
            for package in [folder, *folder.parents][:-1]:
                (tree / package / "__init__.py").touch()
    else:
        root, files = tmp_path, [Path(legacy).name]
        shutil.copytree(tree / Path(legacy).parent, tmp_path, dirs_exist_ok=True)
    (root / "conftest.py").write_text(ALIAS + "\n")
    try:
        done = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, files)], cwd=root)
    finally:
        (root / "conftest.py").unlink()
        for init in tree.rglob("__init__.py"):
            init.unlink()
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout and "error" not in done.stdout


def test_only_test_modules_of_a_mediapipe_tree_load_through_the_alias(tree):
    """MediaPipe's other modules in that tree stay not found: never MediaPipe code run on segtool's."""
    other = tree / "mediapipe" / "tasks" / "python" / "audio"
    other.mkdir(parents=True, exist_ok=True)
    (other / "audio_classifier.py").write_text("raise SystemExit('loaded MediaPipe code')\n")
    script = (f"{ALIAS}; import sys; sys.path.insert(0, {str(tree)!r})\n"
              "import mediapipe.python.solutions.selfie_segmentation_test as published\n"
              f"assert published.__file__ == {str(tree / LAYOUT['selfie_segmentation_shaped.py'])!r}\n"
              "try:\n    import mediapipe.tasks.python.audio.audio_classifier\n"
              "except ModuleNotFoundError as exc:\n    print('not found:', exc.name)\n")
    done = run(["-c", script], cwd=tree)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "not found: mediapipe.tasks.python.audio"
