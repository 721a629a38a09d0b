"""segtool's masks against MediaPipe Tasks' own, recorded in tests/fixtures/mediapipe.

The fixtures come from scripts/make_reference_masks.py (MediaPipe 0.10.21, CPU, IMAGE mode) and
keep MediaPipe's conventions: a one-channel model's single confidence mask is the person
probability, and its category mask is 0 for person, 255 for background.

* test_segmenter_matches_mediapipe: the public API, at the agreement the project promises.
* test_pipeline_matches_mediapipe: preprocess -> onnxruntime (CPU) -> postprocess straight on
  models/<name>.onnx, held to what exact resampling gives (measured: mean |diff| <= 2e-4 with
  float16 fixtures, category agreement >= 0.99999); a half-pixel slip fails it.
* test_image_to_tensor_is_bit_exact: preprocess against MediaPipe's ImageToTensorCalculator.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from segtool import registry
from segtool_process import needs_model
from segtool.postprocess import postprocess
from segtool.preprocess import image_to_tensor

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "mediapipe"
ONE_CHANNEL = {"selfie", "selfie_landscape"}  # MediaPipe: one mask; segtool: (1 - p, p)
FOREGROUND = {"selfie": 1, "selfie_landscape": 1, "hair": 1}  # segtool's index of the IoU class

# What the project promises (public API, any execution provider).
PROMISED = {
    "selfie": {"iou": 0.99, "mean_abs": 0.01},
    "selfie_landscape": {"iou": 0.99, "mean_abs": 0.01},
    "deeplab": {"agreement": 0.98},
    "hair": {"iou": 0.97},
}
# What exact resampling gives on CPU; the network alone differs from TFLite by ~5e-5.
EXACT = {"mean_abs": 1e-3, "agreement": 0.999}

CASES = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.npz"))


def load_image(name: str) -> np.ndarray:
    """The fixture's input image, from the package that ships it."""
    if name == "grace_hopper":
        cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib ships grace_hopper.jpg")
        from PIL import Image
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the test images")
    return np.ascontiguousarray(getattr(data, name)())


def load_case(case: str):
    """(model, fixture, image) for a fixture path like 'selfie/astronaut_rot180.npz'."""
    model, stem = case[:-4].split("/")
    fixture = dict(np.load(FIXTURES / case))
    image = load_image(stem.split("_rot")[0])
    if hashlib.sha256(image.tobytes()).hexdigest() != str(fixture["image_sha256"]):
        pytest.skip(f"{stem}: this environment decodes the image differently from the fixture's")
    return model, fixture, image


def agreement(model: str, fixture: dict, confidence: np.ndarray, category: np.ndarray) -> dict:
    """Compare segtool's masks with MediaPipe's, mapping MediaPipe's conventions onto ours."""
    channels = fixture["confidence_channels"] + (1 if model in ONE_CHANNEL else 0)
    reference = fixture["confidence_masks"].astype(np.float32)
    mp_category = fixture["category_mask"]
    if model in ONE_CHANNEL:
        mp_category = (mp_category == 0).astype(np.uint8)
    result = {
        "mean_abs": float(np.abs(confidence[channels] - reference).mean()),
        "agreement": float((category == mp_category).mean()),
    }
    if model in FOREGROUND:
        ours, theirs = category == FOREGROUND[model], mp_category == FOREGROUND[model]
        result["iou"] = float((ours & theirs).sum() / max((ours | theirs).sum(), 1))
    return result


def check(measured: dict, limits: dict, label: str) -> None:
    for name, limit in limits.items():
        ok = measured[name] <= limit if name == "mean_abs" else measured[name] >= limit
        assert ok, f"{label}: {name} {measured[name]:.6f} (limit {limit}); all: {measured}"


def mediapipe_layout(fixture: dict, rotation: int) -> dict:
    """MediaPipe does not turn masks back after rotating; segtool does. Turn MediaPipe's."""
    k = rotation // 90
    turned = dict(fixture)
    turned["confidence_masks"] = np.rot90(fixture["confidence_masks"], k, axes=(1, 2))
    turned["category_mask"] = np.rot90(fixture["category_mask"], k)
    return turned


@pytest.mark.parametrize("case", CASES)
def test_segmenter_matches_mediapipe(case):
    from segtool import ImageProcessingOptions, ImageSegmenter, ImageSegmenterOptions
    model, fixture, image = load_case(case)
    rotation = int(fixture["rotation_degrees"])
    if rotation % 180 and image.shape[0] != image.shape[1]:
        pytest.skip("MediaPipe stretches 90/270-degree masks of non-square images; no common layout")
    needs_model(model)
    options = ImageSegmenterOptions(model=model, output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(image, ImageProcessingOptions(rotation_degrees=rotation))
    measured = agreement(model, mediapipe_layout(fixture, rotation),
                         result.confidence_masks, result.category_mask)
    check(measured, PROMISED[model], case)


@pytest.mark.parametrize("case", CASES)
def test_pipeline_matches_mediapipe(case):
    ort = pytest.importorskip("onnxruntime")
    model, fixture, image = load_case(case)
    needs_model(model)
    spec, path = registry.locate(model).spec, registry.locate(model).path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rotation = int(fixture["rotation_degrees"])
    tensor = image_to_tensor(image, spec.input_size, mean=spec.mean, std=spec.std,
                             rotation_degrees=rotation, input_channels=spec.input_channels)
    if spec.input_channels == 4:  # MediaPipe feeds the hair network zeros for still images
        tensor = np.concatenate([tensor, np.zeros((*spec.input_size, 1), np.float32)], axis=2)
    raw = session.run(None, {session.get_inputs()[0].name: tensor[None]})[0][0]
    # rotation_degrees=0 here: MediaPipe's layout, the rotated mask resized straight to the image
    confidence, category = postprocess(raw, activation=spec.activation, image_size=image.shape[:2],
                                       confidence=True, category=True)
    measured = agreement(model, fixture, confidence, category)
    check(measured, {**PROMISED[model], **EXACT}, case)


def test_image_to_tensor_is_bit_exact():
    references = np.load(FIXTURES / "tensors.npz")
    cases = [k for k in references.files if "__" in k]
    assert cases
    for key in cases:
        name, size, rotation = key.split("__")
        width, height = (int(v) for v in size.split("x"))
        image = load_image(name)
        # mean 0, std 1 leaves the resampled uint8 levels, which is what the fixture holds
        tensor = image_to_tensor(image, (height, width), mean=0.0, std=1.0,
                                 rotation_degrees=int(rotation[3:]))
        expected = references[key].astype(np.float32)
        assert np.array_equal(tensor, expected), f"{key}: {np.count_nonzero(tensor != expected)} values differ"
