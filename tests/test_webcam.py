"""`segtool webcam`: LIVE_STREAM mode from any ffmpeg input (a file, a lavfi graph), no camera needed."""
from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import count_frames, facts, make_clip
from segtool import io as sio
from segtool.errors import InputError, UsageError
from segtool.io.video import encoder_args, live_input
from segtool.options import ImageSegmenterOptions, RunningMode, SegmentationResult
from segtool.engines.stream import LiveOutputs, run_live
from segtool_process import partial_files, run_segtool, start_segtool, stderr_lines

TESTSRC = "lavfi:testsrc2=size=320x240:rate=30"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "talk.mp4", frames=45)


# ---- sources and sinks ---------------------------------------------------------------------

def test_sources_name_devices_graphs_and_files(clip):
    assert live_input("lavfi:testsrc2=rate=30") == (["-re", "-f", "lavfi"], "testsrc2=rate=30")
    with pytest.raises(InputError, match="/dev/video9: no such camera; name another with --source"):
        live_input("/dev/video9")
    assert live_input("avfoundation:0") == (["-f", "avfoundation"], "0")
    # a file plays at its own rate, like a camera; handed to ffmpeg as a file: path, never a protocol
    assert live_input(str(clip)) == (["-re"], "file:" + str(clip))
    with pytest.raises(InputError, match="no such file or device"):
        live_input("nothere.mp4")


def test_a_loopback_device_gets_raw_yuv420p():
    assert encoder_args("/dev/video10", 3, 640, 480) == (["-pix_fmt", "yuv420p"], "v4l2")


def test_preview_without_a_display_says_what_to_do(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UsageError, match="no display.*--output"):
        sio.PreviewWindow(width=64, height=48, fps=Fraction(30))


# ---- the live loop, with a stand-in segmenter ----------------------------------------------------

class SlowLiveSegmenter:
    """LIVE_STREAM stand-in: one frame at a time on a thread, the newest waiting frame wins."""

    def __init__(self, options, seconds=0.05):
        from segtool.segmenter import LatestFrameWorker

        assert options.running_mode is RunningMode.LIVE_STREAM and options.result_callback
        self.timestamps = []
        self._callback = options.result_callback
        self._seconds = seconds
        self._worker = LatestFrameWorker(self._run)

    def segment_async(self, frame, timestamp_ms):
        assert not self.timestamps or timestamp_ms > self.timestamps[-1]
        self.timestamps.append(timestamp_ms)
        self._worker.submit((frame, timestamp_ms))

    def _run(self, item):
        frame, timestamp_ms = item
        time.sleep(self._seconds)
        mask = np.zeros((2,) + frame.shape[:2], np.float32)
        mask[1, :, : frame.shape[1] // 2] = 1
        mask[0] = 1 - mask[1]
        self._callback(SegmentationResult(confidence_masks=mask), frame, timestamp_ms)

    @property
    def dropped_frames(self):
        return self._worker.dropped

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._worker.close()


class Collect:
    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame)


def test_newest_frame_wins_when_inference_falls_behind():
    made = []

    def create(options):
        made.append(SlowLiveSegmenter(options, seconds=0.1))  # 10 fps of inference for 30 fps of input
        return made[-1]

    sink, statuses = Collect(), []
    with sio.open_live(TESTSRC + ":duration=2") as reader:
        final = run_live(reader, ImageSegmenterOptions(), LiveOutputs(composite="blur"), [sink],
                         on_status=statuses.append, status_every_s=0.5, create_segmenter=create)
    assert final.frames_in == 60 == len(made[0].timestamps)
    assert final.frames_out == len(sink.frames) and 10 <= final.frames_out <= 25
    assert final.dropped == final.frames_in - final.frames_out
    assert 5 < final.fps < 15 and final.latency_ms >= 100 and statuses
    assert sink.frames[0].shape == (240, 320, 3)


def test_a_live_file_keeps_real_time_when_frames_are_dropped(tmp_path):
    out = tmp_path / "live.mp4"
    with sio.open_live(TESTSRC + ":duration=2") as reader:
        with sio.VideoWriter(out, width=320, height=240, fps=reader.info.fps, realtime=True) as writer:
            final = run_live(reader, ImageSegmenterOptions(), LiveOutputs(composite="blur"), [writer],
                             create_segmenter=lambda options: SlowLiveSegmenter(options, seconds=0.1))
    # ~20 results over ~2 s: stamped with their arrival time, the gaps filled by repeats, the
    # file lasts as long as the run did instead of playing 3x fast
    assert final.frames_out < 30 and 40 <= count_frames(out) <= 70
    assert facts(out)["fps"] == 30.0


def test_a_sink_that_closes_ends_the_run():
    class ClosesAfterThree(Collect):
        def write(self, frame):
            super().write(frame)
            return len(self.frames) < 3

    sink = ClosesAfterThree()
    with sio.open_live(TESTSRC) as reader:  # endless: only the sink can end it
        final = run_live(reader, ImageSegmenterOptions(), LiveOutputs(composite="blur"), [sink],
                         create_segmenter=lambda options: SlowLiveSegmenter(options, seconds=0.01))
    assert 3 <= final.frames_out <= 7  # what was already in flight still arrives


# ---- the command, with the real selfie model --------------------------------------------------------

def test_command_file_source_to_file(tmp_path, clip, model_env):
    out = tmp_path / "live.mp4"
    result = run_segtool(["webcam", "--source", clip, "--blur", "--output", out], model_env)
    assert result.returncode == 0, result.stderr
    summary = stderr_lines(result)[-1]
    assert "45 frames in" in summary and "fps, latency" in summary
    assert facts(out)["size"] == (320, 240) and facts(out)["fps"] == 30.0
    # about one frame per delivered result (arrival times on a 30 fps grid may merge two)
    delivered = int(re.search(r"(\d+) out", summary).group(1))
    assert delivered >= 5 and delivered - 3 <= count_frames(out) <= 60


def start_webcam(out: Path, env, source: str = TESTSRC) -> subprocess.Popen:
    return start_segtool(["webcam", "--source", source, "--blur", "-o", out], env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_output(folder: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not partial_files(folder) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_stopping_leaves_a_playable_file(tmp_path, model_env, stop, code):
    # Ctrl-C is how a live run ends (exit 0); SIGTERM finishes the file too but says so (143)
    out = tmp_path / "live.mkv"
    process = start_webcam(out, model_env)
    wait_for_output(tmp_path)
    time.sleep(1.5)  # some frames through
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert count_frames(out) > 5 and not partial_files(tmp_path)
    lines = stderr.decode().splitlines()
    assert "frames in" in lines[0] and lines[1:] == ([] if code == 0 else ["segtool: terminated"])


def test_signals_at_random_moments_shut_down_in_order(tmp_path, model_env):
    # Threads (capture, inference, rendering) and ffmpeg children stop in order whenever the
    # signal lands: never "terminate called without an active exception", never a broken file.
    rng = random.Random(20261201)
    for attempt in range(6):
        out = tmp_path / f"live{attempt}.mp4"
        process = start_webcam(out, model_env, "lavfi:testsrc2=size=640x360:rate=30")
        if attempt % 2:
            wait_for_output(tmp_path)  # while frames flow; the others while it starts up (imports,
        # model loading, ffmpeg), though not in Python's own start-up before segtool's code runs
        time.sleep(rng.uniform(0.25, 2.0))
        for _ in range(1 + attempt % 3):  # an impatient user presses Ctrl-C more than once
            process.send_signal(signal.SIGINT)
            time.sleep(rng.uniform(0.0, 0.2))
        _, stderr = process.communicate(timeout=60)
        text = stderr.decode()
        assert "terminate called" not in text and "Traceback" not in text and "Exception ignored" not in text
        assert process.returncode in (0, 130), text
        assert not partial_files(tmp_path)
        if process.returncode == 0:  # stopped after it started: the file plays
            assert "frames in" in text and count_frames(out) >= 1
        else:  # stopped while starting: nothing was written
            assert text.strip().splitlines()[-1] == "segtool: interrupted" and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--blur", "--preview"], "no display"),
    (["--blur", "--replace-bg", "red", "-o", "x.mp4"], "one effect"),
    (["-o", "x.mp4"], "one effect"),
    (["--blur", "-o", "x.gif"], "unknown video format '.gif'"),
    (["--blur", "--jobs", "2", "-o", "x.mp4"], "No such option '--jobs'"),
    (["--blur", "--smooth", "inf", "-o", "x.mp4"], "--smooth"),
])
def test_command_usage_errors(tmp_path, model_env, args, message):
    env = {k: v for k, v in model_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_segtool(["webcam", "--source", TESTSRC + ":duration=1", *args], env, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.decode()
    assert not list(tmp_path.glob("x.*")) and not partial_files(tmp_path)  # refused before any work


def test_help_lists_only_what_a_live_feed_does(model_env):
    result = run_segtool(["webcam", "--help"], model_env)
    text = result.stdout.decode()
    assert result.returncode == 0 and "--blur" in text and "--cutout" in text
    for image_only in ("<stem>", "--jobs", "--composite-format", "--skip-existing", "--category-mask"):
        assert image_only not in text
