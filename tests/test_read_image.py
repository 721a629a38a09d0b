"""read_image on awkward and bad files: upright RGB uint8, or one InputError line naming the file."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

import badinput_corpus as corpus
from segtool.errors import InputError, UsageError
from segtool.io import expand_inputs, read_image, to_rgb8


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def one_line_error(path, **options) -> str:
    with pytest.raises(InputError) as caught:
        read_image(path, **options)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


# ---- bad files: one line each ----------------------------------------------------------------

@pytest.mark.parametrize("name", list(corpus.bad_inputs()))
def test_every_bad_input_is_one_input_error_naming_the_file(tmp_path, name):
    content = corpus.bad_inputs()[name]
    corpus.write_tree(tmp_path, {name: content})
    one_line_error(tmp_path / name)


@pytest.mark.parametrize("name, expected", [
    ("empty.jpg", "empty file"),
    ("truncated.jpg", "truncated"),
    ("truncated progressive.jpg", "truncated"),
    ("truncated png.png", "truncated"),
    ("random.png", "not an image"),
    ("notes.jpg", "not an image"),
    ("folder.jpg", "is a directory"),
    ("bomb.png", "over the limit"),
])
def test_the_line_says_why(tmp_path, name, expected):
    corpus.write_tree(tmp_path, {name: corpus.bad_inputs()[name]})
    assert expected in one_line_error(tmp_path / name)


def test_truncated_jpeg_is_an_error_not_a_grey_bottom(tmp_path):
    # libjpeg can fill a short file with grey; Pillow must be left refusing that.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    whole = corpus.jpeg(corpus.astronaut())
    for cut in (len(whole) - 2, len(whole) - 200, len(whole) // 3, 700):
        one_line_error(write(tmp_path, f"cut{cut}.jpg", whole[:cut]))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_and_broken_link(tmp_path):
    assert "no such file" in one_line_error(tmp_path / "gone.jpg")
    link = tmp_path / "link.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    assert "broken symbolic link" in one_line_error(link)


def test_fifo_is_refused_instead_of_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert "not a regular file" in one_line_error(fifo)


# ---- decompression bombs -------------------------------------------------------------------

def test_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    # 120M pixels: over our limit, under the 179M at which Pillow refuses by itself.
    path = write(tmp_path, "bomb.png", corpus.bomb_png(12_000, 10_000))
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    message = one_line_error(path, max_pixels=50_000_000)
    assert "12000x10000" in message and "--max-pixels" in message
    assert decoded == []


def test_pillows_own_bomb_error_is_one_line_too(tmp_path, recwarn):
    # Above twice Image.MAX_IMAGE_PIXELS Pillow refuses at open, before our check can run.
    path = write(tmp_path, "huge.png", corpus.bomb_png(100_000, 100_000))
    message = one_line_error(path, max_pixels=None)
    assert "decompression-bomb ceiling" in message
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pillows_bomb_warning_is_not_printed(tmp_path, recwarn):
    # Between MAX_IMAGE_PIXELS and twice that, Pillow only warns: segtool's limit decides.
    pixels = Image.MAX_IMAGE_PIXELS + 1000
    path = write(tmp_path, "big.png", corpus.bomb_png(pixels // 1000 + 1, 1000))
    one_line_error(path, max_pixels=pixels // 2)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_max_pixels_admits_what_it_allows(tmp_path):
    path = write(tmp_path, "small.png", corpus.png(corpus.chelsea()))
    assert read_image(path, max_pixels=300 * 451).shape == (300, 451, 3)
    assert "over the limit" in one_line_error(path, max_pixels=300 * 451 - 1)


# ---- awkward but valid: what a viewer shows ----------------------------------------------------

def check_rgb8(image, shape):
    assert image.dtype == np.uint8 and image.shape == (*shape, 3)
    assert image.flags.c_contiguous and image.flags.writeable


def test_cmyk_jpeg_reads_as_its_rgb(tmp_path):
    original = corpus.coffee()
    image = read_image(write(tmp_path, "cmyk.jpg", corpus.cmyk_jpeg(original)))
    check_rgb8(image, original.shape[:2])
    assert np.abs(image.astype(int) - original).mean() < 4


@pytest.mark.parametrize("color_type", [0, 2])
def test_sixteen_bit_png_keeps_the_high_byte(tmp_path, color_type):
    photo = corpus.astronaut() if color_type == 2 else corpus.astronaut()[..., 1]
    path = write(tmp_path, "deep.png", corpus.raw_png(corpus.sixteen_bit(photo), bit_depth=16,
                                                      color_type=color_type))
    image = read_image(path)
    check_rgb8(image, photo.shape[:2])
    expected = photo if color_type == 2 else np.repeat(photo[..., None], 3, axis=2)
    assert np.array_equal(image, expected)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.asarray(Image.fromarray(corpus.chelsea()).convert("L"))
    image = read_image(write(tmp_path, "gray.png", corpus.png(gray)))
    assert np.array_equal(image, np.repeat(gray[..., None], 3, axis=2))


def test_palette_transparency_is_laid_over_white(tmp_path):
    content, shown = corpus.palette_png_with_transparency(corpus.chelsea())
    image = read_image(write(tmp_path, "palette.png", content))
    assert np.array_equal(image, shown)
    assert (image[:10, :10] == 255).all()


def test_rgba_is_laid_over_white(tmp_path):
    rgba = np.dstack([corpus.chelsea(), np.full(corpus.chelsea().shape[:2], 0, np.uint8)])
    rgba[100:, :, 3] = 255
    image = read_image(write(tmp_path, "alpha.png", corpus.png(rgba)))
    assert (image[:100] == 255).all() and np.array_equal(image[100:], corpus.chelsea()[100:])


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = corpus.flat_frames()
    image = read_image(write(tmp_path, "animated.gif", corpus.animated_gif(frames)))
    assert np.array_equal(image, frames[0])


@pytest.mark.parametrize("orientation", corpus.ORIENTATIONS)
def test_exif_orientation_gives_the_upright_picture(tmp_path, orientation):
    upright = corpus.half_person()
    path = write(tmp_path, f"o{orientation}.png", corpus.oriented(upright, orientation))
    image = read_image(path)
    assert np.array_equal(image, upright)
    # ...and agrees with Pillow's own reading of the tag.
    assert np.array_equal(image, np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")))


@pytest.mark.parametrize("orientation", corpus.ORIENTATIONS)
def test_exif_orientation_in_jpeg(tmp_path, orientation):
    upright = corpus.half_person()
    image = read_image(write(tmp_path, f"o{orientation}.jpg", corpus.oriented(upright, orientation, "JPEG")))
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 4


def test_damaged_exif_block_reads_unrotated_and_quietly(tmp_path, recwarn):
    content = corpus.encode(corpus.chelsea(), "JPEG", exif=b"Exif\0\0II*\0\xff\xff\xff\x7f")
    assert read_image(write(tmp_path, "odd-exif.jpg", content)).shape == (300, 451, 3)
    assert not recwarn.list


def test_names_with_spaces_and_non_ascii(tmp_path):
    for name in ("with space.png", "café ☕ 写真.png", "tab\tand 'quote'.png"):
        assert read_image(write(tmp_path, name, corpus.png(corpus.chelsea()))).shape == (300, 451, 3)


def test_name_that_is_not_utf8(tmp_path):
    name = os.fsdecode(b"latin1-caf\xe9.png")
    path = write(tmp_path, name, corpus.png(corpus.chelsea()))
    assert read_image(path).shape == (300, 451, 3)
    paths = list(expand_inputs(["-"], stdin=io.BytesIO(os.fsencode(path) + b"\n")))
    assert [p.path for p in paths] == [path]


# ---- which files a folder yields ---------------------------------------------------------------

def test_folder_reports_a_directory_named_like_an_image(tmp_path):
    corpus.write_tree(tmp_path, {"a.png": corpus.png(corpus.chelsea()), "b.jpg": None, "c.txt": b"x"})
    (tmp_path / "b.jpg" / "inner.png").write_bytes(corpus.png(corpus.chelsea()))
    assert [i.name.as_posix() for i in expand_inputs([str(tmp_path)])] == ["a.png", "b.jpg"]
    recursive = [i.name.as_posix() for i in expand_inputs([str(tmp_path)], recursive=True)]
    assert recursive == ["a.png", "b.jpg/inner.png"]


# ---- to_rgb8 on arrays callers hand the segmenter -------------------------------------------

def test_to_rgb8_rejects_what_is_not_an_image():
    for bad in (np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4, 3), np.uint8), np.zeros(4, np.uint8),
                np.zeros((2, 2, 3), complex), np.array([["a"]])):
        with pytest.raises(UsageError):
            to_rgb8(bad)
    with pytest.raises(ValueError):  # UsageError is a ValueError, as MediaPipe raises
        to_rgb8(np.zeros((2, 2, 2, 2), np.uint8))
