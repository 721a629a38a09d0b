"""The numeric conventions MediaPipe uses, checked on arrays small enough to work out by hand.

Input side: tensor pixel x samples the image at x * W / w (corner-aligned), bilinear in 1/32
pixel steps, rounded half up, border replicated. Output side: confidence masks use half-pixel
centres (cv2.resize), the category mask corner-aligned interpolation of the raw values.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtool.postprocess import postprocess
from segtool.preprocess import image_to_tensor


def gray(rows) -> np.ndarray:
    """An RGB uint8 image whose three channels all hold ``rows``."""
    a = np.asarray(rows, np.uint8)
    return np.repeat(a[:, :, None], 3, axis=2)


def levels(image, size, **kw) -> np.ndarray:
    """The resampled uint8 levels: mean 0, std 1 leaves them unscaled."""
    return image_to_tensor(image, size, mean=0.0, std=1.0, **kw)[..., 0]


# ---- input side ---------------------------------------------------------------------------

def test_downscale_samples_corner_aligned_not_pixel_centres():
    image = gray([[10 * y + x for x in range(4)] for y in range(4)])
    # x * 4/2 = 0, 2: whole pixels, no averaging (half-pixel centres would give 5.5, 7.5, ...)
    assert levels(image, (2, 2)).tolist() == [[0, 2], [20, 22]]


def test_upscale_rounds_half_up_and_replicates_the_border():
    # x * 2/4 = 0, 0.5, 1, 1.5: (0 + 101) / 2 = 50.5 -> 51; 1.5 falls past the edge -> 101
    assert levels(gray([[0, 101]]), (1, 4)).tolist() == [[0, 51, 101, 101]]


def test_weights_step_in_32nds_of_a_pixel():
    # sample points x * 3/7 are rounded to 1/32 pixel: x = 1 -> 0.4286 becomes 14/32, giving
    # 128 * 14/32 = 56 where exact bilinear gives 54.9 -> 55; x = 4 -> 1.714 = 1 + 23/32 -> 219.3
    assert levels(gray([[0, 128, 255]]), (1, 7)).tolist() == [[0, 56, 108, 164, 219, 255, 255]]


@pytest.mark.parametrize("mean, std", [(127.5, 127.5), (0.0, 255.0)])
def test_values_are_pixel_minus_mean_over_std(mean, std):
    image = gray([[0, 1, 128, 254, 255]])
    tensor = image_to_tensor(image, (1, 5), mean=mean, std=std)
    assert tensor.dtype == np.float32 and tensor.shape == (1, 5, 3)
    # within an ulp: MediaPipe computes p * scale + offset (one rounding), so 255 -> 1.0000001
    np.testing.assert_allclose(tensor[0, :, 0], (np.array([0, 1, 128, 254, 255]) - mean) / std,
                               rtol=0, atol=2e-7)
    assert tensor[0, 0, 0] == (0 - mean) / std


@pytest.mark.parametrize("shape, interpolation", [((600, 512), cv2.INTER_LINEAR),
                                                  ((1080, 1920), cv2.INTER_AREA)])
def test_four_channel_models_take_mediapipes_resize_path(shape, interpolation):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    # INTER_AREA only when both sides shrink (ImageTransformationCalculator)
    expected = cv2.resize(image, (512, 512), interpolation=interpolation).astype(np.float32)
    tensor = image_to_tensor(image, (512, 512), mean=0.0, std=1.0, input_channels=4)
    np.testing.assert_array_equal(tensor, expected)


def test_rotation_turns_the_tensor_clockwise():
    image = np.zeros((30, 50, 3), np.uint8)
    image[:10, :15] = 255  # top-left
    tensor = image_to_tensor(image, (24, 16), mean=0.0, std=255.0, rotation_degrees=90)
    assert tensor.shape == (24, 16, 3)
    assert tensor[:6, -4:].mean() > 0.9 and tensor[:, :8].mean() < 0.05  # now top-right


# ---- output side --------------------------------------------------------------------------

def test_confidence_masks_use_half_pixel_centres():
    raw = np.array([[[0.0], [0.7]]], np.float32)  # (h=1, w=2, C=1)
    confidence, _ = postprocess(raw, activation="none", image_size=(1, 4))
    # x -> (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(confidence[1, 0], [0.0, 0.175, 0.525, 0.7], atol=1e-6)


def test_category_mask_is_corner_aligned():
    raw = np.array([[[0.0], [0.7]]], np.float32)
    _, category = postprocess(raw, activation="none", image_size=(1, 4), confidence=False,
                              category=True)
    # x -> x * (2-1)/(4-1): p = 0, 0.233, 0.467, 0.7 -> only the last passes 0.5
    # (half-pixel centres would give 0.525 at x=2: MediaPipe's two masks disagree there too)
    assert category.tolist() == [[0, 0, 0, 1]]


def _category_everywhere(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """MediaPipe's category mask computed at every pixel: corner-aligned bilinear of the raw values
    in float32, along y then x, then the first maximum (one channel: p > 0.5)."""
    def neighbours(n_in, n_out):
        scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
        pos = np.arange(n_out, dtype=np.float32) * scale
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(np.ceil(pos).astype(int), n_in - 1), (pos - lo.astype(np.float32)).astype(np.float32)

    (y0, y1, ty), (x0, x1, tx) = neighbours(raw.shape[0], height), neighbours(raw.shape[1], width)
    along_y = raw[y0] + (raw[y1] - raw[y0]) * ty[:, None, None]
    values = along_y[:, x0] + (along_y[:, x1] - along_y[:, x0]) * tx[None, :, None]
    return (values[..., 0] > 0.5).astype(np.uint8) if raw.shape[2] == 1 else values.argmax(axis=2).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 5])
@pytest.mark.parametrize("size", [(1080, 1920), (37, 23), (5, 300), (9, 9)])
@pytest.mark.parametrize("chunk", [1 << 21, 64])
def test_category_mask_equals_interpolating_every_pixel(channels, size, chunk, monkeypatch):
    """Only the pixels of cells whose corners disagree are interpolated: on noise (every cell
    unsure), smooth fields (few) and small chunks, the mask is the every-pixel one."""
    import segtool.postprocess as pp

    monkeypatch.setattr(pp, "_CHUNK_VALUES", chunk)
    rng = np.random.default_rng(channels * 7 + size[0])
    noise = rng.standard_normal((13, 17, channels)).astype(np.float32)
    smooth = cv2.resize(rng.standard_normal((3, 4, channels)).astype(np.float32), (41, 29)).reshape(29, 41, channels)
    for raw in (noise, smooth):
        _, category = postprocess(raw, activation="none", image_size=size, confidence=False, category=True)
        assert np.array_equal(category, _category_everywhere(raw, *size))


def test_one_channel_becomes_background_and_person():
    p = np.array([[[0.2], [0.5]], [[0.51], [0.9]]], np.float32)
    confidence, category = postprocess(p, activation="none", image_size=(2, 2), category=True)
    np.testing.assert_array_equal(confidence[1], p[..., 0])
    np.testing.assert_array_equal(confidence[0], 1 - p[..., 0])
    assert category.tolist() == [[0, 0], [1, 1]]  # p > 0.5 strictly is person (1)


def test_sigmoid_activation_applies_to_both_masks():
    logits = np.array([[[-2.0], [0.0], [3.0]]], np.float32)
    confidence, category = postprocess(logits, activation="sigmoid", image_size=(1, 3), category=True)
    np.testing.assert_allclose(confidence[1, 0], 1 / (1 + np.exp(-logits[0, :, 0])), rtol=1e-6)
    assert category.tolist() == [[0, 0, 1]]  # sigmoid(0) = 0.5 is not above 0.5


def test_softmax_confidence_sums_to_one():
    raw = np.random.default_rng(1).normal(size=(5, 7, 21)).astype(np.float32)
    confidence, _ = postprocess(raw, activation="softmax", image_size=(9, 4))
    assert confidence.shape == (21, 9, 4)
    np.testing.assert_allclose(confidence.sum(axis=0), 1, atol=1e-5)


def test_argmax_ties_go_to_the_lowest_index():
    flat = np.zeros((2, 2, 3), np.float32)
    _, category = postprocess(flat, activation="softmax", image_size=(3, 3), confidence=False,
                              category=True)
    assert (category == 0).all()
    # channel 1 falls and channel 2 rises along x; they tie half-way: the tie goes to 1
    raw = np.zeros((1, 2, 3), np.float32)
    raw[0, :, 0] = -5
    raw[0, :, 1] = [1, 0]
    raw[0, :, 2] = [0, 1]
    _, category = postprocess(raw, activation="none", image_size=(1, 3), confidence=False,
                              category=True)
    assert category.tolist() == [[1, 1, 2]]


def test_one_pixel_wide_output_samples_the_first_column():
    raw = np.array([[[0.9], [0.1]]], np.float32)  # MediaPipe would divide by zero here
    _, category = postprocess(raw, activation="none", image_size=(1, 1), confidence=False,
                              category=True)
    assert category.tolist() == [[1]]


def test_only_the_asked_for_masks_are_made():
    raw = np.zeros((4, 4, 2), np.float32)
    assert postprocess(raw, activation="softmax", image_size=(8, 8))[1] is None
    assert postprocess(raw, activation="softmax", image_size=(8, 8), confidence=False,
                       category=True)[0] is None


@pytest.mark.parametrize("bad", [{"activation": "relu"}, {"rotation_degrees": 45}])
def test_bad_arguments_are_refused(bad):
    kwargs = {"activation": "none", "image_size": (4, 4), **bad}
    with pytest.raises(ValueError):
        postprocess(np.zeros((2, 2, 1), np.float32), **kwargs)


# ---- both sides together ------------------------------------------------------------------

@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotation_round_trip_keeps_image_size_and_place(rotation):
    image = np.zeros((30, 50, 3), np.uint8)
    image[:10, :15] = 255  # a bright top-left patch
    tensor = image_to_tensor(image, (16, 24), mean=0.0, std=255.0, rotation_degrees=rotation)
    raw = tensor[..., :1]  # pretend the network returns the red channel as the probability
    confidence, category = postprocess(raw, activation="none", image_size=(30, 50),
                                       rotation_degrees=rotation, category=True)
    assert confidence.shape == (2, 30, 50) and category.shape == (30, 50)
    # back in place (rows 0-9, columns 0-14), give or take the pixel or two that MediaPipe's
    # corner-aligned sampling of a rotated image moves it by
    assert category[1:8, 1:11].all() and not category[13:].any() and not category[:, 18:].any()


# ---- large outputs: exact values, and memory reused only when nobody holds it ----------------

@pytest.mark.parametrize("rotation", [0, 90])
@pytest.mark.parametrize("activation", ["softmax", "none", "sigmoid"])
def test_confidence_masks_equal_numpys_channel_first_computation(activation, rotation):
    from segtool.postprocess import _activate

    raw = np.random.default_rng(3).normal(size=(33, 47, 21)).astype(np.float32) * 4
    confidence, _ = postprocess(raw, activation=activation, image_size=(60, 90), rotation_degrees=rotation)
    turned = np.rot90(raw, rotation // 90)
    activated = _activate(turned, activation)  # numpy over the last axis, MediaPipe's order
    expected = np.stack([cv2.resize(np.ascontiguousarray(activated[..., c]), (90, 60), interpolation=cv2.INTER_LINEAR)
                         for c in range(21)])
    assert np.array_equal(confidence, expected)


def test_large_masks_are_never_reused_while_anyone_holds_them():
    raw = np.random.default_rng(4).normal(size=(65, 65, 21)).astype(np.float32)
    size = (540, 960)  # 21 masks of 960x540: 43.5 MB, beyond malloc's own reuse
    first, _ = postprocess(raw, activation="softmax", image_size=size)
    kept = first.copy()
    view = first[3]  # a view alone keeps the memory of all 21 masks
    del first
    second, _ = postprocess(-raw, activation="softmax", image_size=size)
    assert not np.may_share_memory(view, second)
    assert np.array_equal(view, kept[3])
    address = second.__array_interface__["data"][0]
    del second
    third, _ = postprocess(raw, activation="softmax", image_size=size)
    assert third.__array_interface__["data"][0] == address  # released: its memory serves again
    assert np.array_equal(third, kept)
    buffer = memoryview(third)  # an exported buffer holds it too
    del third
    fourth, _ = postprocess(-raw, activation="softmax", image_size=size)
    assert np.asarray(buffer).__array_interface__["data"][0] != fourth.__array_interface__["data"][0]
    assert np.array_equal(np.asarray(buffer), kept)
