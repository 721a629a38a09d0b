"""The fast encoders (segtool/io/encoders.py): the pixels every reader gets back, Pillow's JPEG bytes."""
import io

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from segtool.io.encoders import jpeg_bytes, png_bytes


def _masks():
    rng = np.random.default_rng(5)
    flat = np.zeros((1080, 1920), np.uint8)
    flat[200:900, 600:1300] = 1  # a category mask: two values in long runs
    deeplab = np.zeros((375, 501), np.uint8)
    deeplab[:, 100:] = 15
    deeplab[50:60, 300:305] = 9
    yield "category", flat
    yield "odd-size, 21 classes", deeplab
    yield "one pixel", np.full((1, 1), 7, np.uint8)
    yield "one row", rng.integers(0, 256, (1, 999), dtype=np.uint8)
    yield "noise (no runs)", rng.integers(0, 256, (123, 77), dtype=np.uint8)
    yield "all 255", np.full((64, 3), 255, np.uint8)
    yield "rgb preview", np.stack([flat * 192, flat * 128, flat], axis=2)[::3, ::2]
    yield "rgb noise", rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    yield "rgba", rng.integers(0, 256, (17, 23, 4), dtype=np.uint8)
    yield "a view", flat[::-2, 5:705]


@pytest.mark.parametrize("name,pixels", list(_masks()), ids=[n for n, _ in _masks()])
def test_png_gives_every_reader_the_same_pixels(name, pixels, tmp_path):
    data = png_bytes(pixels)
    path = tmp_path / "m.png"
    path.write_bytes(data)
    with Image.open(path) as pillow:
        pillow.load()
        assert pillow.mode == {1: "L", 3: "RGB", 4: "RGBA"}[1 if pixels.ndim == 2 else pixels.shape[2]]
        assert np.array_equal(np.asarray(pillow), pixels)
    assert np.array_equal(iio.imread(path), pixels)
    opencv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels.ndim == 3:
        opencv = cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(opencv, pixels)


def test_png_of_a_category_mask_is_small():
    mask = np.zeros((1080, 1920), np.uint8)
    mask[200:900, 600:1300] = 1
    assert len(png_bytes(mask)) < 8000  # runs: ~2000 times smaller than the pixels


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((0, 4), np.uint8), np.zeros((2, 2, 2, 2), np.uint8)])
def test_png_refuses_what_it_cannot_write(bad):
    with pytest.raises(ValueError):
        png_bytes(bad)


def _profile_and_exif():
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Apple", "iPhone", 1
    return bytes(range(256)) * 3, b"Exif\x00\x00" + exif.tobytes()


@pytest.mark.parametrize("quality", [50, 95])
@pytest.mark.parametrize("shape", [(1080, 1920, 3), (37, 51, 3), (37, 51)])
@pytest.mark.parametrize("meta", ["plain", "exif", "icc", "both", "long icc"])
def test_jpeg_is_byte_for_byte_what_pillow_writes(quality, shape, meta):
    rng = np.random.default_rng(sum(shape))
    pixels = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 3)
    icc, exif = _profile_and_exif()
    options = {"plain": {}, "exif": {"exif": exif}, "icc": {"icc_profile": icc},
               "both": {"exif": exif, "icc_profile": icc}, "long icc": {"icc_profile": bytes(150_000)}}[meta]
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=quality, **options)
    assert jpeg_bytes(pixels, quality, **options) == stream.getvalue()
    with Image.open(io.BytesIO(jpeg_bytes(pixels, quality, **options))) as back:
        assert back.info.get("icc_profile") == options.get("icc_profile")
        assert back.info.get("exif") == options.get("exif")


@pytest.mark.parametrize("view", ["flipped rows", "every other column", "BGR view", "one channel", "strided grey"])
def test_jpeg_of_a_view_is_pillows_too(view):
    pixels = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8), (0, 0), 2)
    picked = {"flipped rows": pixels[::-1], "every other column": pixels[:, ::2], "BGR view": pixels[..., ::-1],
              "one channel": pixels[:, :, 0], "strided grey": pixels[::2, :, 1]}[view]
    stream = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picked)).save(stream, format="JPEG", quality=95)
    assert jpeg_bytes(picked, 95) == stream.getvalue()
