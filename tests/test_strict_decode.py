"""Truncated or lying data is an error, whatever its header says.

libjpeg only warns when a JPEG's data ends early and fills the rest with grey; a 2 KB JPEG whose
header says 9000x9000 used to become a 648 MB .npy. read_image decodes JPEGs strictly and checks
their markers first; every other format's cut or lying files are refused too.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageFile, features

import badinput_corpus as corpus
from segtool.errors import InputError
from segtool.io import jpeg, read_image
from segtool_process import partial_files, run_segtool, stderr_lines, visible


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def truncated_error(path) -> str:
    with pytest.raises(InputError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: truncated image (") and "\n" not in message
    return message


def pillow_pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


# ---- every truncated or lying variant, in every format --------------------------------------------

@pytest.mark.parametrize("name", list(corpus.truncated_variants()))
def test_truncated_or_lying_files_are_truncated_errors(tmp_path, name):
    truncated_error(write(tmp_path, name, corpus.truncated_variants()[name]))


def test_a_cut_avif_is_truncated(tmp_path):
    # not in the corpus: a folder walk does not take .avif yet, so the CLI corpus test would miss it
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    whole = corpus.encode(corpus.astronaut(), "AVIF")
    assert "file ends before" in truncated_error(write(tmp_path, "cut.avif", whole[:-500]))


@pytest.mark.parametrize("fraction", [0.05, 0.2, 1 / 3, 0.5, 0.8, 0.99])
@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0}, {"optimize": True},
                                     {"restart_marker_rows": 1}])
def test_a_jpeg_cut_anywhere_with_an_end_marker_is_truncated(tmp_path, fraction, options):
    whole = corpus.jpeg(corpus.chelsea(), **options)
    cut = corpus.cut_with_end(whole, fraction)
    # what Pillow alone does with it: a whole-looking picture, grey where the data ran out
    assert pillow_pixels(cut).shape == corpus.chelsea().shape
    truncated_error(write(tmp_path, "cut.jpg", cut))


def test_a_progressive_jpeg_cut_between_any_two_scans_is_truncated(tmp_path):
    whole = corpus.jpeg(corpus.coffee(), progressive=True)
    scans = whole.count(b"\xff\xda")
    assert scans > 3
    for kept in range(1, scans):
        message = truncated_error(write(tmp_path, f"scans{kept}.jpg", corpus.progressive_scans_only(whole, kept)))
        assert "scans stop" in message
    assert read_image(write(tmp_path, "whole.jpg", whole)).shape == corpus.coffee().shape


@pytest.mark.parametrize("size", [(9000, 9000), (20000, 300), (2000, 1500)])
def test_a_jpeg_header_promising_more_than_its_data_holds_is_refused_before_decoding(tmp_path, monkeypatch, size):
    path = write(tmp_path, "lying.jpg", corpus.lying_jpeg(*size))
    decoded = []
    monkeypatch.setattr(simplejpeg, "decode_jpeg", lambda *a, **k: decoded.append(a))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    message = truncated_error(path)
    assert f"{size[0]}x{size[1]}" in message and "bytes of pixel data" in message
    assert decoded == []


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"optimize": True, "subsampling": 0},
                                     {"progressive": True, "optimize": True}])
def test_the_least_data_a_real_jpeg_can_have_still_passes(tmp_path, options):
    # A flat picture is the most a JPEG compresses: the size check must never refuse one.
    for picture in (np.full((1500, 2000, 3), 90, np.uint8), np.zeros((1501, 2003), np.uint8)):
        content = corpus.jpeg(picture, **options)
        assert jpeg.structure_problem(content) is None
        image = read_image(write(tmp_path, "flat.jpg", content))
        assert image.shape == (*picture.shape[:2], 3)


# ---- what strictness must not break ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(corpus.harmless_jpeg_oddities()))
def test_harmless_oddities_decode_as_pillow_decodes_them(tmp_path, name):
    content = corpus.harmless_jpeg_oddities()[name]
    assert np.array_equal(read_image(write(tmp_path, name, content)), pillow_pixels(content))


@pytest.mark.parametrize("name, content", [
    ("baseline", lambda: corpus.jpeg(corpus.astronaut())),
    ("progressive", lambda: corpus.jpeg(corpus.chelsea(), progressive=True)),
    ("4:4:4", lambda: corpus.jpeg(corpus.coffee(), subsampling=0)),
    ("4:2:2", lambda: corpus.jpeg(corpus.coffee(), subsampling=1)),
    ("gray", lambda: corpus.jpeg(np.asarray(Image.fromarray(corpus.astronaut()).convert("L")))),
    ("cmyk", lambda: corpus.cmyk_jpeg(corpus.coffee())),
    ("camera", corpus.grace_hopper_jpeg),
])
def test_strict_decoding_gives_pillows_pixels_exactly(tmp_path, name, content):
    # Masks match MediaPipe's because the decoded pixels are the same as before, bit for bit.
    data = content()
    assert np.array_equal(read_image(write(tmp_path, f"{name}.jpg", data)), pillow_pixels(data))


def test_a_jpeg_with_a_damaged_entropy_stream_says_so(tmp_path):
    whole = bytearray(corpus.jpeg(corpus.astronaut()))
    middle = len(whole) // 2
    whole[middle:middle + 40] = b"\xff\xd3" * 20  # restart markers where none belong
    with pytest.raises(InputError) as caught:
        read_image(write(tmp_path, "damaged.jpg", bytes(whole)))
    assert "truncated" in str(caught.value) or "damaged" in str(caught.value)


# ---- through the command ------------------------------------------------------------------------

def test_the_issues_two_files_fail_and_write_nothing(tmp_path, model_env):
    folder = tmp_path / "in"
    corpus.write_tree(folder, {
        "third.jpg": corpus.cut_with_end(corpus.jpeg(corpus.astronaut()), 1 / 3),
        "lying.jpg": corpus.lying_jpeg(9000, 9000),
        "fine.jpg": corpus.jpeg(corpus.astronaut()),
    })
    out = tmp_path / "out"
    result = run_segtool(["image", folder, "--category-mask", "-o", out], model_env)
    lines = stderr_lines(result)
    assert result.returncode == 1, lines
    for name in ("third.jpg", "lying.jpg"):
        assert [line for line in lines if line.startswith(f"segtool: {folder / name}: truncated image")]
    assert visible(out) == ["fine.category.png", "fine.confidence.npy"]
    assert partial_files(out) == []
