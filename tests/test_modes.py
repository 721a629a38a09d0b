"""The API's running modes, as MediaPipe Tasks has them: one method per mode, callbacks only for
LIVE_STREAM, timestamps that must increase; each mistake a clear ValueError."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from segtool.errors import UsageError
from segtool.options import ImageSegmenterOptions, RunningMode
from segtool.segmenter import ImageSegmenter

IMAGE = np.full((96, 128, 3), 127, np.uint8)


def make(mode: RunningMode, callback=None, **options) -> ImageSegmenter:
    return ImageSegmenter.create_from_options(
        ImageSegmenterOptions(model="selfie", running_mode=mode, result_callback=callback, **options))


def ignore(result, image, timestamp_ms):
    pass


CALLS = {
    "segment": lambda s: s.segment(IMAGE),
    "segment_batch": lambda s: s.segment_batch([IMAGE]),
    "segment_for_video": lambda s: s.segment_for_video(IMAGE, 0),
    "segment_async": lambda s: s.segment_async(IMAGE, 0),
}
ALLOWED = {RunningMode.IMAGE: {"segment", "segment_batch"}, RunningMode.VIDEO: {"segment_for_video"},
           RunningMode.LIVE_STREAM: {"segment_async"}}


@pytest.mark.parametrize("mode", list(RunningMode))
@pytest.mark.parametrize("method", list(CALLS))
def test_each_mode_takes_only_its_own_method(mode, method):
    with make(mode, ignore if mode is RunningMode.LIVE_STREAM else None) as segmenter:
        if method in ALLOWED[mode]:
            CALLS[method](segmenter)
            return
        with pytest.raises(ValueError, match=rf"{method}\(\) needs running_mode .* created with {mode.name}"):
            CALLS[method](segmenter)


def test_usage_errors_are_value_errors():
    assert issubclass(UsageError, ValueError)


def test_live_stream_needs_a_callback():
    with pytest.raises(ValueError, match="LIVE_STREAM mode needs a result_callback"):
        make(RunningMode.LIVE_STREAM)


@pytest.mark.parametrize("mode", [RunningMode.IMAGE, RunningMode.VIDEO])
def test_a_callback_is_only_for_live_stream(mode):
    with pytest.raises(ValueError, match=f"result_callback is only for LIVE_STREAM mode, not {mode.name}"):
        make(mode, ignore)


def test_running_mode_must_be_a_running_mode():
    with pytest.raises(ValueError, match="running_mode must be a RunningMode"):
        make("video")


@pytest.mark.parametrize("second", [100, 99])
def test_video_timestamps_must_increase(second):
    with make(RunningMode.VIDEO) as segmenter:
        segmenter.segment_for_video(IMAGE, 100)
        with pytest.raises(ValueError, match=f"timestamp {second} ms is not after the previous one \\(100 ms\\)"):
            segmenter.segment_for_video(IMAGE, second)
        segmenter.segment_for_video(IMAGE, 101)  # the error did not move the clock


def test_live_timestamps_must_increase():
    with make(RunningMode.LIVE_STREAM, ignore) as segmenter:
        segmenter.segment_async(IMAGE, 5)
        with pytest.raises(ValueError, match="timestamp 5 ms is not after"):
            segmenter.segment_async(IMAGE, 5)


def test_video_results_have_the_frame_size():
    with make(RunningMode.VIDEO, output_category_mask=True) as segmenter:
        for timestamp in (0, 33, 66):
            result = segmenter.segment_for_video(IMAGE, timestamp)
    assert result.confidence_masks.shape == (2, 96, 128) and result.category_mask.shape == (96, 128)


def test_live_results_reach_the_callback_with_their_frame_and_timestamp():
    delivered = []

    def collect(result, image, timestamp_ms):
        delivered.append((result.confidence_masks.shape, image.shape, timestamp_ms))

    with make(RunningMode.LIVE_STREAM, collect) as segmenter:
        segmenter.segment_async(IMAGE, 7)
    assert delivered == [((2, 96, 128), (96, 128, 3), 7)]


def test_live_newest_frame_wins_and_every_frame_is_accounted_for():
    delivered, release = [], threading.Event()

    def slow(result, image, timestamp_ms):
        release.wait(5)  # hold the worker so that frames pile up behind it
        delivered.append(timestamp_ms)

    with make(RunningMode.LIVE_STREAM, slow) as segmenter:
        for timestamp in range(10):
            segmenter.segment_async(IMAGE, timestamp)
        release.set()
    assert delivered[-1] == 9 and delivered == sorted(delivered)
    assert len(delivered) + segmenter.dropped_frames == 10 and segmenter.dropped_frames >= 7


def test_a_callback_error_surfaces_on_the_next_call():
    def broken(result, image, timestamp_ms):
        raise RuntimeError("callback failed")

    segmenter = make(RunningMode.LIVE_STREAM, broken)
    segmenter.segment_async(IMAGE, 0)
    with pytest.raises(RuntimeError, match="callback failed"):
        segmenter.close()
