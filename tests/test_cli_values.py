"""Odd option values and closed pipes through the real CLI: usage errors (exit 2) before any work,
counts bounded to the machine, and a stdout closed early that ends a run quietly with exit 0."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import badinput_corpus as corpus
from clips import make_clip
from segtool_process import partial_files, run_segtool, segtool_command, start_segtool, stderr_lines


@pytest.fixture
def picture(tmp_path) -> Path:
    path = tmp_path / "in" / "cat.png"
    path.parent.mkdir()
    path.write_bytes(corpus.png(corpus.chelsea()[::4, ::4]))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "talk.mp4", frames=4, audio=False)


def written(folder: Path) -> list[Path]:
    """What a run left in ``folder``, besides the test's private model copies."""
    return [p for p in folder.rglob("*") if not {"bundled-models", "user-models"} & set(p.relative_to(folder).parts)]


def assert_usage_error(result, *needles: str) -> None:
    text = os.fsdecode(result.stderr)
    assert result.returncode == 2, text
    assert "Traceback" not in text and all(needle in text for needle in needles), text


# ---- float options: nan, inf and out-of-range values ----------------------------------------------

@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "1e308", "1e999", "0", "-1", "0.01", "101", "x"])
def test_blur_strength_must_be_a_finite_number_in_range(tmp_path, picture, model_env, value):
    result = run_segtool(["image", picture, "--blur", "--blur-strength", value, "-o", tmp_path / "out"], model_env)
    assert_usage_error(result, "--blur-strength")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1", "1.5", "-0.1"])
def test_smooth_must_be_a_finite_ratio_below_one(tmp_path, clip, model_env, value):
    result = run_segtool(["video", clip, "--blur", "--smooth", value, "-o", tmp_path / "x.mp4"], model_env)
    # a negative value reads as an option to Click ("No such option '-0'"): a usage error too
    assert_usage_error(result, "--smooth" if not value.startswith("-") else "No such option")
    assert not written(tmp_path)


@pytest.mark.parametrize("value", ["100", "0.05", "1e1"])
def test_the_ends_of_the_blur_range_work(tmp_path, picture, model_env, value):
    result = run_segtool(["image", picture, "--blur", "--blur-strength", value, "--no-confidence-masks",
                          "-o", tmp_path / "out"], model_env)
    assert result.returncode == 0, stderr_lines(result)
    assert (tmp_path / "out" / "cat.blur.png").is_file()


@pytest.mark.parametrize("value", ["0", "-3", "257", "20000", "1.5", "nan"])
def test_batch_size_out_of_range_is_a_usage_error(tmp_path, picture, model_env, value):
    result = run_segtool(["image", picture, "--category-mask", f"--batch-size={value}", "-o", tmp_path / "out"],
                         model_env)
    assert_usage_error(result, "--batch-size")
    assert not (tmp_path / "out").exists()


# ---- counts beyond the machine ----------------------------------------------------------------------

@pytest.mark.parametrize("args, env_name", [(["--threads", "20000"], None), (["-j", "20000"], None),
                                            ([], "SEGTOOL_THREADS"), ([], "SEGTOOL_JOBS")])
def test_thread_and_job_counts_far_beyond_the_machine_are_lowered_with_a_note(
        tmp_path, picture, model_env, args, env_name):
    env = dict(model_env, **({env_name: "20000"} if env_name else {}))
    result = run_segtool(["image", picture, *args, "--category-mask", "-o", tmp_path / "out"], env, timeout=120)
    assert result.returncode == 0, stderr_lines(result)
    option = "--threads" if "THREADS" in str(env_name) or "--threads" in args else "--jobs"
    notes = [line for line in stderr_lines(result) if "note:" in line]
    assert len(notes) == 1 and f"{option} 20000 is more than this machine can use" in notes[0]
    assert (tmp_path / "out" / "cat.category.png").is_file()


@pytest.mark.parametrize("stop, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_run_asked_for_20000_threads_still_stops_on_a_signal(tmp_path, model_env, stop, code):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(40):
        (folder / f"p{index:02d}.png").write_bytes(corpus.png(corpus.astronaut()))
    process = start_segtool(["image", folder, "-j", "20000", "--threads", "20000", "--category-mask",
                             "-o", tmp_path / "out"], model_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "out"
    while process.poll() is None and not (out.is_dir() and any(out.iterdir())):
        time.sleep(0.05)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)  # would hang for minutes if 20000 threads started
    assert process.returncode in (code, 0), stderr.decode()  # 0: it finished before the signal
    assert b"Traceback" not in stderr and not partial_files(tmp_path)


# ---- conflicts in the command line: exit 2 before any work ---------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--alpha", "-o", "x.mp4"], ".mp4 cannot hold an alpha channel"),
    (["--alpha", "-o", "x.mkv"], ".mkv cannot hold an alpha channel"),
    (["--cutout", "-o", "x.avi"], ".avi cannot hold an alpha channel"),
    (["--cutout", "-o", "x.mp4"], ".mp4 cannot hold an alpha channel"),
    (["--blur", "--mask-video", "m.gif", "-o", "out/"], "m.gif is not a video file name"),
    (["--blur", "--mask-video", "m.xyz", "-o", "out/"], "m.xyz is not a video file name"),
    (["--blur", "--composite-format", "png", "-o", "x.mp4"], "No such option '--composite-format'"),
    (["--blur", "--blur-strength", "nan", "-o", "x.mp4"], "not a finite number"),
])
@pytest.mark.parametrize("command", ["video", "webcam"])
def test_stream_conflicts_are_usage_errors(tmp_path, clip, model_env, command, args, needle):
    if command == "webcam" and ("--alpha" in args or "--mask-video" in args):
        pytest.skip("a video-only option")
    source = [clip] if command == "video" else ["--source", "lavfi:testsrc2=duration=1"]
    result = run_segtool([command, *source, *args], model_env, cwd=tmp_path)
    assert_usage_error(result, needle)
    assert not written(tmp_path)


@pytest.mark.parametrize("extra", [[], ["--blur"], ["--blur", "--replace-bg", "red"]])
def test_a_cutout_asked_for_as_jpeg_is_a_png_and_says_so(tmp_path, picture, model_env, extra):
    import imageio.v3 as iio

    result = run_segtool(["image", picture, "--cutout", *extra, "--composite-format", "jpg",
                          "--no-confidence-masks", "-o", tmp_path / "out"], model_env)
    assert result.returncode == 0, stderr_lines(result)
    assert stderr_lines(result)[0] == ("segtool: note: --composite-format jpg: cut-outs are written as PNG, "
                                       "since JPEG has no alpha channel (webp has one)")
    assert iio.imread(tmp_path / "out" / "cat.cutout.png").shape[2] == 4
    assert all(p.suffix == ".jpg" for p in (tmp_path / "out").iterdir()
               if "cutout" not in p.name and not p.name.startswith("."))


@pytest.mark.parametrize("command", ["image", "video", "webcam"])
@pytest.mark.parametrize("backdrop", [b"not a picture\n", b"", corpus.random_bytes(300)])
def test_a_backdrop_that_is_not_a_picture_is_a_usage_error(tmp_path, picture, clip, model_env, command, backdrop):
    (tmp_path / "back.jpg").write_bytes(backdrop)
    source = {"image": [picture], "video": [clip], "webcam": ["--source", "lavfi:testsrc2=duration=1"]}[command]
    result = run_segtool([command, *source, "--replace-bg", "back.jpg", "-o", "out.mp4" if command != "image" else "out"],
                         model_env, cwd=tmp_path)
    assert_usage_error(result, "--replace-bg", "back.jpg")
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out").exists()


def test_each_command_help_says_what_applies_to_it(model_env):
    video = " ".join(run_segtool(["video", "--help"], model_env).stdout.decode().split())
    assert "[default: no-confidence-masks]" in video and "<stem>.<frame>.category.png" in video
    assert "--composite-format" not in video and "--jobs" not in video and "<stem>.cutout.png" not in video
    image = " ".join(run_segtool(["image", "--help"], model_env).stdout.decode().split())
    assert "[default: confidence-masks]" in image and "--composite-format" in image and "--jobs" in image


# ---- file names -------------------------------------------------------------------------------------

def test_exr_masks_under_names_that_are_not_utf8(tmp_path, model_env):
    import OpenEXR

    folder = Path(os.fsdecode(bytes(tmp_path) + b"/in \xff"))
    folder.mkdir()
    source = folder / os.fsdecode(b"caf\xe9.png")
    source.write_bytes(corpus.png(corpus.chelsea()[::4, ::4]))
    out = Path(os.fsdecode(bytes(tmp_path) + b"/out \xfe"))
    result = run_segtool(["image", source, "--confidence-format", "exr", "-o", out], model_env)
    assert result.returncode == 0, stderr_lines(result)
    written = out / os.fsdecode(b"caf\xe9.confidence.exr")
    with open(written, "rb") as stream, OpenEXR.File(stream) as exr:
        person = exr.channels()["person"].pixels
    assert person.shape == (corpus.chelsea()[::4, ::4].shape[:2]) and np.isfinite(person).all()
    assert not partial_files(tmp_path)


# ---- a stdout closed early -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["image", "many", "--json", "--category-mask", "--no-confidence-masks", "-o", "out"],
    ["image", "-", "--json", "--category-mask", "--no-confidence-masks", "-o", "out"],
    ["models", "list"], ["models", "info", "deeplab"], ["models", "verify"], ["info"],
    ["--help"], ["image", "--help"], ["--version"],
])
def test_a_closed_stdout_ends_the_run_quietly(tmp_path, model_env, args):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(6):
        (many / f"p{index}.png").write_bytes(corpus.png(corpus.coffee()[::8, ::8]))
    reading, writing = os.pipe()
    os.close(reading)  # the reader has gone before the first line: every write meets EPIPE
    try:
        names = b"".join(bytes(p) + b"\n" for p in sorted(many.iterdir()))
        done = subprocess.run(segtool_command() + args, cwd=tmp_path, env=model_env, input=names,
                              stdout=writing, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(writing)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    assert not partial_files(tmp_path)


def test_head_takes_the_first_json_line(tmp_path, model_env):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(12):
        (many / f"p{index:02d}.png").write_bytes(corpus.png(corpus.coffee()[::8, ::8]))
    command = " ".join(segtool_command()) + " image many --json --category-mask -o out | head -1"
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=tmp_path, env=model_env,
                          capture_output=True, timeout=120)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()
    assert len(done.stdout.splitlines()) == 1 and b'"ok": true' in done.stdout
    assert not partial_files(tmp_path)
