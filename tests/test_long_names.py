"""Output names as long as the file system takes (255 bytes), in any script.

The hidden temporary an output is written under must fit wherever the output's own name fits:
ASCII and multi-byte UTF-8 names of 250-255 bytes, composites, per-frame video masks and composite
videos; their ledger entries must vouch for them (a --skip-existing rerun skips them, a rerun
replaces them); the stale-temporary sweep must still find a killed run's temporaries.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import pytest
from PIL import Image

from clips import make_clip
from segtool.io.writers import remove_stale_partials, temporary_name, temporary_stem
from segtool_process import partial_files, run_segtool, stderr_lines

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
NAME_MAX = 255


def stem_for(total: int, ending: str, letter: str = "a") -> str:
    """A stem of ``letter``s such that stem + ending is exactly ``total`` bytes (or just under,
    for a letter of several bytes: never over)."""
    room = total - len(ending.encode())
    return letter * (room // len(letter.encode())) + "x" * (room % len(letter.encode()))


# ---- the temporary names themselves ----------------------------------------------------------------

@pytest.mark.parametrize("letter", ["a", "é", "日", "😀"])
@pytest.mark.parametrize("length", [1, 200, 240, 243, 244, 250, 254, 255])
def test_a_temporary_name_fits_wherever_its_name_fits(letter, length):
    name = stem_for(length, ".category.png", letter) + ".category.png"
    assert len(name.encode()) <= NAME_MAX
    temporary = temporary_name(name)
    assert len(temporary.encode()) <= NAME_MAX - 7 + len(str(os.getpid()))  # room for any pid
    assert temporary.startswith(".") and temporary.endswith(f".part-{os.getpid()}")
    temporary.encode()  # whole characters: never a UTF-8 sequence cut in two


def test_long_names_that_share_a_beginning_get_different_temporaries():
    first, second = "a" * 245 + "1.blur.png", "a" * 245 + "2.blur.png"
    assert temporary_stem(first) != temporary_stem(second)
    assert temporary_stem("short.blur.png") == ".short.blur.png"  # short names keep the plain form


def test_the_stale_sweep_finds_long_temporaries_beside_finished_outputs(tmp_path):
    done, unfinished = "d" * 250 + ".png", "u" * 250 + ".png"
    (tmp_path / done).write_bytes(b"x")
    for name in (done, unfinished):
        (tmp_path / temporary_stem(name)).with_name(temporary_stem(name) + ".part-4321").write_bytes(b"x")
    remove_stale_partials([tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([done, temporary_stem(unfinished) + ".part-4321"])


# ---- through the CLI ---------------------------------------------------------------------------------

def picture_named(folder: Path, stem: str, suffix: str = ".png") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / (stem + suffix)
    iio.imwrite(path, skdata.astronaut()[::4, ::4], extension=suffix)
    return path


@pytest.mark.parametrize("letter, total", [("a", 250), ("a", 255), ("é", 255), ("日", 254), ("😀", 255)],
                         ids=["ascii-250", "ascii-255", "latin-255", "cjk-254", "emoji-255"])
def test_images_with_names_up_to_255_bytes_are_written_and_recognised(tmp_path, model_env, letter, total):
    # the longest output decides: <stem>.category-color.png
    stem = stem_for(total, ".category-color.png", letter)
    source = picture_named(tmp_path / "in", stem)
    out = tmp_path / "out"
    job = ["image", source, "--category-mask", "--palette", "--blur", "-o", out, "--json"]
    first = run_segtool(job, model_env)
    assert first.returncode == 0, stderr_lines(first)
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == sorted(f"{stem}{ending}" for ending in
                           (".category.png", ".category-color.png", ".confidence.npy", ".blur.png"))
    assert max(len(n.encode()) for n in names) == len((stem + ".category-color.png").encode())
    for name in names:
        if name.endswith(".png"):
            with Image.open(out / name) as image:
                assert image.size == (128, 128)
    assert partial_files(out) == []
    again = run_segtool(job + ["--skip-existing"], model_env)
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] is True, stderr_lines(again)
    rerun = run_segtool(job, model_env)  # the ledger vouches for each: all replaced
    assert rerun.returncode == 0, stderr_lines(rerun)


def test_a_name_over_the_limit_is_one_line_and_the_batch_goes_on(tmp_path, model_env):
    long_one = picture_named(tmp_path / "in", stem_for(255, ".category.png"))  # 255 bytes: fits
    too_long = picture_named(tmp_path / "in", "b" * 246)  # its .category.png is 259 bytes
    out = tmp_path / "out"
    done = run_segtool(["image", long_one, too_long, "--blur", "--category-mask", "--no-confidence-masks",
                        "-o", out], model_env)
    assert done.returncode == 1
    lines = stderr_lines(done)
    assert len(lines) == 2 and "b" * 246 in lines[0], lines
    assert lines[0].endswith(".category.png: cannot write (File name too long: the name is 259 bytes)"), lines
    assert lines[1] == "segtool: 1 done, 1 failed"
    assert (out / (long_one.stem + ".blur.png")).is_file() and partial_files(out) == []


def test_video_frame_masks_and_composites_with_long_names(tmp_path, model_env):
    # <stem>.000001.category.png at 255 bytes, and the composite <stem>.blur.mp4 beside it
    stem = stem_for(255, ".000001.category.png", "é")
    clip = make_clip(tmp_path / f"{stem}.mp4", frames=3, audio=False)
    masks = tmp_path / "masks"
    done = run_segtool(["video", clip, "--category-mask", "-o", f"{masks}/"], model_env)
    assert done.returncode == 0, stderr_lines(done)
    assert sorted(p.name for p in masks.iterdir() if not p.name.startswith(".")) == \
        [f"{stem}.{i:06d}.category.png" for i in (1, 2, 3)]
    blurred = tmp_path / "videos" / (stem_for(255, ".blur.mp4", "日") + ".blur.mp4")
    done = run_segtool(["video", clip, "--blur", "-o", blurred], model_env)
    assert done.returncode == 0, stderr_lines(done)
    assert iio.improps(blurred, plugin="pyav").shape[0] == 3
    again = run_segtool(["video", clip, "--blur", "-o", blurred], model_env)  # its own file: replaced
    assert again.returncode == 0, stderr_lines(again)
    assert partial_files(tmp_path) == []
