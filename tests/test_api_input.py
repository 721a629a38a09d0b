"""The Python API refuses what it cannot read: a ValueError saying what is accepted, never a
silently wrong mask (a float32 image holding 0..255 used to come back all background)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

import badinput_corpus as corpus
from segtool.options import ImageSegmenterOptions, RunningMode
from segtool.segmenter import ImageSegmenter


@pytest.fixture(scope="module")
def segmenter():
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model="selfie")) as segmenter:
        yield segmenter


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return corpus.half_person()


@pytest.fixture(scope="module")
def person(segmenter, photo) -> np.ndarray:
    """The person's confidence for the uint8 photo: every accepted form must give the same."""
    return segmenter.segment(photo).confidence_masks[1]


def refused(segmenter, image) -> str:
    with pytest.raises(ValueError) as caught:
        segmenter.segment(image)
    message = str(caught.value)
    assert "\n" not in message and ("accepted" in message or "batch of one" in message)
    return message


# ---- accepted: the same picture in every form gives the same mask ------------------------------

def forms(photo: np.ndarray) -> dict:
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    return {
        "uint8 RGB": (photo, photo),
        "float32 0..1": (photo.astype(np.float32) / 255, photo),
        "float64 0..1": (photo / 255.0, photo),
        "uint16 RGB": (photo.astype(np.uint16) * 257, photo),
        "RGBA opaque": (np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]), photo),
        "int64 0..255": (photo.astype(np.int64), photo),
        "gray (H, W)": (gray, np.dstack([gray] * 3)),
        "gray (H, W, 1)": (gray[:, :, None], np.dstack([gray] * 3)),
        "non-contiguous": (np.dstack([photo[:, :, 0], photo[:, :, 1], photo[:, :, 2], photo[:, :, 0]])[:, :, :3],
                           photo),
        "flipped view": (photo[:, ::-1][:, ::-1], photo),
        "PIL image": (Image.fromarray(photo), photo),
    }


@pytest.mark.parametrize("name", list(forms(np.zeros((2, 2, 3), np.uint8))))
def test_accepted_forms_give_the_mask_of_the_same_picture(segmenter, photo, name):
    image, same_as = forms(photo)[name]
    expected = segmenter.segment(same_as).confidence_masks[1]
    got = segmenter.segment(image).confidence_masks[1]
    assert got.shape == photo.shape[:2]
    assert np.abs(got - expected).max() < 1e-6


def test_read_only_input_is_read_and_left_alone(segmenter, photo, person):
    frozen = photo.copy()
    frozen.flags.writeable = False
    assert np.array_equal(segmenter.segment(frozen).confidence_masks[1], person)
    assert np.array_equal(frozen, photo)


def test_the_person_is_found_in_floats_too(segmenter, photo, person):
    # the original bug: 0..1 floats and uint8 must agree, and the person is really there
    mask = segmenter.segment(photo.astype(np.float32) / 255).confidence_masks[1]
    assert (mask > 0.5).mean() > 0.1 and np.abs(mask - person).max() < 1e-6


# ---- refused: each one a ValueError that says why -------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floats_holding_0_to_255_are_refused_with_the_fix(segmenter, photo, dtype):
    message = refused(segmenter, photo.astype(dtype))
    assert "divide by 255" in message and "0..1" in message


@pytest.mark.parametrize("name, make", [
    ("float above 255", lambda p: p.astype(np.float32) * 4),
    ("negative float", lambda p: p.astype(np.float32) / 255 - 0.5),
    ("NaN", lambda p: np.where(p > 100, np.nan, p / 255.0).astype(np.float32)),
    ("infinity", lambda p: np.full(p.shape, np.inf, np.float32)),
    ("float16", lambda p: (p / 255).astype(np.float16)),
    ("bool", lambda p: p > 127),
    ("2 channels", lambda p: p[:, :, :2]),
    ("5 channels", lambda p: np.dstack([p, p[:, :, :2]])),
    ("0 rows", lambda p: p[:0]),
    ("0 channels", lambda p: p[:, :, :0]),
    ("4-D batch of one", lambda p: p[None]),
    ("4-D", lambda p: np.stack([p, p])),
    ("1-D", lambda p: p.ravel()),
    ("int beyond 255", lambda p: p.astype(np.int32) * 300),
    ("negative int", lambda p: p.astype(np.int16) - 128),
    ("complex", lambda p: p.astype(np.complex64)),
    ("strings", lambda p: np.array([["a", "b"], ["c", "d"]])),
    ("object", lambda p: np.array([[object(), None]])),
])
def test_what_cannot_be_read_is_a_value_error(segmenter, photo, name, make):
    refused(segmenter, make(photo))


def test_every_mode_refuses_alike_and_a_refused_frame_takes_no_timestamp():
    bad = np.zeros((32, 32, 2), np.uint8)
    good = np.zeros((32, 32, 3), np.uint8)
    options = ImageSegmenterOptions(model="selfie", running_mode=RunningMode.VIDEO)
    with ImageSegmenter.create_from_options(options) as video:
        with pytest.raises(ValueError, match="accepted"):
            video.segment_for_video(bad, 10)
        video.segment_for_video(good, 10)  # 10 ms is still free
    results = []
    live = ImageSegmenterOptions(model="selfie", running_mode=RunningMode.LIVE_STREAM,
                                 result_callback=lambda result, image, ts: results.append(ts))
    with ImageSegmenter.create_from_options(live) as stream:
        with pytest.raises(ValueError, match="accepted"):
            stream.segment_async(np.full((32, 32, 3), 200.0, np.float32), 5)
        stream.segment_async(good, 5)
    assert results == [5]
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model="selfie")) as still:
        with pytest.raises(ValueError, match="accepted"):
            still.segment_batch([good, bad])


# ---- any array at all: a mask of its size, or a ValueError ---------------------------------------

ANY_DTYPE = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.uint64, np.float16,
                             np.float32, np.float64, np.bool_, np.complex64])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(arrays(ANY_DTYPE, array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=24)))
def test_any_array_gives_a_mask_of_its_size_or_a_value_error(segmenter, image):
    try:
        result = segmenter.segment(image)
    except ValueError as exc:
        assert "\n" not in str(exc) and ("accepted" in str(exc) or "batch of one" in str(exc))
        return
    assert image.ndim in (2, 3) and image.dtype not in (np.bool_, np.float16, np.complex64)
    masks = result.confidence_masks
    assert masks.shape == (2, *image.shape[:2]) and np.isfinite(masks).all()
