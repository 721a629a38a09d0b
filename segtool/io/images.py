"""Decoding still images to upright RGB uint8.

What a file gets (documented in `segtool image --help` and the README):
- the first frame only of animated GIF/PNG/WebP and multi-page TIFF;
- EXIF orientation applied, so masks line up with the image as a viewer shows it upright;
- grayscale, palette, CMYK and 16-bit images as RGB as a viewer shows them; transparent
  pixels laid over white (an opaque image reads exactly as MediaPipe reads it);
- truncated or damaged pixel data is an error, never a partly grey image
  (Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False; JPEGs, which libjpeg would fill
  with grey, are decoded strictly by ``jpeg``, and refused when their data is too little for
  their header);
- images over ``max_pixels`` are refused from their header, before any pixel is decoded.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError, UsageError, first_line
from . import jpeg, png_text, storage

DEFAULT_MAX_PIXELS = 100_000_000
_EXIF_ORIENTATION = 0x0112
# Modes np.asarray turns into something to_rgb8 understands; the rest go through Pillow's convert.
_ARRAY_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def read_image(path: Path, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the first frame of ``path`` as upright (EXIF-rotated) RGB uint8 (H, W, 3).

    Every failure is an InputError whose message names the file and says why, on one line.
    """
    return _read(path, max_pixels, with_facts=False)[0]


def read_image_and_facts(path: Path, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
                         ) -> tuple[np.ndarray, "ImageFacts"]:
    """``read_image`` and the file's ImageFacts, from one read of the file (or object)."""
    return _read(path, max_pixels, with_facts=True)


def _read(path, max_pixels: Optional[int], *, with_facts: bool) -> tuple[np.ndarray, Optional["ImageFacts"]]:
    path, source = _source(path)
    return _decoded(path, source, max_pixels, lambda data: _decode(path, data, max_pixels, with_facts))


def _decoded(path, source, max_pixels: Optional[int], decode):
    """``decode(source)``, its failures one line naming the file (InputError)."""
    try:
        return decode(source)
    except InputError:
        raise
    except Exception as exc:  # decoders raise anything from OSError to SyntaxError on bad bytes
        if not png_text.over_pillows_text_limit(exc):
            raise _decode_error(path, exc, max_pixels, source) from exc
    # A valid PNG with more text than Pillow parses (XMP, a generator's workflow): its picture
    # without the text (png_text.py), which still refuses zlib bombs in that text.
    source = io.BytesIO(png_text.without_text(_whole(source), path))
    try:
        return decode(source)
    except InputError:
        raise
    except Exception as exc:
        raise _decode_error(path, exc, max_pixels, source) from exc


def _decode(path, source, max_pixels: Optional[int], with_facts: bool) -> tuple[np.ndarray, Optional["ImageFacts"]]:
    with _pillow_warnings_silenced(), _open(source) as image:
        _check_pixels(path, image.size, max_pixels)
        facts = _facts_of(image) if with_facts else None  # before _pixels, which may replace it
        pixels = _pixels(image)
        orientation = _orientation(image)
    return _upright(to_rgb8(pixels), orientation), facts


def read_image_as_stored(path: Path, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The first frame of ``path`` as its file stores it, as MediaPipe's ``Image.create_from_file``
    reads files: uint8 (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA; no EXIF orientation applied,
    alpha kept, 16-bit reduced to 8. The same strict decoding and one-line errors as ``read_image``
    (a PNG with more text than Pillow parses included).
    """
    path, source = _source(path)
    return _as_stored(_decoded(path, source, max_pixels, lambda data: _stored_pixels(path, data, max_pixels)))


def _stored_pixels(path, source, max_pixels: Optional[int]) -> np.ndarray:
    with _pillow_warnings_silenced(), _open(source) as image:
        _check_pixels(path, image.size, max_pixels)
        return _pixels(image)


def _as_stored(pixels: np.ndarray) -> np.ndarray:
    """8-bit gray (H, W), RGB or RGBA; gray with alpha becomes RGBA."""
    frame = _to_uint8(np.asarray(pixels))
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    elif frame.ndim == 3 and frame.shape[2] == 2:
        frame = np.concatenate([np.repeat(frame[:, :, :1], 3, axis=2), frame[:, :, 1:]], axis=2)
    return np.require(frame, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])


def _whole(source) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    with open(source, "rb") as stream:
        return stream.read()


def _source(path):
    """(the name errors give, what Pillow opens): a checked local file, or an object's bytes."""
    if storage.is_remote(path):
        path = storage.location(path)
        return path, io.BytesIO(storage.read_bytes(path))
    path = Path(path)
    _check_regular_file(path)
    return path, os.fspath(path)


@dataclass(frozen=True)
class ImageFacts:
    """What a photo says about itself besides its pixels, for the pictures made from it to keep.

    ``icc_profile``: the embedded RGB colour profile (a Display P3 or Adobe RGB photo's numbers
    mean other colours than sRGB's), None when there is none (viewers then assume sRGB).
    ``exif``: the EXIF block (camera, lens, date, GPS, ...) with its orientation set to 1, since
    segtool's pixels are already upright; None when there is none.
    """

    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None
    dpi: Optional[tuple[float, float]] = None  # print resolution (x, y) in dots per inch


def _facts_of(image) -> ImageFacts:
    """The colour profile, EXIF and print resolution of an opened image, from its header (no
    pixels decoded).

    Metadata never fails an image: a block that cannot be used is left out (an EXIF block whose
    orientation cannot be reset would turn the upright composite a second time in a viewer).
    """
    try:
        facts = ImageFacts(icc_profile=_rgb_profile(image.info.get("icc_profile")), exif=_exif_of(image))
    except Exception:  # Pillow's metadata parsers raise assorted errors on malformed blocks
        facts = ImageFacts()
    return replace(facts, dpi=_dpi_of(image))


_X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128
_PER_UNIT = {2: 1.0, 3: 2.54}  # EXIF/TIFF ResolutionUnit: inches, centimetres (1: no unit, an aspect only)


def _dpi_of(image) -> Optional[tuple[float, float]]:
    """Dots per inch, from what the format has (JFIF density, pHYs, TIFF tags, as Pillow gives them
    in inches whatever unit the file uses), else from EXIF; None when neither gives a resolution."""
    try:
        found = image.info.get("dpi")
        if image.format in jpeg.FORMATS and image.info.get("jfif_unit") not in (1, 2):
            found = None  # Pillow's guess (72) for a JPEG whose JFIF gives no unit: look in EXIF
        if found is None:
            tags = image.getexif()
            unit = tags.get(_RESOLUTION_UNIT, 2)
            x, y = tags.get(_X_RESOLUTION), tags.get(_Y_RESOLUTION, tags.get(_X_RESOLUTION))
            if x is None or unit not in _PER_UNIT:
                return None
            found = (float(x) * _PER_UNIT[unit], float(y) * _PER_UNIT[unit])
        x, y = (float(v) for v in found)
    except Exception:  # malformed tags: no resolution, as a viewer would read it
        return None
    if not all(math.isfinite(v) and 2 <= v < 1e6 for v in (x, y)):
        return None  # 1 dpi is what Pillow writes into a TIFF that has none: no resolution at all
    # pHYs and BMP count whole dots per metre (0.0254 dpi apart): 300 dpi reads back as 299.9994,
    # 150 as 150.0124. Whole numbers are what they meant.
    return tuple(float(round(v)) if abs(v - round(v)) < 0.0128 else v for v in (x, y))


def _rgb_profile(profile: Optional[bytes]) -> Optional[bytes]:
    # Composites are RGB: a CMYK or grey input's profile would describe other numbers than theirs.
    return profile if isinstance(profile, bytes) and profile[16:20] == b"RGB " else None


# What a TIFF's own first IFD says about the photo (the rest describes its strips and layout).
_TIFF_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def _exif_of(image) -> Optional[bytes]:
    if image.format == "TIFF":
        return _tiff_exif(image)
    raw = image.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    body = _orientation_reset(raw[6:] if raw.startswith(b"Exif\x00\x00") else raw)
    return None if body is None else b"Exif\x00\x00" + body


def _orientation_reset(tiff: bytes) -> Optional[bytes]:
    """The TIFF-structured EXIF block with IFD0's orientation set to 1, changed in place so that
    everything else (maker notes, offsets) stays byte for byte; None when it cannot be parsed."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    magic, first = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or first + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, first)
    if first + 2 + 12 * count > len(tiff):
        return None
    patched = bytearray(tiff)
    for entry in range(first + 2, first + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", tiff, entry)
        if tag == _EXIF_ORIENTATION:
            if kind != 3 or values != 1:  # not a single SHORT: nothing a viewer reads either
                return None
            struct.pack_into(order + "HH", patched, entry + 8, 1, 0)
    return bytes(patched)


def _tiff_exif(image) -> Optional[bytes]:
    from PIL import Image

    tags, kept = image.getexif(), Image.Exif()
    for tag in _TIFF_DESCRIPTIVE:
        if tag in tags:
            kept[tag] = tags[tag]
    for tag in (_EXIF_IFD, _GPS_IFD):
        if tags.get_ifd(tag):
            kept[tag] = tags.get_ifd(tag)
    return kept.tobytes() if len(kept) else None


def _check_regular_file(path: Path) -> None:
    # Checked before opening: a FIFO would block forever, a directory gives a confusing error.
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        broken = path.is_symlink()
        raise InputError(f"{path}: {'broken symbolic link' if broken else 'no such file'}") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or first_line(exc)})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


@contextlib.contextmanager
def _pillow_warnings_silenced():
    # Pillow warns of images over its own pixel limit (segtool applies --max-pixels instead)
    # and of damaged EXIF blocks (read unrotated, as viewers do): extra lines nobody asked for
    # between segtool's one line per input. Its errors still end in _decode_error.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        yield


def _open(source):
    """Pillow reads only the header here; pixels are decoded by ``load`` in ``_pixels``."""
    from PIL import Image

    return Image.open(source)


def _check_pixels(path: Path, size: tuple, max_pixels: Optional[int]) -> None:
    width, height = size
    if max_pixels and width * height > max_pixels:
        raise InputError(
            f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (raise it with --max-pixels)"
        )


def _pixels(image) -> np.ndarray:
    decoded = _strict_jpeg(image) if image.format in jpeg.FORMATS else None
    if decoded is None:
        image.load()  # where truncated or corrupt pixel data raises
    elif image.mode == "CMYK":
        from PIL import Image

        image = Image.fromarray(decoded, "CMYK")  # converted below, as Pillow's own decode would be
    else:
        return decoded
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in _ARRAY_MODES:
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...: as Pillow shows them
    return np.asarray(image)


def _strict_jpeg(image) -> Optional[np.ndarray]:
    """The first picture of a JPEG, decoded strictly; None where Pillow must decode it instead."""
    image.fp.seek(0)
    data = image.fp.read()
    problem = jpeg.structure_problem(data)
    if problem:
        raise jpeg.JpegTruncated(problem)
    # the tile's raw mode says whether Adobe CMYK is inverted ('CMYK;I'); index, not .args: Pillow < 10
    return jpeg.decode(data, image.tile[0][3][0] if image.tile else image.mode)


def _orientation(image) -> int:
    """The EXIF orientation 1-8; 1 when there is none or the EXIF block cannot be parsed.

    A damaged EXIF block is not a damaged image: viewers show such files unrotated, so do we.
    """
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # Pillow's EXIF parser raises assorted errors on malformed blocks
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(frame: np.ndarray, orientation: int) -> np.ndarray:
    """Undo EXIF orientation ``orientation`` (as Pillow's ImageOps.exif_transpose does)."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],                  # mirrored left-right
        3: lambda a: a[::-1, ::-1],               # rotated 180
        4: lambda a: a[::-1, :],                  # mirrored top-bottom
        5: lambda a: a.transpose(1, 0, 2),        # mirrored along the main diagonal
        6: lambda a: np.rot90(a, k=-1),           # stored 90 degrees anticlockwise
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored along the anti-diagonal
        8: lambda a: np.rot90(a, k=1),            # stored 90 degrees clockwise
    }
    # A writeable contiguous copy: callers may draw on it, and np.asarray(PIL image) is read-only.
    return np.require(transforms[orientation](frame), np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])


def _decode_error(path: Path, exc: Exception, max_pixels: Optional[int], source=None) -> InputError:
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: no such file")
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: permission denied")
    if isinstance(exc, MemoryError):
        return InputError(f"{path}: too large to decode in memory (lower --max-pixels)")
    if isinstance(exc, Image.DecompressionBombError):
        return _bomb_error(path, max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0))
    if _cut_short(path if source is None else source):
        return InputError(f"{path}: truncated image (the file ends before the length its header declares)")
    if isinstance(exc, UnidentifiedImageError):
        return InputError(f"{path}: not an image, or a format segtool cannot read")
    if isinstance(exc, jpeg.JpegTruncated):
        return InputError(f"{path}: truncated image ({exc})")
    if isinstance(exc, jpeg.JpegDamaged):
        return InputError(f"{path}: damaged image ({first_line(exc)})")
    if "truncated" in str(exc).lower():
        return InputError(f"{path}: truncated image (the pixel data ends early)")
    return InputError(f"{path}: damaged or unreadable image ({first_line(exc)})")


def _cut_short(source) -> bool:
    """Whether the file's container declares more bytes than the file has (WebP, TIFF, AVIF/HEIF).

    Their decoders then fail with "cannot identify" or "could not create decoder": say why.
    ``source``: a local path, or the in-memory bytes of an object read from storage.
    """
    try:
        if isinstance(source, io.BytesIO):
            size, opened = source.getbuffer().nbytes, contextlib.nullcontext(source)
            source.seek(0)
        else:
            size, opened = os.stat(source).st_size, open(source, "rb")
        with opened as stream:
            head = stream.read(16)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return int.from_bytes(head[4:8], "little") + 8 > size
            if head[:4] in (b"II*\0", b"MM\0*"):
                return int.from_bytes(head[4:8], "little" if head[:2] == b"II" else "big") >= size
            if head[4:8] == b"ftyp":
                return _boxes_overrun(stream, size)
    except OSError:
        return False
    return False


def _boxes_overrun(stream, size: int) -> bool:
    """Whether an ISO BMFF file's top-level boxes (ftyp, meta, mdat...) run past its end."""
    at = 0
    while at + 8 <= size:
        stream.seek(at)
        header = stream.read(16)
        length = int.from_bytes(header[:4], "big")
        if length == 1 and len(header) == 16:
            length = int.from_bytes(header[8:16], "big")
        if length == 0:  # the box runs to the end of the file
            return False
        if length < 8:
            return False  # not a box structure we can judge
        at += length
    return at > size


def _bomb_error(path: Path, max_pixels: Optional[int], ceiling: int) -> InputError:
    # Pillow refuses at open, before our own check, anything over twice MAX_IMAGE_PIXELS.
    if max_pixels and max_pixels <= ceiling:
        return InputError(f"{path}: over the limit of {max_pixels:,} pixels, refused before decoding "
                          "(raise it with --max-pixels)")
    return InputError(f"{path}: over {ceiling:,} pixels, Pillow's decompression-bomb ceiling "
                      "(which --max-pixels cannot raise)")


def to_rgb8(frame: np.ndarray, mode: str = "") -> np.ndarray:
    """Any image array as contiguous RGB uint8 (H, W, 3).

    Shapes (H, W), (H, W, 1|2|3|4): gray, gray+alpha, RGB, RGBA; alpha is laid over white.
    Values by dtype: bool 0/1; uint8/int8 as they are; 16-bit integers as 16-bit; wider integers
    as 8-bit when they fit, else 16-bit; floats as 0..1. ``mode="CMYK"``: 4 channels of ink.
    Anything else is a UsageError (a ValueError), as MediaPipe raises for a bad image.
    """
    frame = np.asarray(frame)
    _check_shape(frame, mode)
    if mode == "CMYK":
        return _cmyk_to_rgb(_to_uint8(frame))
    frame = _to_uint8(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] in (2, 4):
        frame = _over_white(frame[:, :, :-1], frame[:, :, -1])
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def _check_shape(frame: np.ndarray, mode: str) -> None:
    channels = frame.shape[2] if frame.ndim == 3 else 1
    if frame.ndim not in (2, 3) or not 1 <= channels <= 4 or frame.size == 0:
        raise UsageError(f"an image must be (H, W) or (H, W, 1-4 channels) and not empty, not {frame.shape}")
    if mode == "CMYK" and channels != 4:
        raise UsageError(f"a CMYK image needs 4 channels, not {channels}")
    if not (frame.dtype == bool or np.issubdtype(frame.dtype, np.integer)
            or np.issubdtype(frame.dtype, np.floating)):
        raise UsageError(f"image values must be bool, integer or float, not {frame.dtype}")


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == bool:
        return frame.astype(np.uint8) * 255
    if np.issubdtype(frame.dtype, np.integer):
        return _int_to_uint8(frame)
    # NaN has no brightness: black, rather than whatever the float->int cast makes of it.
    # Clipped before the float32 cast, which would overflow on large float64 values.
    clean = np.clip(np.nan_to_num(frame, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return (clean.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)


def _int_to_uint8(frame: np.ndarray) -> np.ndarray:
    # 16-bit dtypes come from 16-bit files and are scaled even when dark; plain numpy integer
    # arrays (int32/int64) usually hold 8-bit values, so those are scaled only when they must be.
    top = int(frame.max())
    eight_bit = frame.dtype.itemsize == 1 or (frame.dtype.itemsize > 2 and top <= 255)
    if eight_bit:
        return np.clip(frame, 0, 255).astype(np.uint8)
    return (np.clip(frame, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if alpha.min() == 255:
        return color
    a = alpha[:, :, None].astype(np.float32) / 255.0
    return (color * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def _cmyk_to_rgb(frame: np.ndarray) -> np.ndarray:
    # The same arithmetic as Pillow's CMYK -> RGB (no colour management), for callers holding
    # a CMYK array; read_image lets Pillow convert, having undone Adobe's inverted CMYK.
    cmyk = frame.astype(np.float32) / 255.0
    k = cmyk[:, :, 3:4]
    return np.ascontiguousarray(((1.0 - cmyk[:, :, :3]) * (1.0 - k) * 255.0 + 0.5).astype(np.uint8))
