"""Strict JPEG decoding: data that ends early, or is too little for its header, is an error.

libjpeg treats a JPEG whose entropy-coded data ends early as a *warning*: it fills the rest with
grey, reports success, and Pillow passes the grey picture on. Two checks close that:

* ``structure_problem`` walks the markers before any pixel is decoded (a regex search over the
  bytes): every component must be coded (every coefficient to full precision, for progressive
  files), and Huffman-coded data must be at least one bit per 8x8 block of each component, the
  least a DC symbol takes, so a 2 KB file whose header says 9000x9000 is refused at once;
* ``decode`` decodes with libjpeg-turbo through simplejpeg with ``strict=True``, which stops at
  libjpeg's warnings; those about the pixel data are errors, the harmless ones (an unknown JFIF
  revision, a bad ICC marker, padding before the end marker) decode again leniently.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

FORMATS = frozenset({"JPEG", "MPO"})  # MPO (camera multi-picture files): the first picture is a JPEG

# A marker outside entropy-coded data: not a stuffed 0xFF00, not a restart marker, not a fill byte.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOF_HUFFMAN = frozenset({0xC0, 0xC1, 0xC2, 0xC3})  # non-hierarchical, Huffman-coded frames
_SOF_ARITHMETIC = frozenset({0xC9, 0xCA, 0xCB})
_PROGRESSIVE = frozenset({0xC2, 0xCA})
_LOSSLESS = frozenset({0xC3, 0xCB})
_SOS, _EOI = 0xDA, 0xD9
# libjpeg warnings (jerror.h) that leave the pixels whole: decoded again without strict.
_HARMLESS = ("unknown jfif revision", "unknown adobe color transform", "bad icc marker",
             "invalid sos parameters for sequential", "extraneous bytes before marker 0xd9")


class JpegTruncated(Exception):
    """The pixel data ends before the picture its header declares; the message says how we know."""


class JpegDamaged(Exception):
    """The pixel data is corrupt (libjpeg's own words in the message)."""


@dataclass(frozen=True)
class _Frame:
    marker: int
    width: int
    height: int
    sampling: dict  # component id -> (horizontal, vertical) sampling factor


@dataclass(frozen=True)
class _Scan:
    components: tuple
    spectral: tuple  # (Ss, Se): the coefficients this scan codes
    low_bit: int     # Al: 0 when the scan brings those coefficients to full precision


def structure_problem(data: bytes) -> Optional[str]:
    """Why the markers show pixel data missing (a phrase for 'truncated image (...)'), or None."""
    frame, scans, coded_bytes = _walk(data)
    if frame is None or not frame.width or not frame.height:
        return None  # no frame, or a DNL height: left to the decoder
    if frame.marker not in _SOF_HUFFMAN | _SOF_ARITHMETIC:
        return None  # hierarchical files: rare enough to leave to libjpeg
    if not _complete(frame, scans):
        return "its scans stop before every part of the picture is coded"
    least_bits = _least_bits(frame)
    if frame.marker in _SOF_HUFFMAN and coded_bytes * 8 < least_bits:
        return (f"{coded_bytes:,} bytes of pixel data cannot hold the {frame.width}x{frame.height} "
                f"pixels its header declares, which need at least {math.ceil(least_bits / 8):,}")
    return None


def _walk(data: bytes) -> tuple[Optional[_Frame], list[_Scan], int]:
    """The first frame header, the scan headers, and how many entropy-coded bytes follow them."""
    frame, scans, coded_bytes, pos = None, [], 0, 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF):
            found = _MARKER.search(data, pos + 1)  # bytes between segments: libjpeg skips them too
            if not found:
                break
            pos = found.start()
            continue
        code = data[pos + 1]
        if code == _EOI:
            break
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # restart markers and TEM stand alone
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        body = data[pos + 4:end]
        if frame is None and (code in _SOF_HUFFMAN or 0xC5 <= code <= 0xCF and code not in (0xC8, 0xCC)):
            frame = _parse_frame(code, body)
        elif code == _SOS:
            scans.append(_parse_scan(body))
            found = _MARKER.search(data, end)
            stop = found.start() if found else len(data)
            coded_bytes += stop - end
            end = stop
        pos = end
    return frame, scans, coded_bytes


def _parse_frame(code: int, body: bytes) -> _Frame:
    if len(body) < 6:
        return _Frame(code, 0, 0, {})
    height, width, count = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), body[5]
    sampling = {body[6 + 3 * i]: (body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15)
                for i in range(count) if 8 + 3 * i < len(body)}
    return _Frame(code, width, height, sampling)


def _parse_scan(body: bytes) -> _Scan:
    count = body[0] if body else 0
    tail = body[1 + 2 * count:1 + 2 * count + 3]
    if len(tail) < 3:
        return _Scan((), (0, -1), 0)
    return _Scan(tuple(body[1 + 2 * i] for i in range(count)), (tail[0], tail[1]), tail[2] & 15)


def _complete(frame: _Frame, scans: list[_Scan]) -> bool:
    """Whether the scans code every component (every coefficient to full precision, if progressive)."""
    if frame.marker not in _PROGRESSIVE:
        coded = {c for scan in scans for c in scan.components}
        return set(frame.sampling) <= coded
    final = {c: np.zeros(64, bool) for c in frame.sampling}
    for scan in scans:
        first, last = scan.spectral
        for component in scan.components:
            if component in final and scan.low_bit == 0 and 0 <= first <= last <= 63:
                final[component][first:last + 1] = True
    return all(done.all() for done in final.values())


def _least_bits(frame: _Frame) -> int:
    """The fewest bits any Huffman coding of the frame takes: one per block (sample, if lossless)."""
    if not frame.sampling:
        return 0
    most_h = max(h for h, _ in frame.sampling.values()) or 1
    most_v = max(v for _, v in frame.sampling.values()) or 1
    unit = 1 if frame.marker in _LOSSLESS else 8
    total = 0
    for h, v in frame.sampling.values():
        width, height = math.ceil(frame.width * h / most_h), math.ceil(frame.height * v / most_v)
        total += math.ceil(width / unit) * math.ceil(height / unit)
    return total


def decode(data: bytes, rawmode: str) -> Optional[np.ndarray]:
    """Pixels as Pillow's mode for ``rawmode`` lays them out: L (H, W), RGB (H, W, 3), CMYK (H, W, 4).

    None when simplejpeg cannot produce that mode or refuses the file for a reason that is not
    the pixel data (Pillow then decodes it, as before). JpegTruncated / JpegDamaged otherwise.
    """
    import simplejpeg

    colorspace = {"L": "GRAY", "RGB": "RGB", "CMYK": "CMYK", "CMYK;I": "CMYK"}.get(rawmode)
    if colorspace is None:
        return None
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except ValueError as exc:
        message = str(exc).strip()
        lowered = message.lower()
        if "premature end" in lowered:
            raise JpegTruncated(f"the pixel data ends early: {message}") from exc
        if any(phrase in lowered for phrase in _HARMLESS):
            pixels = _lenient(data, colorspace)
            if pixels is None:
                return None
        elif lowered.startswith("corrupt jpeg data") or "inconsistent progression" in lowered:
            raise JpegDamaged(message) from exc
        else:
            return None
    if colorspace == "GRAY":
        return pixels[:, :, 0]
    # Adobe's CMYK is stored inverted; Pillow's CMYK mode holds ink amounts.
    return np.subtract(255, pixels, out=pixels) if rawmode == "CMYK;I" else pixels


def _lenient(data: bytes, colorspace: str) -> Optional[np.ndarray]:
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False)
    except ValueError:  # simplejpeg stops at warnings in the header even then: Pillow decodes it
        return None
