"""The hair network's fourth input: zeros for still images (as MediaPipe Tasks), the previous mask in video."""
from __future__ import annotations

import numpy as np
import pytest

from segtool import ImageSegmenter, ImageSegmenterOptions, RunningMode
from segtool_process import needs_model

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photo")


def hair_masks(mode: RunningMode, frames: int) -> list[np.ndarray]:
    options = ImageSegmenterOptions(model="hair", running_mode=mode)
    needs_model("hair")
    segmenter = ImageSegmenter.create_from_options(options)
    image = skdata.astronaut()
    with segmenter:
        if mode is RunningMode.IMAGE:
            return [segmenter.segment(image).confidence_masks[1] for _ in range(frames)]
        return [segmenter.segment_for_video(image, 33 * i).confidence_masks[1] for i in range(frames)]


def test_still_images_are_independent_of_each_other():
    first, second = hair_masks(RunningMode.IMAGE, 2)
    np.testing.assert_array_equal(first, second)


def test_video_feeds_the_previous_mask_back():
    still = hair_masks(RunningMode.IMAGE, 1)[0]
    first, second, third = hair_masks(RunningMode.VIDEO, 3)
    np.testing.assert_array_equal(first, still)  # no previous frame yet: zeros, as for a still
    assert np.abs(second - first).max() > 0.05  # the prior changes the answer...
    hair_now, hair_still = second > 0.5, still > 0.5
    assert (hair_now & hair_still).sum() / (hair_now | hair_still).sum() > 0.8  # ...but not what is hair
    # Fed its own answer, the network settles: frame 3 moves less than frame 2 did.
    assert np.abs(third - second).mean() < np.abs(second - first).mean()
