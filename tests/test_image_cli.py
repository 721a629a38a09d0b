"""`segtool image` as the README shows it: real images in, the output contract on disk."""
from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from segtool import ImageSegmenter, ImageSegmenterOptions
from segtool.io import read_exr
from segtool_process import visible

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")


def segtool(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "segtool", *map(str, args)], input=stdin,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """astronaut (square), grace_hopper (portrait, JPEG) and chelsea (a cat), as files."""
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("photos")
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "chelsea.png", skdata.chelsea())
    (folder / "grace hopper.jpg").write_bytes(
        open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb").read())
    return folder


def category_png(path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L", "category masks are plain 8-bit PNGs whose values are the indices"
    return np.asarray(image)


def test_default_writes_confidence_npy_matching_the_api(photos, tmp_path):
    segtool("image", photos / "astronaut.png", "-o", tmp_path)
    assert visible(tmp_path) == ["astronaut.confidence.npy"]
    masks = np.load(tmp_path / "astronaut.confidence.npy")
    assert masks.dtype == np.float32 and masks.shape == (2, 512, 512)
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-6)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model="selfie")) as segmenter:
        expected = segmenter.segment(iio.imread(photos / "astronaut.png")).confidence_masks
    np.testing.assert_array_equal(masks, expected)


def test_category_png_and_exr_for_a_portrait_photo(photos, tmp_path):
    segtool("image", photos / "grace hopper.jpg", "--category-mask", "--confidence-format", "exr", "-o", tmp_path)
    category = category_png(tmp_path / "grace hopper.category.png")
    assert category.shape == (600, 512) and set(np.unique(category)) == {0, 1}
    assert 0.3 < (category == 1).mean() < 0.9  # she fills much of the frame
    channels = read_exr(tmp_path / "grace hopper.confidence.exr")
    assert sorted(channels) == ["background", "person"]
    person = channels["person"]
    assert person.dtype == np.float32 and person.shape == (600, 512)
    # MediaPipe decides categories on its own (corner-aligned) grid, so edges may differ by a pixel.
    assert ((category == 1) == (person > 0.5)).mean() > 0.99


def test_deeplab_names_the_cat(photos, tmp_path):
    done = segtool("image", photos / "chelsea.png", "--model", "deeplab", "--category-mask", "--json", "-o", tmp_path)
    category = category_png(tmp_path / "chelsea.category.png")
    assert category.shape == (300, 451) and category.max() < 21
    assert np.bincount(category.ravel()).argmax() == 8  # PASCAL VOC's cat
    assert '"cat"' in done.stdout
    assert np.load(tmp_path / "chelsea.confidence.npy").shape == (21, 300, 451)


def test_folders_recurse_and_keep_their_layout(photos, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.png").write_bytes((photos / "astronaut.png").read_bytes())
    (tree / "sub" / "b.png").write_bytes((photos / "chelsea.png").read_bytes())
    (tree / "notes.txt").write_text("not an image, skipped by the folder scan")
    segtool("image", tree, "-r", "--category-mask", "--no-confidence-masks", "-o", tmp_path / "out")
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.category.png", "sub/b.category.png"]


def test_paths_on_stdin(photos, tmp_path):
    listing = f"{photos / 'astronaut.png'}\n{photos / 'grace hopper.jpg'}\n"
    segtool("image", "-", "--category-mask", "--no-confidence-masks", "-o", tmp_path, stdin=listing)
    assert visible(tmp_path) == ["astronaut.category.png", "grace hopper.category.png"]
