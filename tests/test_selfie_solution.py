"""The legacy ``mp.solutions.selfie_segmentation`` on segtool, against MediaPipe 0.10.21's own masks.

tests/fixtures/mediapipe_compat.npz holds what MediaPipe 0.10.21's SelfieSegmentation returned
for a 100x150 photo (smaller than both models' inputs, so the graph's black border shows) with
``model_selection`` 0 and 1 (scripts/make_mediapipe_compat_fixture.py).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import segtool.mediapipe as mp
from segtool.mediapipe.solutions import selfie_segmentation as solutions_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mediapipe_compat.npz"
mp_selfie = mp.solutions.selfie_segmentation


@pytest.fixture(scope="module")
def reference() -> dict:
    return dict(np.load(FIXTURE))


@pytest.mark.parametrize("model_selection", [0, 1])
def test_masks_equal_mediapipe_0_10_21(model_selection, reference):
    with mp_selfie.SelfieSegmentation(model_selection=model_selection) as segmentation:
        mask = segmentation.process(reference["small_person"]).segmentation_mask
    expected = reference[f"legacy_{model_selection}"]
    assert mask.dtype == np.float32 and mask.shape == expected.shape == (100, 150)
    assert np.abs(mask - expected).max() <= 1e-3  # measured: 5.4e-6 (general), 7.7e-6 (landscape)


def test_the_two_models_differ_and_the_default_is_the_general_one(reference):
    image = reference["small_person"]
    with mp_selfie.SelfieSegmentation() as default, mp_selfie.SelfieSegmentation(model_selection=1) as landscape:
        general = default.process(image).segmentation_mask
        assert np.abs(general - reference["legacy_0"]).max() <= 1e-3
        assert np.abs(general - landscape.process(image).segmentation_mask).max() > 0.05


def test_both_import_paths_give_the_same_solution():
    assert solutions_path.SelfieSegmentation is mp_selfie.SelfieSegmentation


def test_a_blank_image_has_no_person():
    with mp_selfie.SelfieSegmentation() as segmentation:
        mask = segmentation.process(np.full((100, 100, 3), 255, np.uint8)).segmentation_mask
    assert (mask * 255).astype(int).max() < 1


@pytest.mark.parametrize("shape", [(3, 3, 4), (3, 3), (3, 3, 1)])
def test_only_three_channel_rgb_is_accepted(shape):
    with mp_selfie.SelfieSegmentation() as segmentation:
        with pytest.raises(ValueError, match="^Input image must contain three channel rgb data.$"):
            segmentation.process(np.zeros(shape, np.uint8))


def test_model_selection_is_zero_or_one():
    with pytest.raises(ValueError, match="model_selection must be 0 .* or 1"):
        mp_selfie.SelfieSegmentation(model_selection=2)


def test_close_twice_is_fine_and_use_after_close_is_an_error(reference):
    segmentation = mp_selfie.SelfieSegmentation()
    segmentation.close()
    segmentation.close()
    with pytest.raises(ValueError, match="is None"):
        segmentation.process(reference["small_person"])


def test_mediapipe_code_runs_through_the_alias(tmp_path, reference):
    """Shaped like MediaPipe's own selfie_segmentation_test: the alias, a white image, a portrait."""
    np.save(tmp_path / "portrait.npy", reference["small_person"])
    script = f"""
import numpy as np, segtool.mediapipe
segtool.mediapipe.install_as_mediapipe()
import mediapipe as mp
from mediapipe.python.solutions import selfie_segmentation as mp_selfie_segmentation
image = np.load({str(tmp_path / "portrait.npy")!r})
for selection in (0, 1):
    with mp_selfie_segmentation.SelfieSegmentation(model_selection=selection) as solution:
        mask = solution.process(image).segmentation_mask
        assert mask.shape == image.shape[:2] and 0 <= mask.min() and mask.max() <= 1
        assert (solution.process(np.full((64, 64, 3), 255, np.uint8)).segmentation_mask * 255).astype(int).max() < 1
with mp.solutions.selfie_segmentation.SelfieSegmentation() as solution:
    try:
        solution.process(np.zeros((3, 3, 4), np.uint8))
    except ValueError as exc:
        assert str(exc) == "Input image must contain three channel rgb data."
    else:
        raise AssertionError("a 4-channel image was accepted")
print("solution ran")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "solution ran"
