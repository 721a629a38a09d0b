"""Videos that play right everywhere: colour, sizes, every frame, any name, any signal.

Source clips are made here from flat colour patches turned into YUV by numpy (BT.601 or BT.709,
limited or full range), tagged or not, so that what a player shows of them is known exactly.
Outputs are read as people read them: their stream facts (profile, pixel format, colour tags)
through PyAV's fields, as ffprobe shows them, and their pixels decoded by ffmpeg honouring the tags.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import FFMPEG, count_frames, make_clip
from segtool import io as sio
from segtool.io.video import Colour, even_size, live_input, square_size, stream_colour
from segtool_process import partial_files, reset_signals, run_segtool, segtool_command, visible

av = pytest.importorskip("av")  # the dev extra's independent reader of stream facts

PATCHES = [(29, 170, 59), (200, 40, 120), (30, 60, 200), (230, 220, 40)]
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
# ffmpeg's / ISO 23091 numbers, as PyAV reports them
MATRIX = {"bt709": 1, "bt470bg": 5, "smpte170m": 6}
PRIMARIES = {"bt709": 1, "bt470bg": 5, "smpte170m": 6}
TRANSFER = {"bt709": 1, "smpte170m": 6}
RANGE = {"tv": 1, "pc": 2}
TAGS = {"bt601": ("smpte170m", "smpte170m", "smpte170m"), "bt709": ("bt709", "bt709", "bt709")}


def patch_picture(width: int, height: int) -> np.ndarray:
    """Four flat colour patches, one per quarter."""
    picture = np.empty((height, width, 3), np.uint8)
    for i, colour in enumerate(PATCHES):
        rows = slice(0, height // 2) if i < 2 else slice(height // 2, height)
        columns = slice(0, width // 2) if i % 2 == 0 else slice(width // 2, width)
        picture[rows, columns] = colour
    return picture


def to_yuv420(rgb: np.ndarray, matrix: str, full: bool) -> bytes:
    """RGB -> planar YUV 4:2:0 with ``matrix``'s coefficients, as an encoder of that standard does."""
    kr, kb = KR_KB[matrix]
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    y = kr * r + (1 - kr - kb) * g + kb * b
    pb, pr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if full:
        planes = [y * 255, 128 + pb * 255, 128 + pr * 255]
    else:
        planes = [16 + y * 219, 128 + pb * 224, 128 + pr * 224]
    y8, cb, cr = (np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in planes)
    # the patches are flat and even-aligned, so taking every other sample is exact chroma
    return y8.tobytes() + cb[::2, ::2].tobytes() + cr[::2, ::2].tobytes()


def make_colour_clip(path: Path, *, size=(320, 240), matrix="bt709", full=False, tagged=True,
                     frames: int = 4, extra: tuple = ()) -> Path:
    """An H.264 clip of the patches encoded with ``matrix`` and range; tagged as such, or not at all."""
    width, height = size
    raw = to_yuv420(patch_picture(width, height), matrix, full) * frames
    rng = "pc" if full else "tv"
    colorspace, primaries, transfer = TAGS[matrix]
    tags = (["-colorspace", colorspace, "-color_primaries", primaries, "-color_trc", transfer,
             "-color_range", rng] if tagged else [])
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", f"{width}x{height}", "-r", "10", *tags, "-i", "pipe:0", "-c:v", "libx264",
               "-preset", "ultrafast", "-qp", "0" if not full else "4", *tags, *extra, str(path)]
    subprocess.run(command, input=raw, check=True)
    return Path(path)


def stream_facts(path: Path) -> dict:
    """A video stream's facts as ffprobe lists them, read through PyAV's fields."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return {"codec": context.name, "profile": context.profile, "pix_fmt": context.pix_fmt,
                "size": (context.width, context.height), "sar": stream.sample_aspect_ratio,
                "matrix": int(context.colorspace), "primaries": int(context.color_primaries),
                "transfer": int(context.color_trc), "range": int(context.color_range),
                "frames": sum(1 for _ in container.decode(video=0))}


def decoded(path: Path, *, alpha_decoder: bool = False) -> np.ndarray:
    """The frames as ffmpeg shows them (honouring the colour tags), RGB (N, H, W, 3)."""
    facts = stream_facts(path)
    width, height = facts["size"]
    command = [FFMPEG, "-hide_banner", "-loglevel", "error"]
    command += ["-c:v", "libvpx-vp9"] if alpha_decoder else []
    command += ["-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def patch_centres(frame: np.ndarray) -> list[tuple[int, ...]]:
    height, width = frame.shape[:2]
    spots = [(height // 4, width // 4), (height // 4, 3 * width // 4),
             (3 * height // 4, width // 4), (3 * height // 4, 3 * width // 4)]
    return [tuple(int(v) for v in frame[y, x]) for y, x in spots]


def assert_patches(frame: np.ndarray, tolerance: int = 4, which=range(4)):
    got = patch_centres(frame)
    for i in which:
        assert max(abs(a - b) for a, b in zip(got[i], PATCHES[i])) <= tolerance, (i, got[i], PATCHES[i])


def assert_tagged(facts: dict, colour: Colour):
    assert (facts["matrix"], facts["primaries"], facts["transfer"], facts["range"]) == (
        MATRIX[colour.matrix], PRIMARIES[colour.primaries], TRANSFER[colour.transfer], RANGE[colour.range]), facts


def assert_playable(facts: dict):
    """What browsers, QuickTime and phones play: H.264 High or Main, 4:2:0 (yuvj420p is how decoders
    name full-range 4:2:0), even sizes."""
    assert facts["codec"] == "h264" and facts["profile"] in ("High", "Main") and facts["pix_fmt"] in ("yuv420p", "yuvj420p"), facts
    assert facts["size"][0] % 2 == 0 and facts["size"][1] % 2 == 0, facts


# (size, matrix, full range, tagged): SD and HD; BT.601 and BT.709; limited and full; untagged as
# players read untagged video (SD BT.601, HD BT.709); and tags that disagree with the size.
SOURCES = {
    "sd-601-tv": ((320, 240), "bt601", False, True),
    "sd-601-pc": ((320, 240), "bt601", True, True),
    "sd-709-tv": ((320, 240), "bt709", False, True),
    "sd-untagged": ((320, 240), "bt601", False, False),
    "hd-709-tv": ((1280, 720), "bt709", False, True),
    "hd-709-pc": ((1280, 720), "bt709", True, True),
    "hd-601-tv": ((1280, 720), "bt601", False, True),
    "hd-untagged": ((1280, 720), "bt709", False, False),
}


@pytest.mark.parametrize("name", SOURCES)
def test_colours_survive_reading_and_writing(tmp_path, name):
    size, matrix, full, tagged = SOURCES[name]
    source = make_colour_clip(tmp_path / "in.mp4", size=size, matrix=matrix, full=full, tagged=tagged)
    with sio.open_video(source) as reader:
        frames = list(reader)
    assert_patches(frames[0], tolerance=2)  # read as a player shows it
    colour = reader.info.colour
    expected_matrix = {"bt601": "smpte170m", "bt709": "bt709"}[matrix]
    assert (colour.matrix, colour.range) == (expected_matrix, "pc" if full else "tv")
    out = tmp_path / "out.mp4"
    with sio.VideoWriter(out, width=size[0], height=size[1], fps=reader.info.fps, colour=colour) as writer:
        for frame in frames:
            writer.write(frame)
    facts = stream_facts(out)
    assert_tagged(facts, colour)
    assert_playable(facts)
    assert_patches(decoded(out)[0])  # plays as the source did


@pytest.mark.parametrize("name", ["sd-601-pc", "hd-709-tv", "hd-untagged"])
@pytest.mark.parametrize("suffix, channels", [(".mov", 3), (".mkv", 3), (".webm", 3), (".webm", 4),
                                              (".mov", 4), (".mp4", 1)])
def test_every_format_is_tagged_and_plays_the_source_colours(tmp_path, name, suffix, channels):
    size, matrix, full, tagged = SOURCES[name]
    source = make_colour_clip(tmp_path / "in.mp4", size=size, matrix=matrix, full=full, tagged=tagged, frames=2)
    with sio.open_video(source) as reader:
        frames = list(reader)
    colour = reader.info.colour
    out = tmp_path / f"out{suffix}"
    with sio.VideoWriter(out, width=size[0], height=size[1], fps=reader.info.fps, channels=channels,
                         colour=colour) as writer:
        for frame in frames:
            if channels == 4:
                frame = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
            writer.write(frame[..., 0] if channels == 1 else frame)
    facts = stream_facts(out)
    # grey masks and ProRes are limited range whatever the source
    limited = channels == 1 or (suffix == ".mov" and channels == 4)
    assert_tagged(facts, Colour(colour.matrix, colour.primaries, colour.transfer, "tv" if limited else colour.range))
    if suffix in (".mov", ".mkv") and channels == 3:
        assert_playable(facts)
    picture = decoded(out, alpha_decoder=suffix == ".webm" and channels == 4)[0]
    if channels == 1:
        grey = frames[0][..., 0]
        assert np.abs(picture[..., 0].astype(int) - grey).max() <= 3
    else:
        assert_patches(picture, tolerance=5 if suffix == ".webm" else 4)


def test_command_composites_and_masks_play_the_source_colours(tmp_path, model_env):
    """The issue's case: 720p BT.709 in, blur and a replaced background out, colours kept."""
    source = make_colour_clip(tmp_path / "talk.mp4", size=(1280, 720), matrix="bt709", frames=3)
    out = tmp_path / "out"
    done = run_segtool(["video", source, "--blur", "--replace-bg", "#1daa3b", "--mask-video", out / "mask.mp4",
                        "-o", f"{out}/"], model_env)
    assert done.returncode == 0, done.stderr
    for name in ("talk.blur.mp4", "talk.replace.mp4"):
        facts = stream_facts(out / name)
        assert_tagged(facts, Colour())
        assert_playable(facts)
        assert facts["size"] == (1280, 720) and facts["frames"] == 3
    assert_patches(decoded(out / "talk.blur.mp4")[1])  # no person: the blur keeps flat patches flat
    # no person either: all background, replaced by (29, 170, 59)
    assert np.abs(decoded(out / "talk.replace.mp4")[1].astype(int) - PATCHES[0]).max() <= 4
    assert_tagged(stream_facts(out / "mask.mp4"), Colour())
    done = run_segtool(["video", source, "--alpha", "-o", out / "cut.mov"], model_env)
    assert done.returncode == 0, done.stderr
    assert_tagged(stream_facts(out / "cut.mov"), Colour())


# ---- sizes and pixels that every player takes ------------------------------------------------

@pytest.mark.parametrize("sar, stored, shown", [
    (Fraction(2216, 2215), (1280, 720), (1280, 720)),  # what `scale=1280:-2` leaves: square
    (Fraction(1, 1), (321, 241), (321, 241)),
    (Fraction(2, 1), (320, 360), (640, 360)),
    (Fraction(1, 2), (640, 180), (640, 360)),
    (Fraction(4, 3), (333, 240), (444, 240)),  # 444.0: even already
    (Fraction(10, 11), (352, 241), (352, 266)),  # 265.1 -> an even 266
])
def test_sample_aspect_ratios_read_as_square_even_frames(tmp_path, sar, stored, shown):
    assert square_size(*stored, sar) == shown
    source = tmp_path / "sar.mp4"
    make_colour_clip(tmp_path / "plain.mp4", size=(stored[0] + stored[0] % 2, stored[1] + stored[1] % 2), frames=2)
    subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(tmp_path / "plain.mp4"), "-vf",
                    f"format=yuv444p,crop={stored[0]}:{stored[1]}:0:0,setsar={sar.numerator}/{sar.denominator}",
                    "-c:v", "libx264", "-pix_fmt", "yuv444p" if stored[0] % 2 or stored[1] % 2 else "yuv420p",
                    str(source)], check=True)
    with sio.open_video(source) as reader:
        frames = list(reader)
    assert reader.info.size == shown and frames[0].shape == (shown[1], shown[0], 3)
    out = tmp_path / "out.mp4"
    with sio.VideoWriter(out, width=shown[0], height=shown[1], fps=reader.info.fps, colour=reader.info.colour) as writer:
        for frame in frames:
            writer.write(frame)
    facts = stream_facts(out)
    assert_playable(facts)
    assert facts["size"] == even_size(*shown) and facts["sar"] in (None, Fraction(1))


def test_command_near_square_and_odd_sizes_play_everywhere(tmp_path, model_env):
    # a 1280x720 clip with SAR 2216:2215, as `ffmpeg -vf scale=1280:-2` leaves them every day
    near = make_colour_clip(tmp_path / "near.mp4", size=(1280, 720), frames=2, extra=("-vf", "setsar=r=2216/2215:max=10000"))
    assert stream_facts(near)["sar"] == Fraction(2216, 2215)
    odd = make_clip(tmp_path / "odd.mp4", size=(321, 241), frames=3, audio=False)
    for source, size in ((near, (1280, 720)), (odd, (320, 240))):
        out = tmp_path / "out"
        done = run_segtool(["video", source, "--blur", "--category-mask", "-o", f"{out}/"], model_env)
        assert done.returncode == 0, done.stderr
        facts = stream_facts(out / f"{source.stem}.blur.mp4")
        assert_playable(facts)
        assert facts["size"] == size
    # per-frame masks keep the input's own size: one mask pixel per input pixel
    import cv2

    mask = cv2.imread(str(tmp_path / "out" / "odd.000001.category.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (241, 321)


# ---- every frame of animated pictures -------------------------------------------------------------

def animated(path: Path, frames: int = 7, **save) -> Path:
    from PIL import Image

    pictures = [Image.fromarray(patch_picture(64, 48)[:, ::-1] if i % 2 else patch_picture(64, 48))
                for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0, **save)
    return path


@pytest.mark.parametrize("name, save", [
    ("anim.gif", {}), ("anim.png", {}), ("anim.webp", {"lossless": True}),
    # a colour profile or a large text chunk before the animation chunk: ffmpeg's own guess
    # takes such a PNG for a still picture
    ("icc.png", {"icc_profile": os.urandom(6000)}), ("icc.webp", {"icc_profile": os.urandom(6000), "lossless": True}),
])
def test_animated_pictures_give_every_frame(tmp_path, name, save):
    source = animated(tmp_path / name, **save)
    with sio.open_video(source) as reader:
        frames = list(reader)
    assert len(frames) == 7 and reader.problem is None
    assert_patches(frames[0], tolerance=2) and assert_patches(frames[1][:, ::-1], tolerance=2)


def test_command_animated_png_with_text_segments_every_frame(tmp_path, model_env):
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("XML:com.adobe.xmp", "x" * 5000)
    source = animated(tmp_path / "anim.png", pnginfo=text)
    done = run_segtool(["video", source, "--mask-video", tmp_path / "mask.mp4", "--category-mask",
                        "-o", f"{tmp_path / 'masks'}/"], model_env)
    assert done.returncode == 0, done.stderr
    assert count_frames(tmp_path / "mask.mp4") == 7
    assert len(visible(tmp_path / "masks")) == 7


# ---- names taken as they are ------------------------------------------------------------------

NAMES = ["take:2.mp4", "-dash.mp4", "two words.mp4", "new\nline.mp4", "caf\udce9.mp4", "100%d.mp4"]


@pytest.mark.parametrize("name", NAMES)
def test_any_name_reads_and_writes(tmp_path, name):
    folder = tmp_path / "day:1"
    folder.mkdir()
    source = make_colour_clip(tmp_path / "plain.mp4", frames=2)
    (folder / name).write_bytes(source.read_bytes())
    with sio.open_video(folder / name) as reader:
        frames = list(reader)
    assert len(frames) == 2
    out = folder / ("out-" + name)
    with sio.VideoWriter(out, width=320, height=240, fps=reader.info.fps, audio_from=reader.info) as writer:
        for frame in frames:
            writer.write(frame)
    assert stream_facts(out)["frames"] == 2 and not partial_files(folder)


def test_command_names_with_colons(tmp_path, model_env):
    folder = tmp_path / "day:1"
    folder.mkdir()
    source = make_clip(folder / "in:1.mp4", frames=3)
    done = run_segtool(["video", "in:1.mp4", "--blur", "-o", "take:2.mp4"], model_env, cwd=folder)
    assert done.returncode == 0, done.stderr
    done = run_segtool(["video", source, "--blur", "-o", "day:1/"], model_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert count_frames(folder / "take:2.mp4") == 3 and count_frames(folder / "in:1.blur.mp4") == 3
    done = run_segtool(["webcam", "--source", "in:1.mp4", "--blur", "-o", "live:1.mp4", "-q"], model_env, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert count_frames(folder / "live:1.mp4") >= 2


def test_a_file_wins_over_format_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert live_input("lavfi:testsrc2")[0][-2:] == ["-f", "lavfi"]
    (tmp_path / "lavfi:testsrc2").write_bytes(b"")
    args, target = live_input("lavfi:testsrc2")
    assert "-f" not in args and target == "file:" + str(tmp_path / "lavfi:testsrc2")
    assert live_input("rtsp://camera.local/stream")[1] == "rtsp://camera.local/stream"


def test_stream_colour_reads_ffmpeg_descriptions():
    line = "  Stream #0:0: Video: h264 (High) (avc1 / 0x31637661), {}, 1280x720, 30 fps"
    assert stream_colour(line.format("yuv420p(tv, bt709, progressive)")) == (
        "yuv420p", {"range": "tv", "matrix": "bt709", "primaries": "bt709", "transfer": "bt709"})
    assert stream_colour(line.format("yuvj420p(pc, bt470bg/unknown/unknown)")) == (
        "yuvj420p", {"range": "pc", "matrix": "bt470bg"})
    assert stream_colour(line.format("yuv420p(progressive)")) == ("yuv420p", {})
    assert stream_colour(line.format("yuv420p")) == ("yuv420p", {})
    assert stream_colour(line.format("yuv420p10le(tv, bt2020nc/bt2020/smpte2084, top first)"))[1]["transfer"] == "smpte2084"


# ---- signals that end a run ------------------------------------------------------------------------

STOPS = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGQUIT: 131, signal.SIGTERM: 143}


def stop_midway(args, env, folder: Path, which: signal.Signals, *, ready=partial_files) -> tuple[int, str]:
    """Run segtool, send ``which`` once ``ready(folder)`` (a temporary is being written), and
    return (exit status, stderr)."""
    process = subprocess.Popen(segtool_command() + [str(a) for a in args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=reset_signals)
    deadline = time.monotonic() + 90
    while not (folder.is_dir() and ready(folder)) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(which)
    _, err = process.communicate(timeout=90)
    return process.returncode, os.fsdecode(err)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=600, audio=False)


@pytest.mark.parametrize("which", list(STOPS))
def test_video_stopped_by_any_signal_leaves_nothing(tmp_path, model_env, long_clip, which):
    out = tmp_path / "out"
    code, err = stop_midway(["video", long_clip, "--blur", "--mask-video", out / "m.mp4", "-o", f"{out}/"],
                            model_env, tmp_path, which)
    assert code == STOPS[which], err
    assert "Traceback" not in err and not partial_files(tmp_path)
    assert not out.exists() or not visible(out)


@pytest.mark.parametrize("which", [signal.SIGHUP, signal.SIGQUIT])
def test_webcam_stopped_by_a_signal_finishes_its_file(tmp_path, model_env, long_clip, which):
    out = tmp_path / "live.mp4"
    code, err = stop_midway(["webcam", "--source", long_clip, "--blur", "-o", out, "-q"], model_env, tmp_path, which)
    assert code == STOPS[which], err
    assert not partial_files(tmp_path) and count_frames(out) > 0


@pytest.mark.parametrize("which", [signal.SIGHUP, signal.SIGQUIT])
def test_image_batch_stopped_by_a_signal_leaves_no_temporary(tmp_path, model_env, which):
    import badinput_corpus as corpus

    folder = tmp_path / "in"
    corpus.write_tree(folder, {f"a{i}.png": corpus.png(corpus.astronaut()) for i in range(40)})
    out = tmp_path / "out"
    code, err = stop_midway(["image", folder, "--blur", "-o", out], model_env, out, which, ready=visible)
    assert code == STOPS[which], err
    assert "Traceback" not in err and not partial_files(out)


def test_an_ignored_hangup_stays_ignored(tmp_path, model_env):
    """Under nohup a closed terminal must not stop the run."""
    source = make_clip(tmp_path / "in.mp4", frames=90, audio=False)

    def ignore_hangup():
        reset_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = subprocess.Popen(segtool_command() + ["video", str(source), "--blur", "-o", str(tmp_path / "o.mp4")],
                               env=model_env, stderr=subprocess.PIPE, preexec_fn=ignore_hangup)
    deadline = time.monotonic() + 90
    while not partial_files(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert count_frames(tmp_path / "o.mp4") == 90


@pytest.mark.parametrize("size", [(1, 48), (3, 5), (64, 1)])
def test_tiny_odd_frames_still_make_a_playable_video(tmp_path, size):
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[:] = PATCHES[0]
    with sio.VideoWriter(tmp_path / "tiny.mp4", width=size[0], height=size[1], fps=Fraction(10)) as writer:
        writer.write(frame)
        writer.write(frame)
    facts = stream_facts(tmp_path / "tiny.mp4")
    assert_playable(facts)
    assert facts["size"] == even_size(*size) and facts["frames"] == 2
    assert np.abs(decoded(tmp_path / "tiny.mp4")[0].astype(int) - PATCHES[0]).max() <= 4


@pytest.mark.parametrize("command", ["video", "webcam"])
def test_closing_the_terminal_midway(tmp_path, model_env, long_clip, command):
    """The real thing behind SIGHUP: segtool on a terminal that goes away (a closed window, a
    dropped SSH session). The kernel sends the hangup; stderr then fails with EIO. `video`
    leaves nothing; `webcam` finishes its file, as on Ctrl-C."""
    import fcntl
    import pty
    import select
    import termios

    controller, terminal = pty.openpty()

    def on_the_terminal():
        reset_signals()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the terminal becomes the new session's own

    args = ["video", str(long_clip)] if command == "video" else ["webcam", "--source", str(long_clip)]
    process = subprocess.Popen(segtool_command() + args + ["--blur", "-o", str(tmp_path / "o.mp4")],
                               env=model_env, stdin=terminal, stdout=terminal, stderr=terminal,
                               start_new_session=True, preexec_fn=on_the_terminal)
    os.close(terminal)
    deadline = time.monotonic() + 90
    while not partial_files(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        if select.select([controller], [], [], 0.05)[0]:
            os.read(controller, 65536)  # the progress bar, read as a terminal would
    time.sleep(0.3)
    os.close(controller)  # the window closes
    assert process.wait(timeout=90) == 129
    assert not partial_files(tmp_path)
    if command == "video":
        assert not (tmp_path / "o.mp4").exists()
    else:
        assert count_frames(tmp_path / "o.mp4") > 0


@pytest.mark.parametrize("name", ["sd-601-tv", "hd-709-tv", "hd-709-pc", "hd-untagged"])
def test_opencv_and_imageio_read_the_source_colours_too(tmp_path, name):
    import cv2
    import imageio.v3 as iio

    size, matrix, full, tagged = SOURCES[name]
    source = make_colour_clip(tmp_path / "in.mp4", size=size, matrix=matrix, full=full, tagged=tagged, frames=2)
    with sio.open_video(source) as reader:
        frames = list(reader)
    out = tmp_path / "out.mp4"
    with sio.VideoWriter(out, width=size[0], height=size[1], fps=reader.info.fps, colour=reader.info.colour) as writer:
        for frame in frames:
            writer.write(frame)
    capture = cv2.VideoCapture(str(out))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    assert_patches(bgr[..., ::-1], tolerance=5)
    assert_patches(next(iio.imiter(out, plugin="FFMPEG")), tolerance=5)
