"""The fast blur looks like the plain one: a full-size normalised convolution, written out here.

The composite blurs at reduced size and upsamples, and blends in 8-bit only where the subject
has weight (segtool/effects.py says why); these tests hold it to the slow, obvious version of
the same picture on package-shipped photographs at camera sizes and strengths.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtool import effects
from test_effects import NONE, PHOTOS, model_like_mask


def full_size_blur(image: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    """What the blur composite means, at full size in float64: background weighted (1 - alpha)^2."""
    height, width = alpha.shape
    sigma = max(1.0, 0.012 * max(height, width) * strength)
    a = np.round(alpha.astype(np.float64) * 255) / 255
    weight = (1 - a) ** 2 + 1e-3
    total = cv2.GaussianBlur(weight, (0, 0), sigma)
    background = cv2.GaussianBlur(image * weight[:, :, None], (0, 0), sigma) / total[:, :, None]
    return image * a[:, :, None] + background * (1 - a[:, :, None])


# Every photo at its own size and strength; camera sizes (odd ones too) on a few.
CASES = [(photo, None, strength) for photo in sorted(PHOTOS) for strength in (0.3, 1.0, 3.0)] + [
    ("astronaut", (1080, 1920), 1.0), ("grace_hopper", (1080, 1920), 1.0), ("coffee", (720, 1280), 0.3),
    ("chelsea", (1079, 1917), 1.0), ("coffee", None, 5.0), ("astronaut", (721, 1283), 1.0),
]


@pytest.mark.parametrize("photo, size, strength", CASES)
def test_the_blurred_background_matches_a_full_size_blur(photo, size, strength):
    image = np.ascontiguousarray(PHOTOS[photo]()[:, :, :3])
    if size is not None:
        image = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
    alpha = model_like_mask(image.shape[:2])
    out = effects.blur_background(image, alpha, strength)
    error = np.abs(out - full_size_blur(image, alpha, strength))
    background = error[alpha < NONE]
    assert background.mean() < 0.6
    assert np.percentile(background, 99) < 4.0


def test_the_subject_is_its_own_pixels_and_only_the_blend_band_mixes():
    image = np.ascontiguousarray(PHOTOS["astronaut"]())
    alpha = model_like_mask(image.shape[:2])
    out = effects.blur_background(image, alpha)
    weight = cv2.convertScaleAbs(alpha, alpha=255.0)
    assert np.array_equal(out[weight == 255], image[weight == 255])
    assert np.abs(out - full_size_blur(image, alpha, 1.0)).max() < 16


@pytest.mark.parametrize("shape", [(1, 1), (33, 17), (130, 70), (1079, 641)])
def test_blend_equals_the_whole_frame_formula_everywhere(shape):
    rng = np.random.default_rng(sum(shape))
    foreground = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    background = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    # Holes, islands and empty bands: zero weight most places, some patches of every value.
    alpha = np.zeros(shape, np.float32)
    for _ in range(6):
        top, left = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        alpha[top:top + rng.integers(1, 90), left:left + rng.integers(1, 90)] = rng.random()
    alpha[rng.random(shape) < 0.01] = 1.0
    kept = background.copy()
    out = effects.blend(foreground, background, alpha)
    weight = cv2.convertScaleAbs(alpha, alpha=255.0).astype(np.int32)[:, :, None]
    exact = np.round(foreground * (weight / 255.0)) + np.round(background * ((255 - weight) / 255.0))
    assert np.abs(out.astype(np.int32) - np.clip(exact, 0, 255)).max() <= 1
    assert np.array_equal(out[weight[:, :, 0] == 0], background[weight[:, :, 0] == 0])
    assert np.array_equal(out[weight[:, :, 0] == 255], foreground[weight[:, :, 0] == 255])
    assert np.array_equal(background, kept)  # a cached backdrop is never drawn on


def test_replacing_twice_gives_the_same_picture_and_keeps_the_backdrop():
    image = np.ascontiguousarray(PHOTOS["chelsea"]())
    alpha = model_like_mask(image.shape[:2])
    backdrop = effects.Backdrop(picture=np.ascontiguousarray(PHOTOS["coffee"]()))
    first = effects.replace_background(image, alpha, backdrop)
    covering = backdrop.covering(*alpha.shape).copy()
    assert np.array_equal(effects.replace_background(image, alpha, backdrop), first)
    assert np.array_equal(backdrop.covering(*alpha.shape), covering)
