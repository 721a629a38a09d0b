"""Outputs as users meet them: masks every reader reads alike, and no file of theirs ever replaced.

Every case runs the real CLI on real pictures. The classes under test:
- the category mask is category indices for imageio, OpenCV and Pillow (images, video frames),
  with a coloured view only when asked (--palette);
- an output never replaces an input or a file segtool did not write (images, per-frame video
  masks, composite videos, --mask-video, the webcam's --output): that input fails with one line;
- a folder walk never takes segtool's outputs for inputs, so a resume is byte for byte an
  uninterrupted run wherever -o points;
- two outputs of one run that name one file, and -o values that are neither a file nor a
  folder, are usage errors before any work;
- folder walks find every format the decoder reads; a run that finds nothing says so, exit 1.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePath

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, features

from clips import make_clip
from segtool import ImageSegmenter, ImageSegmenterOptions, effects
from segtool import io as sio
from segtool.io import InputItem, category_palette, image_extensions, is_output_name, read_image
from segtool.io.ledger import LEDGER_NAME
from segtool.outputs import ImageOutputs, frame_files, planned_outputs
from segtool.engines.stream import VideoOutputs
from segtool_process import partial_files, run_segtool, snapshot, stderr_lines, visible

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """astronaut (PNG), grace hopper (JPEG) and chelsea the cat (PNG), as files."""
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("pictures")
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "chelsea.png", skdata.chelsea())
    shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "hopper.jpg")
    return {p.stem: p for p in folder.iterdir()}


@pytest.fixture
def work(tmp_path) -> Path:
    """An empty current folder for a run (model_env keeps its model copy in tmp_path)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def api_category_mask(path: Path, model: str) -> np.ndarray:
    options = ImageSegmenterOptions(model=model, output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        return segmenter.segment(read_image(path)).category_mask


def read_three_ways(path: Path) -> list[np.ndarray]:
    """The mask as imageio, OpenCV (unchanged) and Pillow users get it."""
    return [iio.imread(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED), np.asarray(Image.open(path))]


def ok(result) -> None:
    assert result.returncode == 0, stderr_lines(result)


# ---- the category mask is category indices for every reader -------------------------------------

@pytest.mark.parametrize("model, picture", [("selfie", "hopper"), ("selfie_landscape", "astronaut"),
                                            ("deeplab", "chelsea"), ("deeplab", "astronaut")])
def test_every_reader_reads_the_category_indices(pictures, tmp_path, model_env, model, picture):
    out = tmp_path / "out"
    ok(run_segtool(["image", pictures[picture], "--model", model, "--category-mask", "--no-confidence-masks",
                    "-o", out], model_env))
    expected = api_category_mask(pictures[picture], model)
    assert len(np.unique(expected)) >= 2  # something to tell apart
    for read in read_three_ways(out / f"{picture}.category.png"):
        assert read.dtype == np.uint8 and read.ndim == 2
        np.testing.assert_array_equal(read, expected)
    assert visible(out) == [f"{picture}.category.png"]  # no coloured view unless asked


@pytest.mark.parametrize("model, picture", [("selfie", "hopper"), ("deeplab", "chelsea")])
def test_palette_adds_a_coloured_view_beside_the_plain_mask(pictures, tmp_path, model_env, model, picture):
    ok(run_segtool(["image", pictures[picture], "--model", model, "--palette", "--no-confidence-masks",
                    "-o", tmp_path], model_env))  # --palette implies --category-mask
    indices = np.asarray(Image.open(tmp_path / f"{picture}.category.png"))
    preview = Image.open(tmp_path / f"{picture}.category-color.png")
    assert preview.mode == "RGB" and Image.open(tmp_path / f"{picture}.category.png").mode == "L"
    colours = np.asarray(category_palette(), np.uint8).reshape(256, 3)
    np.testing.assert_array_equal(np.asarray(preview), colours[indices])
    np.testing.assert_array_equal(indices, api_category_mask(pictures[picture], model))


def test_video_frame_masks_are_indices_and_palette_adds_colour(tmp_path, model_env):
    clip = make_clip(tmp_path / "talk.mp4", frames=6, audio=False)
    ok(run_segtool(["video", clip, "--palette", "-o", f"{tmp_path / 'masks'}/"], model_env))
    names = visible(tmp_path / "masks")
    assert names == sorted([f"talk.{i:06d}.category.png" for i in range(1, 7)] +
                           [f"talk.{i:06d}.category-color.png" for i in range(1, 7)])
    colours = np.asarray(category_palette(), np.uint8).reshape(256, 3)
    with sio.open_video(clip) as reader, \
            ImageSegmenter.create_from_options(ImageSegmenterOptions(output_category_mask=True)) as segmenter:
        for index, frame in enumerate(reader, start=1):
            expected = segmenter.segment(frame).category_mask  # selfie has no memory of past frames
            assert set(np.unique(expected)) == {0, 1}
            for read in read_three_ways(tmp_path / "masks" / f"talk.{index:06d}.category.png"):
                assert read.dtype == np.uint8 and read.ndim == 2
                np.testing.assert_array_equal(read, expected)
            preview = iio.imread(tmp_path / "masks" / f"talk.{index:06d}.category-color.png")
            np.testing.assert_array_equal(preview, colours[expected])


# ---- an output never replaces a file segtool did not write -------------------------------------

def photo_folder(tmp_path: Path, pictures, names=("a.jpg", "b.jpg")) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in names:
        shutil.copyfile(pictures["hopper"], folder / name)
    return folder


OPTIONS = ["--blur", "--palette", "--cutout", "--confidence-format", "exr"]
A_OUTPUTS = ["a.blur.jpg", "a.category-color.png", "a.category.png", "a.confidence.exr", "a.cutout.png"]


@pytest.mark.parametrize("taken", A_OUTPUTS)
@pytest.mark.parametrize("into_inputs", [True, False])
def test_a_users_file_at_an_output_name_is_kept_and_that_input_fails(pictures, tmp_path, model_env, taken,
                                                                      into_inputs):
    photos = photo_folder(tmp_path, pictures)
    out = photos if into_inputs else tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / taken).write_bytes(b"the user's own file")
    result = run_segtool(["image", photos, *OPTIONS, "-o", out], model_env)
    assert result.returncode == 1
    assert [line for line in stderr_lines(result) if "not overwriting" in line] == [
        f"segtool: {out / taken}: exists and segtool did not write it; not overwriting it "
        "(move it away or choose another --output)"]
    assert (out / taken).read_bytes() == b"the user's own file"
    # refused before any work: none of a's outputs written, b done in full
    assert [n for n in visible(out) if n.startswith("a.") and n != "a.jpg"] == [taken]
    assert all((out / n.replace("a.", "b.", 1)).is_file() for n in A_OUTPUTS)
    assert not partial_files(tmp_path)


@pytest.mark.parametrize("occupant", ["symlink to a photo", "broken symlink", "folder", "edited since",
                                      "copied over, same size and time"])
def test_anything_but_segtools_own_untouched_file_is_kept(pictures, tmp_path, model_env, occupant):
    photos = photo_folder(tmp_path, pictures, names=("a.jpg",))
    args = ["image", photos, "--category-mask", "--no-confidence-masks", "-o", tmp_path / "out"]
    ok(run_segtool(args, model_env))
    target = tmp_path / "out" / "a.category.png"
    mine = target.read_bytes()
    if occupant == "symlink to a photo":
        target.unlink()
        target.symlink_to(photos / "a.jpg")
    elif occupant == "broken symlink":
        target.unlink()
        target.symlink_to(tmp_path / "nowhere.png")
    elif occupant == "folder":
        target.unlink()
        target.mkdir()
    elif occupant == "edited since":
        with open(target, "ab") as stream:
            stream.write(b"\0")
    else:  # a copy with the same bytes and times, e.g. `cp -p`: a different file all the same
        shutil.copy2(target, tmp_path / "copy.png")
        os.replace(tmp_path / "copy.png", target)
    before = os.lstat(target)
    result = run_segtool(args, model_env)
    assert result.returncode == 1 and f"segtool: {target}: " in stderr_lines(result)[0]
    assert "not overwriting it" in stderr_lines(result)[0]
    after = os.lstat(target)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    if occupant == "symlink to a photo":
        assert (photos / "a.jpg").read_bytes() == pictures["hopper"].read_bytes()
    if occupant == "copied over, same size and time":
        assert target.read_bytes() == mine


def test_recursive_outputs_in_sub_folders_are_guarded_and_linked_folders_clash(pictures, tmp_path, model_env):
    photos = photo_folder(tmp_path, pictures, names=("a.jpg",))
    for sub in ("one", "two", "three"):
        (photos / sub).mkdir()
        shutil.copyfile(pictures["hopper"], photos / sub / "x.jpg")
    out = tmp_path / "out"
    (out / "one").mkdir(parents=True)
    (out / "two").symlink_to(out / "one")  # one and two are one folder
    (out / "three").mkdir()
    (out / "three" / "x.blur.jpg").write_bytes(b"the user's own file")
    result = run_segtool(["image", photos, "-r", "--blur", "--no-confidence-masks", "-o", out], model_env)
    assert result.returncode == 1
    errors = [line for line in stderr_lines(result) if not line.startswith(("segtool: 2 done", "  failed"))]
    assert errors == [  # inputs in order: a.jpg, one/x.jpg, three/x.jpg, two/x.jpg
        f"segtool: {out / 'three' / 'x.blur.jpg'}: exists and segtool did not write it; not overwriting it "
        "(move it away or choose another --output)",
        f"segtool: {photos / 'two' / 'x.jpg'}: its outputs would overwrite those of {photos / 'one' / 'x.jpg'}; "
        "rename one of them"]
    assert (out / "three" / "x.blur.jpg").read_bytes() == b"the user's own file"
    assert visible(out / "one") == ["x.blur.jpg"] and (out / "a.blur.jpg").is_file()


def test_reruns_replace_segtools_own_outputs_and_survive_a_damaged_ledger(pictures, tmp_path, model_env):
    photos = photo_folder(tmp_path, pictures)
    args = ["image", photos, *OPTIONS, "-o", tmp_path / "out"]
    ok(run_segtool(args, model_env))
    first = snapshot(tmp_path / "out")
    ok(run_segtool(args, model_env))  # replaces its own files: same bytes
    assert snapshot(tmp_path / "out") == first
    ledger = tmp_path / "out" / LEDGER_NAME
    ledger.write_bytes(b'["a.blur.jpg", 12' + ledger.read_bytes() + b"garbage\n[1, 2]\n")  # torn, then junk
    ok(run_segtool(args, model_env))
    ledger.unlink()  # without the ledger nothing there is known to be segtool's: all kept
    result = run_segtool(args, model_env)
    assert result.returncode == 1 and len([l for l in stderr_lines(result) if "not overwriting" in l]) == 2
    assert snapshot(tmp_path / "out") == first


def test_an_input_is_never_written_over_even_one_segtool_wrote(pictures, tmp_path, model_env):
    photos = photo_folder(tmp_path, pictures, names=("a.jpg",))
    ok(run_segtool(["image", photos / "a.jpg", "--blur", "--no-confidence-masks", "-o", photos], model_env))
    composite = (photos / "a.blur.jpg").read_bytes()
    # a.blur.jpg is now an input too: a's blur would overwrite it while it is being read
    result = run_segtool(["image", photos / "a.jpg", photos / "a.blur.jpg", "--blur", "--no-confidence-masks",
                          "-o", photos], model_env)
    assert result.returncode == 1
    assert f"segtool: {photos / 'a.blur.jpg'}: is an input of this run; not overwriting it " \
           "(choose another --output)" in stderr_lines(result)
    assert (photos / "a.blur.jpg").read_bytes() == composite
    assert (photos / "a.blur.blur.jpg").is_file()  # the input named explicitly is still segmented


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "talk.mp4", frames=8, audio=False)


@pytest.mark.parametrize("command, target", [
    (["video", "{clip}", "--blur", "-o", "{taken}"], "user.mp4"),
    (["video", "{clip}", "--blur", "-o", "{clip}"], None),
    (["video", "{clip}", "--alpha", "-o", "{dir}/"], "talk.cutout.webm"),
    (["video", "{clip}", "--mask-video", "{taken}"], "user.mp4"),
    (["video", "{clip}", "--blur", "--mask-video", "{clip}", "-o", "{dir}/"], None),
    (["video", "{clip}", "--category-mask", "-o", "{dir}/"], "talk.000003.category.png"),
    (["video", "{clip}", "--category-mask", "--blur", "-o", "{dir}/"], "talk.000008.category.png"),
    (["webcam", "--source", "{clip}", "--blur", "--output", "{taken}"], "user.mp4"),
])
def test_videos_keep_users_files_and_their_input(clip, tmp_path, model_env, command, target):
    folder = tmp_path / "out"
    folder.mkdir()
    taken = folder / (target or "unused")
    taken.write_bytes(b"the user's own file")
    original = clip.read_bytes()
    args = [a.format(clip=clip, taken=taken, dir=folder) for a in command]
    result = run_segtool(args, model_env)
    assert result.returncode == 1, stderr_lines(result)
    named = taken if target else clip
    assert any(line.startswith(f"segtool: {named}: ") and "not overwriting it" in line for line in stderr_lines(result))
    assert taken.read_bytes() == b"the user's own file" and clip.read_bytes() == original
    assert visible(folder) == [taken.name]  # refused before any work: no video, no mask of its own
    assert not partial_files(tmp_path)


def test_a_video_rerun_replaces_its_own_output(clip, tmp_path, model_env):
    out = tmp_path / "out"
    args = ["video", clip, "--blur", "--mask-video", out / "mask.mp4", "-o", out / "talk.blur.mp4"]
    ok(run_segtool(args, model_env))
    ok(run_segtool(args, model_env))
    assert visible(out) == ["mask.mp4", "talk.blur.mp4"]


# ---- two outputs, one file; -o values that are neither a file nor a folder ------------------------

@pytest.mark.parametrize("outputs", [
    ["--mask-video", "o/x.mp4", "-o", "o/x.mp4"],
    ["--mask-video", "./o/x.mp4", "-o", "o/../o/x.mp4"],
    ["--mask-video", "link/x.mp4", "-o", "o/x.mp4"],
    ["--mask-video", "o/talk.blur.mp4", "-o", "o/"],
])
def test_two_outputs_naming_one_file_are_a_usage_error_before_any_work(clip, tmp_path, model_env, outputs):
    (tmp_path / "o").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "o")
    result = run_segtool(["video", clip, "--blur", *outputs], model_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "are the same file" in stderr_lines(result)[-1]
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.parametrize("value", ["clip.gif", "out.png", "name", "talk.mp4.txt"])
def test_video_output_is_a_video_file_or_a_folder_and_nothing_else(clip, work, model_env, value):
    result = run_segtool(["video", clip, "--blur", "-o", value], model_env, cwd=work)
    assert result.returncode == 2
    assert "is neither a video file (.avi .m4v .mkv .mov .mp4 .webm) nor a folder (an existing one, or a " \
           "name ending in /)" in stderr_lines(result)[-1]
    assert visible(work) == []


def test_video_output_to_a_missing_virtual_camera_is_one_line(clip, model_env):
    device = "/dev/video99"
    if os.path.exists(device):
        pytest.skip(f"{device} exists here")
    result = run_segtool(["video", clip, "--blur", "-o", device], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"segtool: {device}: no such device; create a virtual camera with "
                                    "v4l2loopback (sudo modprobe v4l2loopback video_nr=99)"]


@pytest.mark.parametrize("value, written", [("name/", "name/talk.blur.mp4"), ("made", "made/talk.blur.mp4"),
                                            ("clip.gif/", "clip.gif/talk.blur.mp4"), ("x.MKV", "x.MKV")])
def test_video_output_forms_that_are_accepted(clip, work, model_env, value, written):
    (work / "made").mkdir()  # an existing folder needs no trailing /
    ok(run_segtool(["video", clip, "--blur", "-o", value], model_env, cwd=work))
    assert (work / written).is_file()


@pytest.mark.parametrize("value, message", [("taken.jpg", "is a file"), ("notes", "is a file"),
                                            ("portrait.blur.jpg", "looks like a file name"),
                                            ("masks.npy", "looks like a file name")])
def test_image_output_must_be_a_folder(pictures, work, model_env, value, message):
    (work / "taken.jpg").write_bytes(b"a user's file")
    (work / "notes").write_text("a user's file without an extension")
    result = run_segtool(["image", pictures["hopper"], "-o", value], model_env, cwd=work)
    assert result.returncode == 2 and message in stderr_lines(result)[-1]
    assert visible(work) == ["notes", "taken.jpg"]


def test_image_output_folder_named_like_a_file_with_a_slash(pictures, work, model_env):
    ok(run_segtool(["image", pictures["hopper"], "-o", "portrait.jpg/"], model_env, cwd=work))
    assert visible(work / "portrait.jpg") == ["hopper.confidence.npy"]


# ---- a walk never takes segtool's outputs: a resume equals an uninterrupted run ---------------------

def make_tree(root: Path, pictures) -> None:
    (root / "photos" / "sub").mkdir(parents=True)
    shutil.copyfile(pictures["hopper"], root / "photos" / "a.jpg")
    shutil.copyfile(pictures["chelsea"], root / "photos" / "b.png")
    shutil.copyfile(pictures["astronaut"], root / "photos" / "sub" / "c.png")


@pytest.mark.parametrize("recursive", [False, True])
@pytest.mark.parametrize("where, folder, out", [
    (".", "photos", "photos/out"),  # the output folder inside the one walked
    (".", "photos", "photos/out.jpg/"),  # ... named like an image
    (".", "photos", "photos"),      # outputs beside their inputs
    (".", "photos", "."),
    ("photos", ".", "."),           # relative spellings of the folder walked
    ("photos", ".", "out"),
])
def test_resume_equals_an_uninterrupted_run_wherever_o_points(pictures, tmp_path, model_env, where, folder, out,
                                                              recursive):
    args = ["image", folder, "--blur", "--category-mask", "--no-confidence-masks", "-o", out, "-q"]
    args += ["-r"] if recursive else []
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    for root in (reference, resumed):
        make_tree(root, pictures)
    ok(run_segtool(args, model_env, cwd=reference / where))
    expected = snapshot(reference)
    assert len([n for n in expected if is_output_name(PurePath(n).name)]) == 2 * (3 if recursive else 2)
    assert not [n for n in expected if ".blur.blur" in n or ".category.category" in n or "out/out" in n]
    ok(run_segtool(args, model_env, cwd=resumed / where))
    written = [n for n in snapshot(resumed) if is_output_name(PurePath(n).name)]
    os.remove(resumed / written[-1])  # as if the run had been stopped before its last file
    ok(run_segtool([*args, "--skip-existing"], model_env, cwd=resumed / where))
    assert snapshot(resumed) == expected


def test_every_output_name_is_known_to_the_walk():
    item = InputItem(Path("in/a.jpg"), PurePath("a.jpg"))
    for fmt in (None, "png", "jpg", "webp"):
        for confidence in ("npy", "exr"):
            outputs = ImageOutputs(out_dir=Path("out"), category_mask=True, category_preview=True,
                                   confidence_format=confidence, composites=tuple(effects.COMPOSITES),
                                   composite_format=fmt)
            plan = planned_outputs(item, outputs)
            assert set(plan) == {"category", "category-color", "confidence", *effects.COMPOSITES}
            assert all(is_output_name(p.name) for p in plan.values()), plan
    frames = VideoOutputs(frames_dir=Path("out"), stem="talk", category_mask=True, category_preview=True,
                          confidence_masks=True)
    assert all(is_output_name(p.name) for p in frame_files("talk", 12, frames.frame_masks).values())
    assert not any(is_output_name(n) for n in ("blur.jpg", "a.jpg", "holiday.2024.jpg", "a.part.png"))


# ---- inputs a user means ----------------------------------------------------------------------

def saveable_formats() -> dict[str, str]:
    """Every extension the walk should take that this Pillow can also write: extension -> format."""
    Image.init()
    registered = Image.registered_extensions()
    return {ext: registered[ext] for ext in sorted(image_extensions()) if registered.get(ext) in Image.SAVE}


def write_sample(path: Path, image: Image.Image, fmt: str) -> bool:
    import warnings

    for mode in ("RGB", "L", "1"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Pillow's IM writer is on its way out
                image.convert(mode).save(path, format=fmt)
            return True
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    return False


def test_the_walk_takes_every_format_the_decoder_reads(pictures, tmp_path, model_env):
    assert (".avif" in image_extensions()) == features.check("avif")
    assert (".jp2" in image_extensions()) == features.check("jpg_2000")
    assert not {".pdf", ".mpg", ".mp4", ".txt", ".npy"} & image_extensions()
    folder = tmp_path / "formats"
    folder.mkdir()
    photo = Image.open(pictures["hopper"]).resize((96, 112))
    names = {ext: f"in-{ext[1:]}{ext}" for ext in saveable_formats()}  # one stem each: no output clashes
    written = [names[ext] for ext, fmt in saveable_formats().items() if write_sample(folder / names[ext], photo, fmt)]
    assert len(written) >= 15 and {"in-webp.webp", "in-tiff.tiff", "in-bmp.bmp"} <= set(written)
    shutil.copyfile(pictures["hopper"], folder / "upper.JPG")
    (folder / "notes.txt").write_text("not an image")
    make_clip(folder / "clip.mp4", frames=2, audio=False)
    result = run_segtool(["image", folder, "--json", "-o", tmp_path / "out"], model_env)
    taken = sorted(Path(line).name for line in _inputs(result))
    assert taken == sorted(written + ["upper.JPG"])
    assert result.returncode == 0, stderr_lines(result)


def _inputs(result) -> list[str]:
    import json

    return [json.loads(line)["input"] for line in result.stdout.decode().splitlines()]


def test_a_folder_without_images_is_named_and_no_input_at_all_exits_1(pictures, tmp_path, model_env):
    empty, outputs_only, nested = tmp_path / "empty", tmp_path / "outputs-only", tmp_path / "nested"
    for folder in (empty, outputs_only, nested / "deeper"):
        folder.mkdir(parents=True)
    (empty / "notes.txt").write_text("not an image")
    shutil.copyfile(pictures["hopper"], outputs_only / "a.blur.jpg")
    shutil.copyfile(pictures["hopper"], nested / "deeper" / "c.jpg")
    result = run_segtool(["image", empty, outputs_only, "-o", tmp_path / "out"], model_env)
    assert result.returncode == 1
    assert stderr_lines(result) == [
        f"segtool: {empty}: no images in this folder (none of the formats segtool reads)",
        f"segtool: {outputs_only}: no images in this folder (none of the formats segtool reads)",
        "segtool: no input found; nothing to segment"]
    result = run_segtool(["image", nested, "-o", tmp_path / "out"], model_env)
    assert result.returncode == 1 and "sub-folders are read with -r" in stderr_lines(result)[0]
    result = run_segtool(["image", empty, pictures["hopper"], "-o", tmp_path / "out"], model_env)
    assert result.returncode == 0 and f"segtool: {empty}: no images in this folder" in stderr_lines(result)[0]
    result = run_segtool(["image", "-", "-o", tmp_path / "out"], model_env, input=b"")
    assert result.returncode == 1 and stderr_lines(result) == ["segtool: no input found: no paths on stdin"]


# ---- the ledger itself ----------------------------------------------------------------------------

def forget_cache():
    from segtool.io import ledger

    ledger._known.clear()  # as a new run would start: only the ledger file counts


def test_the_ledger_takes_threads_writing_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    names = [f"t{i:03d}.confidence.npy" for i in range(240)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: sio.write_npy(tmp_path / n, np.zeros((2, 4, 4), np.float32)), names))
    forget_cache()
    assert all(sio.may_replace(tmp_path / n) for n in names)
    lines = [line for line in (tmp_path / LEDGER_NAME).read_text().splitlines() if line]
    assert len(lines) == len(names)


def test_the_ledger_keeps_odd_names_and_is_compacted(tmp_path, monkeypatch):
    from segtool.io import ledger

    odd = tmp_path / os.fsdecode(b"caf\xe9 \xff.category.png")  # not UTF-8
    mask = np.zeros((4, 4), np.uint8)
    monkeypatch.setattr(ledger, "COMPACT_AFTER_LINES", 10)
    for _ in range(30):  # thirty reruns, a line each
        sio.write_category_png(odd, mask)
        sio.write_category_png(tmp_path / "a.category.png", mask)
    (tmp_path / "gone.category.png").write_bytes(b"x")
    forget_cache()
    assert sio.may_replace(odd) and sio.may_replace(tmp_path / "a.category.png")
    assert not sio.may_replace(tmp_path / "gone.category.png")
    lines = [line for line in (tmp_path / LEDGER_NAME).read_bytes().splitlines() if line]
    assert len(lines) <= 11  # compacted as it grew: 60 writes, never more than the threshold + 1
    forget_cache()
    assert sio.may_replace(odd)
    sio.write_category_png(odd, mask)
