"""Test images built in memory: good ones in awkward formats, and bad ones of every kind.

No binary fixtures: everything comes from pictures that scikit-image and matplotlib ship.
"""
from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATIONS = range(1, 9)


@lru_cache(maxsize=None)
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@lru_cache(maxsize=None)
def chelsea() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


@lru_cache(maxsize=None)
def coffee() -> np.ndarray:
    import skimage.data

    return skimage.data.coffee()


@lru_cache(maxsize=None)
def grace_hopper_jpeg() -> bytes:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as stream:
        return stream.read()


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(array: np.ndarray, **options) -> bytes:
    return encode(array, "JPEG", quality=92, **options)


def png(array: np.ndarray, **options) -> bytes:
    return encode(array, "PNG", **options)


# ---- PNGs written by hand: 16-bit, and headers that lie --------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(array: np.ndarray, *, bit_depth: int, color_type: int) -> bytes:
    """A PNG from rows of ``array`` as they are (big-endian for 16 bit); colour type 0 gray, 2 RGB, 6 RGBA."""
    height, width = array.shape[:2]
    sample = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\0" + np.ascontiguousarray(array[y], dtype=sample).tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def bomb_png(width: int, height: int) -> bytes:
    """A few hundred bytes declaring ``width`` x ``height`` gray pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * 4096)  # far too little data, which only a full decode would notice
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def sixteen_bit(array8: np.ndarray) -> np.ndarray:
    """8-bit values spread over 16 bits with a low byte that must be dropped: v * 256 + 0x5A."""
    return array8.astype(np.uint16) * 256 + 0x5A


# ---- formats a viewer shows as RGB ----------------------------------------------------------

def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    """Pillow writes CMYK JPEGs as Photoshop does: inverted, with an Adobe APP14 marker."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def palette_png_with_transparency(rgb: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A palette PNG whose index 0 is transparent, and the RGB a viewer shows over white."""
    image = Image.fromarray(rgb).quantize(colors=16)
    indices = np.asarray(image).copy()
    indices[: indices.shape[0] // 2, : indices.shape[1] // 2] = 0  # a transparent corner, at least
    image = Image.fromarray(indices, mode="P")
    image.putpalette(Image.fromarray(rgb).quantize(colors=16).getpalette())
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    shown = np.asarray(image.convert("RGB")).copy()
    shown[indices == 0] = 255
    return buffer.getvalue(), shown


def animated_gif(frames: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def flat_frames(height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Three flat colours: a GIF palette holds them exactly, so the first frame is checkable."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [np.full((height, width, 3), c, np.uint8) for c in colours]


# ---- EXIF orientation -----------------------------------------------------------------------

# What a camera stores for each orientation tag, given the upright picture: the inverse of the
# transform a viewer applies (2, 3, 4, 5, 7 are their own inverses; 6 and 8 undo each other).
_STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=-1),
}


def stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    return np.ascontiguousarray(_STORED[orientation](upright))


def oriented(upright: np.ndarray, orientation: int, fmt: str = "PNG") -> bytes:
    """``upright`` stored as a camera would with EXIF orientation ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    return encode(stored_for(upright, orientation), fmt, exif=exif.tobytes(), **options)


def half_person(height: int = 240, width: int = 320) -> np.ndarray:
    """Left half the astronaut's head and shoulders, right half flat grey: not symmetric anywhere."""
    picture = np.full((height, width, 3), 128, np.uint8)
    face = np.asarray(Image.fromarray(astronaut()[:400, 60:360]).resize((width // 2, height)))
    picture[:, : width // 2] = face
    return picture


# ---- the bad ones -----------------------------------------------------------------------------

def random_bytes(size: int = 4096, seed: int = 6) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def bad_inputs() -> dict[str, bytes | None]:
    """File name -> content; None means a directory of that name. Each must fail on its own."""
    photo = astronaut()
    whole_jpeg, whole_png = jpeg(photo), png(photo)
    progressive = jpeg(photo, progressive=True)
    return {
        "empty.jpg": b"",
        "truncated.jpg": whole_jpeg[: len(whole_jpeg) // 2],
        "truncated progressive.jpg": progressive[: len(progressive) * 2 // 3],
        "truncated png.png": whole_png[: len(whole_png) // 2],
        "random.png": random_bytes(),
        "notes.jpg": "This is not a picture.\nJust some text.\n".encode(),
        "folder.jpg": None,
        "bomb.png": bomb_png(100_000, 100_000),
    }


def good_inputs() -> dict[str, bytes]:
    """File name -> content: awkward but valid images, all of which must segment."""
    photo = astronaut()
    palette, _ = palette_png_with_transparency(chelsea())
    return {
        "cmyk.jpg": cmyk_jpeg(coffee()),
        "gray16.png": raw_png(sixteen_bit(photo[..., 1]), bit_depth=16, color_type=0),
        "rgb16.png": raw_png(sixteen_bit(photo), bit_depth=16, color_type=2),
        "gray.jpg": jpeg(np.asarray(Image.fromarray(photo).convert("L"))),
        "palette alpha.png": palette,
        "animated.gif": animated_gif(flat_frames()),
        "grace hopper.jpg": grace_hopper_jpeg(),
        "café ☕ 写真.png": png(chelsea()),
        "rotated 6.jpg": oriented(half_person(), 6, "JPEG"),
    }


def write_tree(folder: Path, files: dict[str, bytes | None]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        path = folder / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        paths.append(path)
    return paths
