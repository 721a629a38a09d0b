"""Video frames are held to --max-pixels from the stream header, and anamorphic video keeps its shape.

A 30 KB GIF whose header said 16000x16000 grew `segtool video` to 23 GB; a 320x360 clip with a
2:1 sample aspect (shown 640x360) came out squeezed. Frames are now refused from the header
(ffmpeg's decoder is told the limit too, so no large frame is ever allocated), and anamorphic
frames are scaled to square pixels, so that every output shows the input's shape.
"""
from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import imageio.v3 as iio
import pytest

import badinput_corpus as corpus
from clips import FFMPEG, count_frames, facts, ffmpeg_banner, make_clip
from segtool import io as sio
from segtool.errors import InputError
from segtool.io.video import square_size
from segtool_process import partial_files, run_segtool, stderr_lines

FRAMES = 6


def sample_aspect(path) -> Fraction:
    """A video's sample aspect ratio, as ffmpeg reads its header (1 when it has none)."""
    sar = re.search(r"\[SAR (\d+):(\d+) DAR", _video_line(path))
    return Fraction(int(sar.group(1)), int(sar.group(2))) if sar and int(sar.group(1)) else Fraction(1)


def shown_shape(path) -> Fraction:
    """The display aspect ratio of a video's first stream: width x sample aspect / height."""
    width, height = map(int, re.search(r" (\d+)x(\d+)[ ,\[]", _video_line(path)).groups())
    return Fraction(width) * sample_aspect(path) / height


def _video_line(path) -> str:
    return next(line for line in ffmpeg_banner(path).splitlines() if ": Video:" in line)


def anamorphic(tmp_path, size, sar: str, name="ana.mp4"):
    return make_clip(tmp_path / name, size=size, frames=FRAMES, audio=False, extra=("-vf", f"setsar={sar}"))


# ---- the pixel limit ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lying(tmp_path_factory) -> dict:
    """Name -> (path, the size its frames claim): small files whose headers promise huge frames."""
    tmp_path = tmp_path_factory.mktemp("lying")
    files = {}
    gif = tmp_path / "screen.gif"
    gif.write_bytes(corpus.lying_gif(16000, 16000))
    files["gif screen 16000x16000"] = (gif, "16000x16000")
    both = tmp_path / "frame.gif"
    both.write_bytes(corpus.lying_gif(12000, 9000, frame_too=True))
    files["gif frame 12000x9000"] = (both, "12000x9000")
    png = tmp_path / "bomb.png"
    png.write_bytes(corpus.bomb_png(20000, 20000))
    files["png 20000x20000"] = (png, "20000x20000")
    for container in CONTAINERS:
        files[f"h264 in {container}"] = (corpus.lying_h264_video(tmp_path / f"lying.{container}"), "16000x12000")
    return files


CONTAINERS = ("mp4", "mkv", "mov", "ts", "avi")
LYING = ["gif screen 16000x16000", "gif frame 12000x9000", "png 20000x20000",
         *(f"h264 in {container}" for container in CONTAINERS)]


@pytest.mark.parametrize("name", LYING)
def test_the_reader_refuses_frames_over_the_limit_from_the_header(lying, name):
    path, claimed = lying[name]
    assert path.stat().st_size < 40_000
    if name == "h264 in mp4":  # what ffmpeg alone makes of it: frames of the size its header says
        assert re.search(r"Video: h264.* 16000x12000", ffmpeg_banner(path))
    with pytest.raises(InputError) as caught:
        sio.open_video(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {claimed} frames are ") and "over the limit of 100,000,000" in message
    assert "--max-pixels" in message and "\n" not in message


@pytest.mark.parametrize("name", ["gif screen 16000x16000", "h264 in mp4"])
def test_the_command_says_one_line_exits_1_and_leaves_nothing(tmp_path, lying, model_env, name):
    path, claimed = lying[name]
    out = tmp_path / "out"
    result = run_segtool(["video", path, "--blur", "--mask-video", out / "mask.mp4", "-o", f"{out}/"], model_env)
    lines = stderr_lines(result)
    assert result.returncode == 1, lines
    width, height = map(int, claimed.split("x"))
    assert lines == [f"segtool: {path}: {claimed} frames are {width * height:,} pixels, over the "
                     "limit of 100,000,000 (raise it with --max-pixels)"]
    assert not out.exists() or (list(out.iterdir()) == [] and not partial_files(out))


def test_max_pixels_is_the_frame_size_exactly(tmp_path, model_env):
    clip = make_clip(tmp_path / "talk.mp4", size=(320, 240), frames=FRAMES, audio=False)
    refused = run_segtool(["video", clip, "--blur", "--max-pixels", 320 * 240 - 1, "-o", tmp_path / "a.mp4"],
                          model_env)
    assert refused.returncode == 1 and "320x240 frames are 76,800 pixels" in stderr_lines(refused)[-1]
    assert not (tmp_path / "a.mp4").exists() and not partial_files(tmp_path)
    allowed = run_segtool(["video", clip, "--blur", "--max-pixels", 320 * 240, "-o", tmp_path / "b.mp4"],
                          model_env)
    assert allowed.returncode == 0, allowed.stderr
    assert count_frames(tmp_path / "b.mp4") == FRAMES


def test_the_limit_counts_the_shown_size_of_anamorphic_frames(tmp_path):
    clip = anamorphic(tmp_path, (320, 360), "2")  # 115,200 stored pixels, shown as 640x360
    with pytest.raises(InputError, match=r"320x360 frames \(shown at 640x360\) are 230,400 pixels"):
        sio.open_video(clip, max_pixels=200_000)
    with sio.open_video(clip, max_pixels=230_400) as reader:
        assert reader.info.size == (640, 360)


def test_webcam_takes_max_pixels_too(tmp_path, model_env):
    result = run_segtool(["webcam", "--source", "lavfi:testsrc2=size=640x360:rate=30", "--blur",
                          "--max-pixels", "100000", "-o", tmp_path / "live.mp4"], model_env, timeout=60)
    assert result.returncode == 1
    assert stderr_lines(result)[-1].endswith("640x360 frames are 230,400 pixels, over the limit of 100,000 "
                                             "(raise it with --max-pixels)")
    assert not (tmp_path / "live.mp4").exists() and not partial_files(tmp_path)


# ---- anamorphic video ---------------------------------------------------------------------------

@pytest.mark.parametrize("width, height, sar, shown", [
    (320, 360, Fraction(2), (640, 360)),
    (640, 180, Fraction(1, 2), (640, 360)),
    (360, 240, Fraction(32, 27), (426, 240)),  # 426.7 wide: the nearest even width, as 4:2:0 video needs
    (320, 240, Fraction(1), (320, 240)),
])
def test_the_reader_gives_square_pixels_at_the_shown_size(tmp_path, width, height, sar, shown):
    clip = anamorphic(tmp_path, (width, height), f"{sar.numerator}/{sar.denominator}")
    assert square_size(width, height, sar) == shown
    with sio.open_video(clip) as reader:
        frames = list(reader)
    assert reader.info.size == shown and reader.info.sample_aspect == sar
    assert len(frames) == FRAMES and frames[0].shape == (shown[1], shown[0], 3)
    assert abs(Fraction(shown[0], shown[1]) - shown_shape(clip)) < Fraction(1, 100)


def test_rotated_anamorphic_video_is_upright_and_unsqueezed(tmp_path):
    flat = anamorphic(tmp_path, (320, 360), "2", name="flat.mp4")
    rotated = tmp_path / "rotated.mp4"  # shown turned a quarter: 360 wide, 640 tall
    subprocess.run([FFMPEG, "-loglevel", "error", "-display_rotation", "90", "-i", flat, "-c", "copy", rotated],
                   check=True)
    with sio.open_video(rotated) as reader:
        assert reader.info.size == (360, 640) and next(iter(reader)).shape == (640, 360, 3)


def test_every_output_shows_the_inputs_shape(tmp_path, model_env):
    clip = anamorphic(tmp_path, (320, 360), "2")
    assert shown_shape(clip) == Fraction(16, 9)
    out = tmp_path / "out"
    composite = run_segtool(["video", clip, "--blur", "--alpha", "--mask-video", out / "ana.mask.mp4",
                             "--category-mask", "-o", f"{out}/"], model_env)
    assert composite.returncode == 0, composite.stderr
    for name in ("ana.blur.mp4", "ana.cutout.webm", "ana.mask.mp4"):
        video = out / name
        assert shown_shape(video) == Fraction(16, 9), name
        assert facts(video)["size"] == (640, 360) and sample_aspect(video) == 1, name
        assert count_frames(video) == FRAMES, name
    # per-frame masks are written at the shown size, in square pixels, like the videos
    mask = iio.imread(out / "ana.000001.category.png")
    assert mask.shape[:2] == (360, 640)
    assert len(list(out.glob("ana.*.category.png"))) == FRAMES
