"""PNGs carrying more text than Pillow parses (XMP of an edited photo, an image generator's
workflow JSON) are read like any PNG; zlib bombs in their text, and pictures too large for
--max-pixels, are still refused.

Text of 1.5-20 MB in each chunk type (tEXt, zTXt, compressed and plain iTXt), before and after
the picture data, many chunks adding up past Pillow's 64 MB; then bombs in zTXt and iTXt, a file
whose text adds up to a bomb, and a picture whose header claims 30000 x 30000 pixels.
"""
from __future__ import annotations

import io
import json
import random
import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from segtool.io import read_image, read_image_and_facts, read_image_as_stored
from segtool.io.png_text import TEXT_EXPANSION_LIMIT, TEXT_TOTAL_LIMIT
from segtool_process import run_segtool, stderr_lines

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
PICTURE = skdata.astronaut()[::4, ::4]  # 128 x 128
MB = 1024 * 1024


def workflow_json(size: int, seed: int = 0) -> str:
    """Text like a generator's workflow: JSON nodes with numbers and prompts, ``size`` characters,
    compressing about 3:1 as such JSON does (a 256 KB block, longer than deflate's window, repeated)."""
    rng = random.Random(seed)
    words = ["portrait", "studio", "light", "soft", "KSampler", "seed", "cfg", "steps", "denoise", "euler"]
    nodes, length = [], 0
    while length < 256 * 1024:
        node = {"id": len(nodes), "type": rng.choice(words), "widgets_values": [rng.random(), rng.randrange(10**9)],
                "prompt": " ".join(rng.choice(words) for _ in range(12))}
        nodes.append(json.dumps(node))
        length += len(nodes[-1]) + 1
    block = ",".join(nodes)
    return ('{"nodes": [' + block * (size // len(block) + 1))[:size - 2] + "]}"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def chunks_of(data: bytes) -> list[bytes]:
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        out.append(data[at:at + 12 + length])
        at += 12 + length
    return out


def png_with(texts: list[bytes], *, after_picture: bool = False, icc: bytes = None) -> bytes:
    """PICTURE as a PNG with the given text chunks before its IDAT (or after it)."""
    buffer = io.BytesIO()
    Image.fromarray(PICTURE).save(buffer, format="PNG", **({"icc_profile": icc} if icc else {}))
    parts = chunks_of(buffer.getvalue())
    at = len(parts) - 1 if after_picture else next(i for i, c in enumerate(parts) if c[4:8] == b"IDAT")
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts[:at] + texts + parts[at:])


def text_chunk(kind: str, key: str, text: str) -> bytes:
    if kind == "tEXt":
        return chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
    if kind == "zTXt":
        return chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(text.encode("latin-1")))
    compressed = kind == "iTXt-z"
    body = text.encode("utf-8")
    return chunk(b"iTXt", key.encode("latin-1") + b"\0" + bytes([int(compressed), 0]) + b"en\0" + key.encode()
                 + b"\0" + (zlib.compress(body) if compressed else body))


def zeros_compressed(size: int) -> bytes:
    """``size`` zero bytes, deflated (a zlib bomb: about 1000 to 1), made without holding them."""
    deflater, block, parts = zlib.compressobj(9), bytes(MB), []
    for _ in range(size // MB):
        parts.append(deflater.compress(block))
    return b"".join(parts) + deflater.flush()


def bomb_chunk(kind: str, size: int) -> bytes:
    if kind == "zTXt":
        return chunk(b"zTXt", b"Comment\0\0" + zeros_compressed(size))
    return chunk(b"iTXt", b"Comment\0\x01\x00en\0Comment\0" + zeros_compressed(size))


# ---- big text is read: the same picture as without it ------------------------------------------------

CASES = {
    **{f"{kind}-{size}mb": ([(kind, size)], False)
       for kind in ("zTXt", "iTXt-z") for size in (1.5, 5, 20)},
    "tEXt-20mb-and-iTXt-20mb": ([("tEXt", 20), ("iTXt", 20)], False),
    "zTXt-3mb-after-the-picture": ([("zTXt", 3)], True),
    "four-zTXt-adding-up-to-72mb": ([("zTXt", 18)] * 4, False),
}


def make_case(folder: Path, name: str) -> Path:
    texts, after = CASES[name]
    chunks = [text_chunk(kind, f"workflow{i}", workflow_json(int(size * MB), seed=i))
              for i, (kind, size) in enumerate(texts)]
    path = folder / f"{name}.png"
    path.write_bytes(png_with(chunks, after_picture=after))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_png_with_big_text_reads_as_its_picture(tmp_path, name):
    path = make_case(tmp_path, name)
    np.testing.assert_array_equal(read_image(path), PICTURE)


@pytest.mark.parametrize("name", ["zTXt-1.5mb", "iTXt-z-5mb", "tEXt-20mb-and-iTXt-20mb", "zTXt-3mb-after-the-picture"])
def test_mediapipes_image_create_from_file_reads_them_too(tmp_path, name):
    """MediaPipe's API (mp.Image.create_from_file, pixels as stored) is the same reader's other door."""
    from segtool.mediapipe import Image as MediaPipeImage

    path = make_case(tmp_path, name)
    np.testing.assert_array_equal(read_image_as_stored(path), PICTURE)
    np.testing.assert_array_equal(MediaPipeImage.create_from_file(str(path)).numpy_view(), PICTURE)


def test_as_stored_refuses_a_bomb_in_the_text_with_one_line(tmp_path):
    from segtool.errors import InputError

    path = tmp_path / "bomb.png"
    path.write_bytes(png_with([bomb_chunk("zTXt", TEXT_EXPANSION_LIMIT + 16 * MB)]))
    with pytest.raises(InputError, match="decompression bomb, refused") as refused:
        read_image_as_stored(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


def test_pillow_alone_refuses_them_so_the_cases_test_something(tmp_path):
    with pytest.raises(ValueError, match="MAX_TEXT"):
        Image.open(make_case(tmp_path, "zTXt-1.5mb")).load()


def test_the_picture_keeps_its_colour_profile_and_the_composite_leaves_the_text_out(tmp_path, model_env):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    big = text_chunk("iTXt-z", "XML:com.adobe.xmp", "<x:xmpmeta>" + workflow_json(3 * MB) + "</x:xmpmeta>")
    source = tmp_path / "edited.png"
    source.write_bytes(png_with([big], icc=profile))
    pixels, facts = read_image_and_facts(source)
    np.testing.assert_array_equal(pixels, PICTURE)
    assert facts.icc_profile == profile
    out = tmp_path / "out"
    done = run_segtool(["image", source, "--blur", "-o", out], model_env)
    assert done.returncode == 0, stderr_lines(done)
    with Image.open(out / "edited.blur.png") as composite:
        assert composite.info.get("icc_profile") == profile
        assert composite.size == (128, 128) and not getattr(composite, "text", {})


def test_the_cli_reads_each_type_and_refuses_each_bomb_with_one_line(tmp_path, model_env):
    folder = tmp_path / "in"
    folder.mkdir()
    good = [make_case(folder, name) for name in ("zTXt-5mb", "iTXt-z-5mb", "tEXt-20mb-and-iTXt-20mb")]
    (folder / "plain.png").write_bytes(png_with([]))
    bombs = {
        "ztxt-bomb.png": png_with([bomb_chunk("zTXt", TEXT_EXPANSION_LIMIT + 16 * MB)]),
        "itxt-bomb.png": png_with([bomb_chunk("iTXt", TEXT_EXPANSION_LIMIT + 16 * MB)]),
        "many-small-bombs.png": png_with([bomb_chunk("zTXt", 60 * MB)] * (TEXT_TOTAL_LIMIT // (60 * MB) + 1)),
        "huge.png": huge_png(30000, 30000),
    }
    for name, data in bombs.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "out"
    done = run_segtool(["image", folder, "--blur", "--no-confidence-masks", "-o", out], model_env)
    assert done.returncode == 1
    lines = stderr_lines(done)
    summary = lines.index(f"segtool: {len(good) + 1} done, {len(bombs)} failed")
    refused = {line.split(": ", 2)[1].rsplit("/", 1)[1]: line.split(": ", 2)[2] for line in lines[:summary]}
    assert refused == {
        "itxt-bomb.png": "PNG text chunk 'Comment' expands past 64 MB: a decompression bomb, refused",
        "ztxt-bomb.png": "PNG text chunk 'Comment' expands past 64 MB: a decompression bomb, refused",
        "many-small-bombs.png": "its PNG text expands past 256 MB in all: a decompression bomb, refused",
        "huge.png": "over the limit of 100,000,000 pixels, refused before decoding (raise it with --max-pixels)",
    }
    plain = iio.imread(out / "plain.blur.png")
    for path in good:
        np.testing.assert_array_equal(iio.imread(out / f"{path.stem}.blur.png"), plain)


def huge_png(width: int, height: int) -> bytes:
    """A header claiming width x height grey pixels, and the first rows of zeros (an IDAT bomb)."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    data = chunk(b"IDAT", zlib.compress(bytes((width + 1) * 64), 9))
    return b"\x89PNG\r\n\x1a\n" + header + data + chunk(b"IEND", b"")


def test_pillows_own_limits_are_left_as_they_were(tmp_path):
    before = (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)
    read_image(make_case(tmp_path, "zTXt-1.5mb"))
    assert (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY) == before
