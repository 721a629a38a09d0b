"""Fast encoders for what a batch writes most: masks as PNG, composites as JPEG (BENCHMARKS.md, "Encoders").

* ``png_bytes``: masks are large runs of one value. Every row gets PNG filter 0 (None) and the
  rows are deflated with run-length matching (Z_RLE) at level 1 by zlib-ng: a 1080p category
  mask in ~1.6 ms and ~5 KB, where Pillow's adaptive filters with zlib level 1 took ~17 ms for
  15 KB (filters turn a flat run into a mix of bytes, and Python's zlib is 4x slower than
  zlib-ng on runs). An ordinary 8-bit PNG: every reader decodes the same pixels.
* ``jpeg_bytes``: OpenCV's libjpeg-turbo at Pillow's settings (quality, 4:2:0, the accurate
  DCT, JFIF header) gives Pillow's exact bytes ~20% sooner (no copy into Pillow's 4-byte
  pixels); the colour profile and EXIF are spliced in as APP2 / APP1 segments, where Pillow
  puts them.
"""
from __future__ import annotations

import struct
from typing import Optional

import numpy as np

try:  # zlib-ng: the same deflate format (any inflater reads it), 4-5x faster on runs
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - a platform without its wheel: the standard zlib, slower
    import zlib as _zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: grey, RGB, RGBA
_IDAT_PIECE = 1 << 24  # IDAT chunks of at most 16 MiB (a chunk may hold up to 2 GiB)


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG of ``pixels``: uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    pixels = np.asarray(pixels)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or channels not in _COLOUR_TYPES or 0 in pixels.shape:
        raise ValueError(f"png_bytes takes uint8 (H, W), (H, W, 3) or (H, W, 4), not {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + width * channels), np.uint8)  # each row: filter type 0, then its bytes
    rows[:, 1:] = pixels.reshape(height, width * channels)
    # Z_RLE finds runs of one byte; a run of one RGB colour repeats every 3 bytes, which level 1's
    # ordinary matching finds instead.
    strategy = _zlib.Z_RLE if channels == 1 else _zlib.Z_DEFAULT_STRATEGY
    compressor = _zlib.compressobj(1, _zlib.DEFLATED, 15, 9, strategy)
    data = compressor.compress(rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    pieces = [_chunk(b"IDAT", data[i:i + _IDAT_PIECE]) for i in range(0, len(data), _IDAT_PIECE)]
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), *pieces, _chunk(b"IEND", b"")])


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = _zlib.crc32(body, _zlib.crc32(kind))
    return b"".join([struct.pack(">I", len(body)), kind, body, struct.pack(">I", crc & 0xFFFFFFFF)])


# ---- JPEG -----------------------------------------------------------------------------------

_ICC_HEADER = b"ICC_PROFILE\x00"
_ICC_PIECE = 65519  # a segment's 65533 bytes less the header and the piece numbers (as Pillow splits)
_EXIF_HEADER = b"Exif\x00\x00"


def jpeg_bytes(pixels: np.ndarray, quality: int = 95, *, icc_profile: Optional[bytes] = None,
               exif: Optional[bytes] = None) -> bytes:
    """A baseline JFIF JPEG of uint8 RGB (H, W, 3) or grey (H, W) ``pixels``, as Pillow writes it.

    ``exif``: the block as Pillow's ``info["exif"]`` holds it ("Exif\\0\\0" then TIFF data); it
    must fit one segment (the caller leaves longer ones out, as Pillow refuses them).
    """
    import cv2

    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    if not ok:
        raise ValueError("OpenCV could not encode the picture as JPEG")
    data = encoded.tobytes()
    segments = []
    if exif:
        body = exif if exif.startswith(_EXIF_HEADER) else _EXIF_HEADER + exif
        segments.append(_segment(0xE1, body))
    if icc_profile:
        pieces = [icc_profile[i:i + _ICC_PIECE] for i in range(0, len(icc_profile), _ICC_PIECE)]
        segments += [_segment(0xE2, _ICC_HEADER + bytes([n + 1, len(pieces)]) + piece)
                     for n, piece in enumerate(pieces)]
    if not segments:
        return data
    at = _after_jfif(data)
    return data[:at] + b"".join(segments) + data[at:]


def _segment(marker: int, body: bytes) -> bytes:
    if len(body) + 2 > 0xFFFF:
        raise ValueError(f"a JPEG segment holds at most 65533 bytes, not {len(body)}")
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _after_jfif(data: bytes) -> int:
    """Where the segments after SOI and the JFIF APP0 begin (libjpeg writes that APP0 first)."""
    at = 2
    if data[at:at + 2] == b"\xff\xe0":
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return at
