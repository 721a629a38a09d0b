"""`segtool image` composites, run as a user runs them, on real package-shipped photographs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"

skimage_data = pytest.importorskip("skimage.data")
cbook = pytest.importorskip("matplotlib.cbook")

from segtool import effects  # noqa: E402  (after the skips: cv2 is not needed to skip)
from segtool.io import read_image  # noqa: E402
from segtool_process import visible  # noqa: E402

EXACT = 1.0 - 1.0 / 512
NONE = 1.0 / 512
GREEN = (0, 177, 64)  # what "chroma-green" names


def segtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from segtool.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def imread(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    import imageio.v3 as iio

    folder = tmp_path_factory.mktemp("inputs")
    # PNG, so that the pixels the CLI reads are the ones the tests compare against.
    iio.imwrite(folder / "astronaut.png", skimage_data.astronaut())
    iio.imwrite(folder / "grace_hopper.png", iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    iio.imwrite(folder / "chelsea.png", skimage_data.chelsea())
    iio.imwrite(folder / "coffee.jpg", skimage_data.coffee(), quality=95)
    return folder


@pytest.fixture(scope="module")
def refined(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refined")
    done = segtool("image", "astronaut.png", "grace_hopper.png", "--blur", "--replace-bg", "chroma-green",
                   "--cutout", "--alpha-mask", "--category-mask", "-o", str(out), cwd=inputs)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def unrefined(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unrefined")
    done = segtool("image", "astronaut.png", "grace_hopper.png", "--cutout", "--replace-bg", "#00b140",
                   "--alpha-mask", "--no-refine", "-o", str(out), cwd=inputs)
    assert done.returncode == 0, done.stderr
    return out


def subject_and_alpha(inputs: Path, out: Path, stem: str, refine: bool):
    image = read_image(inputs / f"{stem}.png")
    confidence = np.load(out / f"{stem}.confidence.npy")
    alpha = effects.subject_alpha(confidence)
    return image, (effects.refine_alpha(alpha, image) if refine else alpha)


def test_composites_are_named_by_the_contract(refined):
    for stem in ("astronaut", "grace_hopper"):
        for name in ("blur.png", "replace.png", "cutout.png", "alpha.png", "category.png", "confidence.npy"):
            assert (refined / f"{stem}.{name}").is_file(), name


@pytest.mark.parametrize("fmt, expected", [
    (None, {"blur": ".jpg", "cutout": ".png"}),
    ("webp", {"blur": ".webp", "cutout": ".webp"}),
    ("jpg", {"blur": ".jpg", "cutout": ".png"}),  # JPEG has no alpha: the cut-out stays PNG
])
def test_composite_format(inputs, tmp_path, fmt, expected):
    extra = ["--composite-format", fmt] if fmt else []
    done = segtool("image", "coffee.jpg", "--blur", "--cutout", "--no-confidence-masks", "-o", str(tmp_path),
                   *extra, cwd=inputs)
    assert done.returncode == 0, done.stderr
    assert visible(tmp_path) == sorted(f"coffee.{n}{e}" for n, e in expected.items())
    cutout = imread(tmp_path / f"coffee.cutout{expected['cutout']}")
    assert cutout.shape[2] == 4


@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_mask_files_are_not_refined(inputs, refined, stem):
    from segtool.options import ImageSegmenterOptions
    from segtool.segmenter import ImageSegmenter

    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model="selfie")) as segmenter:
        expected = segmenter.segment(read_image(inputs / f"{stem}.png")).confidence_masks
    np.testing.assert_array_equal(np.load(refined / f"{stem}.confidence.npy"), expected)


@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_cutout_alpha_is_the_subject_confidence(inputs, refined, unrefined, stem, refine):
    out = refined if refine else unrefined
    image, alpha = subject_and_alpha(inputs, out, stem, refine)
    cutout = imread(out / f"{stem}.cutout.png")
    assert np.abs(cutout[:, :, 3] / 255.0 - alpha).max() <= 0.5 / 255 + 1e-6
    # The photo's colours where the cut-out is opaque or clear; at the edge, refined, the subject's
    # estimated own colour; unrefined, the photo's everywhere.
    sure = (alpha == 0) | (alpha == 1) if refine else np.ones(alpha.shape, bool)
    np.testing.assert_array_equal(cutout[:, :, :3][sure], image[sure])


@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_alpha_mask_is_the_cutouts_alpha_as_a_grey_png(refined, unrefined, stem, refine):
    from PIL import Image

    out = refined if refine else unrefined
    with Image.open(out / f"{stem}.alpha.png") as mask:
        assert mask.mode == "L" and mask.format == "PNG"  # 8-bit, one channel: what compositors load
        pixels = np.asarray(mask)
    np.testing.assert_array_equal(pixels, imread(out / f"{stem}.cutout.png")[:, :, 3])
    assert pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_the_replaced_background_is_the_alpha_masks_blend(inputs, refined, unrefined, stem):
    """Where the alpha mask is 0 the backdrop shows, where it is 255 the photo: for both modes."""
    for out in (refined, unrefined):
        image = read_image(inputs / f"{stem}.png")
        mask = imread(out / f"{stem}.alpha.png")
        picture = imread(out / f"{stem}.replace.png")
        np.testing.assert_array_equal(picture[mask == 255], image[mask == 255])
        assert (picture[mask == 0] == GREEN).all()


def test_refined_alpha_is_sharper_than_the_models(refined, unrefined):
    """The refined mask has a narrower uncertain band than the model's upsampled ramp."""
    for stem in ("astronaut", "grace_hopper"):
        partial = [((imread(out / f"{stem}.alpha.png") % 255) != 0).sum() for out in (refined, unrefined)]
        assert partial[0] < 0.7 * partial[1]


@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_replace_keeps_the_subject_and_fills_the_background(inputs, refined, unrefined, stem, refine):
    out = refined if refine else unrefined
    image, alpha = subject_and_alpha(inputs, out, stem, refine)
    picture = imread(out / f"{stem}.replace.png")
    subject, background = alpha > EXACT, alpha < NONE
    assert subject.mean() > 0.15 and background.mean() > 0.15
    np.testing.assert_array_equal(picture[subject], image[subject])
    assert (picture[background] == GREEN).all()


@pytest.mark.parametrize("stem", ["astronaut", "grace_hopper"])
def test_blur_keeps_the_subject_and_blurs_the_background(inputs, refined, stem):
    image, alpha = subject_and_alpha(inputs, refined, stem, True)
    picture = imread(refined / f"{stem}.blur.png")
    np.testing.assert_array_equal(picture[alpha > EXACT], image[alpha > EXACT])
    change = np.abs(picture.astype(int) - image.astype(int)).sum(axis=2)[alpha < NONE]
    assert (change > 0).mean() > 0.5 and change.mean() > 5


def test_classes_choose_the_subject_for_deeplab(inputs, tmp_path):
    done = segtool("image", "chelsea.png", "--model", "deeplab", "--classes", "cat", "--cutout", "--no-refine",
                   "-o", str(tmp_path), cwd=inputs)
    assert done.returncode == 0, done.stderr
    confidence = np.load(tmp_path / "chelsea.confidence.npy")
    alpha = imread(tmp_path / "chelsea.cutout.png")[:, :, 3] / 255.0
    assert np.abs(alpha - confidence[8]).max() <= 0.5 / 255 + 1e-6  # 8: cat
    assert alpha.mean() > 0.2


@pytest.mark.parametrize("args, words", [
    (["--recolor-hair", "auburn"], "no hair category"),
    (["--replace-bg", "no-such-picture.jpg"], "neither an existing image file nor a colour"),
    (["--recolor-hair", "#12"], "is not a colour"),
    (["--blur", "--model", "deeplab", "--classes", "unicorn"], "'unicorn' is not a category"),
])
def test_bad_composite_requests_are_usage_errors(inputs, tmp_path, args, words):
    done = segtool("image", "coffee.jpg", *args, "-o", str(tmp_path), cwd=inputs)
    assert done.returncode == 2
    assert words in done.stderr
    assert not any(tmp_path.iterdir())


def _hair_model_installed() -> bool:
    from segtool import registry
    from segtool.errors import SegtoolError

    try:
        registry.locate("hair")
    except SegtoolError:
        return False
    return True


def test_recolor_hair_keeps_lightness_and_changes_hue(inputs, tmp_path):
    import cv2

    if not _hair_model_installed():  # checked at run time: conftest installs it for the session
        pytest.skip("hair model not installed: segtool models install hair")

    done = segtool("image", "astronaut.png", "--model", "hair", "--recolor-hair", "#2050e0", "-o", str(tmp_path),
                   cwd=inputs)
    assert done.returncode == 0, done.stderr
    image = read_image(inputs / "astronaut.png")
    hair = effects.refine_alpha(np.load(tmp_path / "astronaut.confidence.npy")[1], image) > 0.9
    assert hair.mean() > 0.02
    lab_before = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[hair]
    lab_after = cv2.cvtColor(imread(tmp_path / "astronaut.recolor.png").astype(np.float32) / 255,
                             cv2.COLOR_RGB2LAB)[hair]
    assert np.abs(lab_after[:, 0] - lab_before[:, 0]).mean() < 2.0
    assert lab_before[:, 2].mean() > 5 and lab_after[:, 2].mean() < -15  # yellow-brown became blue
