"""The mask video is the alpha the video composites use: refined unless --no-refine."""
from __future__ import annotations

import numpy as np
import pytest

from clips import decode, make_clip
from segtool import effects
from segtool.options import SegmentationResult
from segtool.engines.stream import MASK_VIDEO, render
from segtool_process import run_segtool

skimage_data = pytest.importorskip("skimage.data")


@pytest.mark.parametrize("refine", [True, False])
def test_mask_video_frames_are_the_alpha_mask(refine):
    import cv2

    frame = skimage_data.astronaut()
    coarse = cv2.resize(cv2.resize((frame[:, :, 0] > 120).astype(np.float32), (32, 32),
                                   interpolation=cv2.INTER_AREA), frame.shape[1::-1])
    result = SegmentationResult(confidence_masks=np.stack([1 - coarse, coarse]).astype(np.float32))
    options = effects.EffectOptions(refine=refine)
    mask = render(MASK_VIDEO, frame, result, options)
    cutout = render("cutout", frame, result, options)
    assert mask.dtype == np.uint8 and mask.shape == frame.shape[:2]
    np.testing.assert_array_equal(mask, cutout[:, :, 3])
    np.testing.assert_array_equal(mask, effects.render("alpha", frame, result.confidence_masks, options))


def test_command_mask_video_matches_the_alpha_video(tmp_path, model_env):
    clip = make_clip(tmp_path / "talk.mp4", frames=12)
    masks = {}
    for flag in ("--refine", "--no-refine"):
        out = tmp_path / flag.strip("-")
        done = run_segtool(["video", clip, "--alpha", flag, "--mask-video", out / "mask.mp4", "-o", out / "a.webm"],
                           model_env)
        assert done.returncode == 0, done.stderr
        grey = decode(out / "mask.mp4", pix_fmt="gray")[..., 0].astype(int)
        alpha = decode(out / "a.webm", pix_fmt="rgba", alpha_decoder=True)[..., 3].astype(int)
        assert grey.shape == alpha.shape and len(grey) == 12
        assert np.abs(grey - alpha).mean() < 3  # the same alpha, through two lossy codecs
        masks[flag] = grey
    assert np.abs(masks["--refine"] - masks["--no-refine"]).mean() > 1  # and refinement shows in both
