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
        ImageSegmenterOptions(**{"model": "selfie", "running_mode": mode, "result_callback": callback, **options}))


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


# ---- every option is checked when the segmenter is made ------------------------------------------

BAD_OPTIONS = [
    ("model", None, "model must be a model name"),
    ("model", "", "model must be a model name"),
    ("model", 3, "model must be a model name"),
    ("running_mode", "image", "running_mode must be a RunningMode"),
    ("output_category_mask", "yes", "output_category_mask must be True or False, not 'yes'"),
    ("output_confidence_masks", 1, "output_confidence_masks must be True or False, not 1"),
    ("output_confidence_masks", None, "output_confidence_masks must be True or False, not None"),
    ("busy_wait", "false", "busy_wait must be True or False"),
    ("display_names_locale", None, "display_names_locale must be a locale name"),
    ("display_names_locale", "", "display_names_locale must be a locale name"),
    ("device", "gpu", "device must be one of 'auto', .*'cpu'.*, not 'gpu'"),
    ("device", "CPU", "device must be one of"),
    ("device", None, "device must be one of"),
    ("num_threads", 1.5, r"num_threads must be None \(as many as suit this machine\) or a whole number of at least 1, not 1.5"),
    ("num_threads", -2, "num_threads must be None .* not -2"),
    ("num_threads", 0, "num_threads must be None .* not 0"),
    ("num_threads", "4", "num_threads must be None .* not '4'"),
    ("num_threads", True, "num_threads must be None .* not True"),
    ("result_callback", "print", "result_callback must be a function"),
]


@pytest.mark.parametrize("name, value, message", BAD_OPTIONS, ids=[f"{n}={v!r}" for n, v, _ in BAD_OPTIONS])
def test_every_option_is_checked_when_the_segmenter_is_made(name, value, message):
    with pytest.raises(ValueError, match=message):
        make(RunningMode.IMAGE, **{name: value})


def test_good_values_of_each_option_are_taken():
    with make(RunningMode.IMAGE, num_threads=2, device="cpu", busy_wait=False, output_category_mask=np.bool_(True),
              display_names_locale="de") as segmenter:
        assert segmenter.segment(IMAGE).category_mask.shape == IMAGE.shape[:2]


# ---- after close() every method says so ---------------------------------------------------------

AFTER_CLOSE = {
    RunningMode.IMAGE: ["segment", "segment_batch", "prepare", "run_prepared", "finish"],
    RunningMode.VIDEO: ["segment_for_video"],
    RunningMode.LIVE_STREAM: ["segment_async"],
}
STAGES = {
    "prepare": lambda s: s.prepare(IMAGE),
    "run_prepared": lambda s: s.run_prepared([]),
    "finish": lambda s: s.finish(None, None),
}


@pytest.mark.parametrize("mode, method", [(m, name) for m, names in AFTER_CLOSE.items() for name in names])
def test_every_method_after_close_raises_the_same_clear_error(mode, method):
    segmenter = make(mode, ignore if mode is RunningMode.LIVE_STREAM else None)
    call = {**CALLS, **STAGES}[method]
    if method == "segment_batch":
        segmenter.segment_batch([IMAGE, IMAGE])  # its thread pool exists, and is shut down by close()
    segmenter.close()
    segmenter.close()  # twice is harmless
    with pytest.raises(ValueError, match=rf"^{method}\(\) called after close\(\): this ImageSegmenter is closed"):
        call(segmenter)
    assert segmenter.labels  # what it is stays readable
    with pytest.raises(ValueError, match="called after close"):  # and for a batch of several, too
        segmenter.segment_batch([IMAGE, IMAGE]) if mode is RunningMode.IMAGE else call(segmenter)


def test_leaving_a_with_block_closes_it():
    with make(RunningMode.IMAGE) as segmenter:
        segmenter.segment(IMAGE)
    with pytest.raises(ValueError, match="segment\\(\\) called after close"):
        segmenter.segment(IMAGE)


def test_a_live_frame_still_waiting_at_close_is_delivered_first():
    delivered = []
    segmenter = make(RunningMode.LIVE_STREAM, lambda result, image, ts: delivered.append(ts))
    segmenter.segment_async(IMAGE, 5)
    segmenter.close()
    assert delivered == [5]
