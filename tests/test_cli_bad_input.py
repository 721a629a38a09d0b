"""Bad input through the real `segtool image`: one line per bad file, the rest done, exit 1."""
from __future__ import annotations

import io
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import badinput_corpus as corpus
from segtool_process import (partial_files, run_on_terminal, run_segtool,
                             stderr_lines)


def upright_size(name: str) -> tuple[int, int]:
    """The (H, W) each good corpus file has once decoded upright."""
    sizes = {"grace hopper.jpg": Image.open(io.BytesIO(corpus.grace_hopper_jpeg())).size[::-1],
             "cmyk.jpg": corpus.coffee().shape[:2], "café ☕ 写真.png": corpus.chelsea().shape[:2],
             "palette alpha.png": corpus.chelsea().shape[:2], "animated.gif": corpus.flat_frames()[0].shape[:2],
             "rotated 6.jpg": corpus.half_person().shape[:2]}
    return sizes.get(name, corpus.astronaut().shape[:2])


def stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "in"
    corpus.write_tree(folder, {**corpus.good_inputs(), **corpus.bad_inputs()})
    return folder


def test_every_bad_file_gets_one_line_and_the_good_ones_are_done(tmp_path, mixed_folder, model_env):
    out = tmp_path / "out"
    result = run_segtool(["image", mixed_folder, "-o", out, "--category-mask"], model_env)
    lines = stderr_lines(result)
    assert result.returncode == 1, lines
    for name in corpus.bad_inputs():
        mentions = [line for line in lines if line.startswith(f"segtool: {mixed_folder / name}: ")]
        assert len(mentions) == 1, (name, lines)
    good, bad = len(corpus.good_inputs()), len(corpus.bad_inputs())
    assert f"segtool: {good} done, {bad} failed" in lines
    listed = min(bad, 20) + (bad > 20)  # the summary lists 20 failures, then "... and N more"
    assert len(lines) == bad + 1 + listed  # one line each, the summary, the list of failures
    for name in corpus.good_inputs():
        confidence = np.load(out / f"{stem(name)}.confidence.npy")
        category = np.asarray(Image.open(out / f"{stem(name)}.category.png"))
        assert confidence.shape == (2, *upright_size(name)) and category.shape == upright_size(name)
    assert partial_files(out) == []


def test_json_lines_for_every_input_even_undecodable_names(tmp_path, model_env):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    (folder / odd).write_bytes(corpus.png(corpus.chelsea()))
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    result = run_segtool(["image", folder, "-o", tmp_path / "out", "--json", "-q"], model_env)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(os.fsencode(r["input"]), r["ok"]) for r in records] == [
        (os.fsencode(folder / "bad.jpg"), False), (os.fsencode(folder / odd), True)]
    assert len(stderr_lines(result)) == 1  # --quiet: the error line, no summary


def test_inputs_that_would_share_outputs_are_not_both_written(tmp_path, model_env):
    folder = tmp_path / "in"
    corpus.write_tree(folder, {"a.jpg": corpus.jpeg(corpus.chelsea()), "a.png": corpus.png(corpus.coffee())})
    result = run_segtool(["image", folder, "-o", tmp_path / "out"], model_env)
    assert result.returncode == 1
    assert any("a.png: its outputs would overwrite those of" in line for line in stderr_lines(result))
    assert np.load(tmp_path / "out" / "a.confidence.npy").shape[1:] == corpus.chelsea().shape[:2]


@pytest.mark.parametrize("orientation", corpus.ORIENTATIONS)
def test_masks_line_up_with_the_upright_picture(tmp_path, model_env, orientation):
    upright = corpus.half_person()
    folder = tmp_path / "in"
    corpus.write_tree(folder, {"upright.png": corpus.png(upright),
                               "tagged.png": corpus.oriented(upright, orientation)})
    result = run_segtool(["image", folder, "-o", tmp_path / "out", "--category-mask"], model_env)
    assert result.returncode == 0, stderr_lines(result)
    reference = np.load(tmp_path / "out" / "upright.confidence.npy")
    tagged = np.load(tmp_path / "out" / "tagged.confidence.npy")
    # The picture is lopsided (a person on the left, flat grey on the right), so a mask that
    # was not turned back would differ from the reference.
    half = upright.shape[1] // 2
    assert reference[1][:, :half].mean() > reference[1][:, half:].mean() + 0.3
    assert tagged.shape == reference.shape == (2, *upright.shape[:2])
    assert np.array_equal(tagged, reference)
    categories = [np.asarray(Image.open(tmp_path / "out" / f"{n}.category.png")) for n in ("upright", "tagged")]
    assert np.array_equal(*categories)


# ---- outputs that cannot be written --------------------------------------------------------

def test_output_under_a_file_is_one_line_exit_1(tmp_path, model_env):
    (tmp_path / "in.png").write_bytes(corpus.png(corpus.chelsea()))
    (tmp_path / "file").write_text("x")
    result = run_segtool(["image", tmp_path / "in.png", "-o", tmp_path / "file" / "out"], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"segtool: {tmp_path / 'file' / 'out'}: cannot create output folder (Not a directory)"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write: a read-only tmpfs as root, else plain permissions."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root without mount: cannot make a folder root may not write")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_read_only_output_folder_is_one_line_exit_1(tmp_path, model_env, read_only_folder):
    (tmp_path / "in.png").write_bytes(corpus.png(corpus.chelsea()))
    result = run_segtool(["image", tmp_path / "in.png", "-o", read_only_folder], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"segtool: {read_only_folder}: output folder is not writable"]


def test_progress_bar_on_a_terminal_with_a_bad_input(tmp_path, model_env):

    folder = tmp_path / "in"
    corpus.write_tree(folder, {"good.png": corpus.png(corpus.chelsea()), "bad.jpg": b"nope"})
    code, shown = run_on_terminal(["image", folder, "-o", tmp_path / "out"], model_env)
    assert code == 1, shown
    assert b"Traceback" not in shown and b"bad.jpg: not an image" in shown and b"1 done, 1 failed" in shown
