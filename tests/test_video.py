"""`segtool video`: frame sources, writers, the streaming pipeline and the command, on synthetic clips."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import (BACKGROUND, FFMPEG, centroid_x, count_frames, decode, facts, make_clip,
                   subject_left)
from segtool import io as sio
from segtool.errors import InputError, OutputError
from segtool.io.video import parse_header, parse_rate
from segtool.options import SegmentationResult
from segtool.engines.stream import (MASK_VIDEO, QUEUE_DEPTH, Smoother, StrictClock, VideoOutputs, run_video,
                           smooth_confidence)
from segtool_process import partial_files, run_on_terminal, run_segtool, start_segtool, stderr_lines, visible

FRAMES = 45  # 1.5 s at 30 fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "talk.mp4", frames=FRAMES)


class ColourSegmenter:
    """A VIDEO-mode stand-in: the subject is whatever is not the flat background colour."""

    labels = ("background", "person")

    def __init__(self, interrupt_at=None):
        self.timestamps = []
        self._interrupt_at = interrupt_at

    def segment_for_video(self, frame, timestamp_ms):
        if len(self.timestamps) == self._interrupt_at:
            raise KeyboardInterrupt
        self.timestamps.append(timestamp_ms)
        subject = (np.abs(frame.astype(np.int16) - BACKGROUND).sum(axis=2) > 40).astype(np.float32)
        return SegmentationResult(confidence_masks=np.stack([1 - subject, subject]),
                                  category_mask=subject.astype(np.uint8))


def mask_centroids(path: Path) -> list[float]:
    return [centroid_x(m[..., 0]) for m in decode(path, pix_fmt="gray")]


def assert_follows_motion(centroids, width, subject_width, tolerance):
    expected = [subject_left(i, len(centroids), width, subject_width) + subject_width / 2
                for i in range(len(centroids))]
    assert all(c is not None for c in centroids)
    assert np.max(np.abs(np.array(centroids) - expected)) < tolerance
    assert centroids[-1] - centroids[0] > 0.5 * (width - subject_width)


# ---- reading -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, rate", [("30", Fraction(30)), ("29.97", Fraction(30000, 1001)),
                                        ("23.98", Fraction(24000, 1001)), ("59.94", Fraction(60000, 1001)),
                                        ("12.5", Fraction(25, 2)), ("1k", Fraction(1000)), ("0", None)])
def test_printed_rates_become_exact(text, rate):
    assert parse_rate(text) == rate


def test_banner_gives_upright_size_audio_and_variable_rate():
    banner = [
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mp4':",
        "  Duration: 00:00:02.50, start: 0.000000, bitrate: 371 kb/s",
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), "
        "1920x1080 [SAR 1:1 DAR 16:9], 287 kb/s, 29.87 fps, 30 tbr, 15360 tbn (default)",
        "      Display Matrix: rotation of -90.00 degrees",
        "  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, mono, fltp, 69 kb/s",
        "Output #0, rawvideo, to 'pipe:1':",
        "  Stream #0:0(und): Video: rawvideo (RGB[24] / 0x18424752), rgb24(pc, gbr/unknown/unknown, "
        "progressive), 1080x1920 [SAR 1:1 DAR 9:16], q=2-31, 55296 kb/s, 30 fps, 30 tbn (default)",
    ]
    info = parse_header(banner, "phone.mp4")
    assert (info.width, info.height, info.fps) == (1080, 1920, Fraction(30))
    assert info.audio_codec == "aac" and info.variable_rate and info.frame_count == 75


def test_reader_gives_every_frame_at_the_stream_rate(clip):
    with sio.open_video(clip) as reader:
        frames = list(reader)
    assert (reader.info.size, reader.info.fps, reader.info.audio_codec) == ((320, 240), 30, "aac")
    assert len(frames) == FRAMES and frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert reader.problem is None


@pytest.mark.parametrize("size", [(322, 242), (321, 241)])
def test_odd_sizes_are_read_exactly_and_written_even(tmp_path, size):
    source = make_clip(tmp_path / "odd.mp4", size=size, frames=6, audio=False)
    with sio.open_video(source) as reader:
        frames = list(reader)
    assert frames[0].shape == (size[1], size[0], 3)
    with sio.VideoWriter(tmp_path / "copy.mp4", width=size[0], height=size[1], fps=reader.info.fps) as writer:
        for frame in frames:
            writer.write(frame)
    # 4:2:0, which every player takes, needs even sizes: an odd one loses its last column or row
    even = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    assert facts(tmp_path / "copy.mp4")["size"] == even and count_frames(tmp_path / "copy.mp4") == 6
    assert facts(tmp_path / "copy.mp4")["pix_fmt"].startswith("yuv420p")
    written = decode(tmp_path / "copy.mp4")[0].astype(int)
    assert np.abs(written - frames[0][:even[1], :even[0]]).mean() < 3


def test_rotated_video_reads_upright(tmp_path, clip):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([FFMPEG, "-loglevel", "error", "-display_rotation", "90", "-i", str(clip), "-c", "copy",
                    str(rotated)], check=True)
    with sio.open_video(rotated) as reader:
        first = next(iter(reader))
    assert reader.info.size == (240, 320) and first.shape == (320, 240, 3)


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_variable_frame_rate_becomes_constant_keeping_the_duration(tmp_path, clip, container):
    # the first second at 30 fps, the rest at 15: frame durations vary
    vfr = tmp_path / f"vfr.{container}"
    subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(clip), "-vf", "select='lt(t,1)+not(mod(n,2))'",
                    "-fps_mode", "vfr", "-an", str(vfr)], check=True)
    with sio.open_video(vfr) as reader:
        frames = sum(1 for _ in reader)
    # MP4 gives it away in its banner (average rate below the nominal one); MKV only in the end
    assert reader.info.variable_rate == (container == "mp4") and reader.info.fps == 30
    assert reader.retimed[0] >= 7 and abs(frames - FRAMES) <= 1  # 1.5 s at 30 fps, not 38 stored frames


def test_no_video_stream_not_a_video_and_missing_file(tmp_path):
    audio_only = tmp_path / "sine.m4a"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine", "-t", "0.5", str(audio_only)],
                   check=True)
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    named_mp4 = tmp_path / "notes.mp4"
    named_mp4.write_text("not a video\n")
    for path, expected in [(audio_only, "has no video stream"), (text, "not a video ffmpeg can read"),
                           (named_mp4, "not a complete video"),
                           (tmp_path / "missing.mp4", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(InputError, match=expected) as caught:
            sio.open_video(path)
        assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_truncated_file_gives_what_decodes_and_says_why(tmp_path, clip):
    cut = tmp_path / "cut.mp4"
    faststart = make_clip(tmp_path / "faststart.mp4", frames=FRAMES, extra=("-movflags", "+faststart"))
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    with sio.open_video(cut) as reader:
        frames = sum(1 for _ in reader)
    assert 0 < frames < FRAMES and "stopped early" in reader.problem
    # without its index at the front, half a file has nothing to decode
    headless = tmp_path / "headless.mp4"
    headless.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(InputError, match="not a complete video"):
        sio.open_video(headless)


# ---- writing -----------------------------------------------------------------------------

def test_alpha_goes_to_webm_or_mov_and_not_mp4(tmp_path):
    frame = np.zeros((48, 64, 4), np.uint8)
    frame[:, 32:, 3] = 255
    for name in ("a.webm", "a.mov"):
        with sio.VideoWriter(tmp_path / name, width=64, height=48, fps=Fraction(30), channels=4) as writer:
            for _ in range(3):
                writer.write(frame)
    assert facts(tmp_path / "a.webm")["alpha"] and "yuva" in facts(tmp_path / "a.mov")["pix_fmt"]
    alpha = decode(tmp_path / "a.webm", pix_fmt="rgba", alpha_decoder=True)[0, :, :, 3]
    assert alpha[:, :28].max() < 16 and alpha[:, 36:].min() > 240
    with pytest.raises(OutputError, match="cannot hold an alpha channel"):
        sio.VideoWriter(tmp_path / "a.mp4", width=64, height=48, fps=Fraction(30), channels=4)


def test_audio_is_copied_or_reencoded_as_the_container_needs(tmp_path, clip):
    with sio.open_video(clip) as reader:
        frames = list(reader)
    for name, codec in (("copy.mp4", "aac"), ("copy.webm", "opus")):
        with sio.VideoWriter(tmp_path / name, width=320, height=240, fps=reader.info.fps,
                             audio_from=reader.info) as writer:
            for frame in frames[:10]:
                writer.write(frame)
        assert facts(tmp_path / name)["audio"] == codec


def test_an_exception_while_writing_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with sio.VideoWriter(tmp_path / "out.mp4", width=64, height=48, fps=Fraction(30)) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# ---- the pipeline --------------------------------------------------------------------------

def test_pipeline_keeps_rate_size_frames_audio_and_the_mask_follows(tmp_path, clip):
    segmenter = ColourSegmenter()
    outputs = VideoOutputs(videos=(("blur", tmp_path / "blur.mp4"), (MASK_VIDEO, tmp_path / "mask.mp4")),
                           frames_dir=tmp_path / "masks", stem="talk", category_mask=True)
    done = []
    with sio.open_video(clip) as reader:
        report = run_video(reader, segmenter, outputs, on_frame=done.append)
    assert report.frames == FRAMES and done == list(range(1, FRAMES + 1)) and report.problem is None
    assert segmenter.timestamps == [round(i * 1000 / 30) for i in range(FRAMES)]
    blur, mask = facts(tmp_path / "blur.mp4"), facts(tmp_path / "mask.mp4")
    assert (blur["size"], blur["fps"], blur["audio"]) == ((320, 240), 30.0, "aac")
    assert mask["audio"] is None and count_frames(tmp_path / "blur.mp4") == count_frames(tmp_path / "mask.mp4") == FRAMES
    names = visible(tmp_path / "masks")
    assert names[0] == "talk.000001.category.png" and names[-1] == f"talk.{FRAMES:06d}.category.png"
    assert len(names) == FRAMES == report.frame_files
    subject_width = round(240 * 0.8 * 270 / 450)
    assert_follows_motion(mask_centroids(tmp_path / "mask.mp4"), 320, subject_width, tolerance=6)


def test_memory_stays_flat_the_reader_never_runs_far_ahead():
    class CountingReader:
        label = "synthetic"
        info = sio.VideoInfo(source="synthetic", width=64, height=48, fps=Fraction(30))
        problem = None
        produced = 0

        def __iter__(self):
            for _ in range(300):
                CountingReader.produced += 1
                yield np.zeros((48, 64, 3), np.uint8)

        def close(self):
            pass

    lead = []

    class SlowSegmenter(ColourSegmenter):
        def segment_for_video(self, frame, timestamp_ms):
            lead.append(CountingReader.produced - len(self.timestamps))
            threading.Event().wait(0.001)
            return super().segment_for_video(frame, timestamp_ms)

    report = run_video(CountingReader(), SlowSegmenter(), VideoOutputs())
    assert report.frames == 300 and max(lead) <= QUEUE_DEPTH + 2


def test_interrupt_leaves_no_video_and_no_temporary(tmp_path, clip):
    outputs = VideoOutputs(videos=(("blur", tmp_path / "blur.mp4"),))
    with sio.open_video(clip) as reader, pytest.raises(KeyboardInterrupt):
        run_video(reader, ColourSegmenter(interrupt_at=10), outputs)
    assert list(tmp_path.iterdir()) == []


def test_truncated_input_writes_what_decoded_and_reports_it(tmp_path):
    source = make_clip(tmp_path / "whole.mp4", frames=FRAMES, extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size * 2 // 3])
    with sio.open_video(cut) as reader:
        report = run_video(reader, ColourSegmenter(), VideoOutputs(videos=(("blur", tmp_path / "out.mp4"),)))
    assert 0 < report.frames < FRAMES and count_frames(tmp_path / "out.mp4") == report.frames
    assert "after frame" in report.problem and "the outputs hold the frames that decoded" in report.problem


# ---- smoothing and timestamps ----------------------------------------------------------------

def test_smoothing_damps_uncertain_pixels_only():
    previous = np.array([[0.0, 0.0, 0.0, 1.0]], np.float32)
    current = np.array([[0.5, 1.0, 0.97, 0.45]], np.float32)
    smoothed = smooth_confidence(np.stack([1 - previous, previous]), np.stack([1 - current, current]), 0.7)
    assert smoothed[1, 0, 0] == pytest.approx(0.5 * 0.3)  # fully uncertain: 70 % of the previous value
    assert smoothed[1, 0, 1] == pytest.approx(1.0, abs=1e-4)  # certain: the new value
    assert 0.9 < smoothed[1, 0, 2] < 0.97  # nearly certain: nearly the new value
    assert 0.45 < smoothed[1, 0, 3] < 1.0
    np.testing.assert_allclose(smoothed.sum(axis=0), 1.0, atol=1e-6)


def test_smoothing_many_categories_still_sums_to_one():
    rng = np.random.default_rng(0)
    a, b = (rng.dirichlet(np.ones(4), size=(8, 8)).transpose(2, 0, 1).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(smooth_confidence(a, b, 0.9).sum(axis=0), 1.0, atol=1e-5)


def test_smoother_recomputes_the_category_mask_from_smoothed_masks():
    smoother = Smoother(0.9)
    background = np.zeros((1, 2), np.float32)
    smoother(SegmentationResult(np.stack([1 - background, background]), np.zeros((1, 2), np.uint8)))
    flicker = np.array([[0.55, 0.55]], np.float32)
    result = smoother(SegmentationResult(np.stack([1 - flicker, flicker]), np.ones((1, 2), np.uint8)))
    assert result.confidence_masks[1].max() < 0.5 and not result.category_mask.any()


def test_clock_is_strictly_increasing():
    clock = StrictClock()
    assert [clock.stamp(t) for t in (0, 0.4, 0.9, 5, 3, 10)] == [0, 1, 2, 5, 6, 10]


# ---- the command, with the real selfie model -----------------------------------------------------

def test_command_blur_keeps_everything(tmp_path, clip, model_env):
    result = run_segtool(["video", clip, "--blur", "-o", tmp_path / "talk.blur.mp4"], model_env)
    assert result.returncode == 0, result.stderr
    out = facts(tmp_path / "talk.blur.mp4")
    assert (out["size"], out["fps"], out["codec"], out["audio"]) == ((320, 240), 30.0, "h264", "aac")
    assert count_frames(tmp_path / "talk.blur.mp4") == FRAMES
    assert "45 frames at 30 fps" in stderr_lines(result)[-1]


def test_command_mask_video_follows_the_person(tmp_path, clip, model_env):
    result = run_segtool(["video", clip, "--mask-video", tmp_path / "mask.mp4", "--smooth"], model_env)
    assert result.returncode == 0, result.stderr
    subject_width = round(240 * 0.8 * 270 / 450)
    assert_follows_motion(mask_centroids(tmp_path / "mask.mp4"), 320, subject_width, tolerance=25)


def test_command_per_frame_masks_and_alpha(tmp_path, clip, model_env):
    result = run_segtool(["video", clip, "--category-mask", "--confidence-masks", "--alpha",
                          "-o", f"{tmp_path / 'out'}/"], model_env)
    assert result.returncode == 0, result.stderr
    names = visible(tmp_path / "out")
    assert names.count("talk.000001.category.png") == 1 and "talk.000045.confidence.npy" in names
    assert len(names) == 2 * FRAMES + 1 and "talk.cutout.webm" in names
    assert facts(tmp_path / "out" / "talk.cutout.webm")["alpha"]
    alpha = decode(tmp_path / "out" / "talk.cutout.webm", pix_fmt="rgba", alpha_decoder=True)[..., 3]
    assert len(alpha) == FRAMES and alpha.min() < 10 and alpha.max() > 245


def test_command_odd_size_and_no_audio(tmp_path, model_env):
    source = make_clip(tmp_path / "odd.mp4", size=(321, 241), frames=10, audio=False)
    result = run_segtool(["video", source, "--blur", "-o", tmp_path / "odd.blur.mp4"], model_env)
    assert result.returncode == 0, result.stderr
    assert facts(tmp_path / "odd.blur.mp4")["size"] == (320, 240)
    assert facts(tmp_path / "odd.blur.mp4")["audio"] is None
    assert any("no audio stream" in line for line in stderr_lines(result))


def test_command_truncated_input_exits_1_after_writing(tmp_path, model_env):
    source = make_clip(tmp_path / "whole.mp4", frames=FRAMES, extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    result = run_segtool(["video", cut, "--blur", "-o", tmp_path / "out.mp4"], model_env)
    assert result.returncode == 1
    assert 0 < count_frames(tmp_path / "out.mp4") < FRAMES
    assert "decoding stopped early" in stderr_lines(result)[-1]
    assert not partial_files(tmp_path)


def test_command_bad_inputs_are_one_line_and_write_nothing(tmp_path, model_env):
    audio_only = tmp_path / "sine.mp4"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine", "-t", "0.5", str(audio_only)],
                   check=True)
    result = run_segtool(["video", audio_only, "--blur", "-o", tmp_path / "out.mp4"], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"segtool: {audio_only}: has no video stream"]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("args, message", [
    ([], "nothing to write"),
    (["--blur", "--alpha", "-o", "one.mp4"], "one video file"),
    (["--category-mask", "-o", "masks.mp4", "--blur"], "need --output to be a folder"),
])
def test_command_usage_errors(tmp_path, clip, model_env, args, message):
    result = run_segtool(["video", clip, *args], model_env, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.decode()


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_command_stopped_midway_leaves_nothing(tmp_path, model_env, stop, code):
    source = make_clip(tmp_path / "long.mp4", frames=600, audio=False)
    out = tmp_path / "out"
    process = start_segtool(["video", source, "--blur", "-o", f"{out}/"], model_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not partial_files(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert not out.exists() or not visible(out)
    assert not partial_files(tmp_path)


def test_command_progress_bar_on_a_terminal(tmp_path, clip, model_env):
    code, shown = run_on_terminal(["video", clip, "--blur", "-o", tmp_path / "o.mp4"], model_env)
    assert code == 0, shown
    assert b"Traceback" not in shown and b"45 frames at 30 fps" in shown
    assert "━".encode() in shown and b"45/45" in shown  # rich's bar, counting frames


def test_command_full_disk_is_one_line_and_no_partial_file(tmp_path, clip, small_tmpfs, model_env):
    # ProRes 4444 is large: 45 frames do not fit in 2 MiB
    out = small_tmpfs / "talk.alpha.mov"
    result = run_segtool(["video", clip, "--alpha", "-o", out], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"segtool: {out}: cannot encode (No space left on device); "
                                    "stopping, later outputs would fail too"]
    assert list(small_tmpfs.iterdir()) == []
