"""PNGs whose text is larger than Pillow will parse: read the picture, leave the text out.

Pillow refuses a PNG whose compressed text chunk (zTXt, or compressed iTXt) expands past 1 MB, or
whose text adds up to over 64 MB (``PngImagePlugin.MAX_TEXT_CHUNK`` / ``MAX_TEXT_MEMORY``): its
guard against zlib bombs in text. Edited photos (their XMP) and pictures from image-generation
tools (their workflow JSON) pass those limits, and are valid. Raising Pillow's limits would change
them for every thread and every other user of Pillow in the process, so segtool instead hands
Pillow the same file without its text chunks (segtool never uses PNG text: composites keep the
colour profile and EXIF, which are chunks of their own). Each text chunk left out is still
checked: one that expands past ``TEXT_EXPANSION_LIMIT``, or all of them together past
``TEXT_TOTAL_LIMIT``, is a decompression bomb and the file is refused.
"""
from __future__ import annotations

import struct
import zlib

from ..errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
TEXT_EXPANSION_LIMIT = 64 * 1024 * 1024  # one text chunk, decompressed
TEXT_TOTAL_LIMIT = 256 * 1024 * 1024  # all of a file's text
_STEP = 1024 * 1024


def over_pillows_text_limit(exc: BaseException) -> bool:
    """Whether Pillow refused a file only for the size of its text."""
    return isinstance(exc, ValueError) and ("MAX_TEXT_CHUNK" in str(exc) or "MAX_TEXT_MEMORY" in str(exc))


def without_text(data: bytes, name) -> bytes:
    """``data`` (a whole PNG) with its text chunks left out, once each is known not to be a bomb.

    Everything else (chunk order, APNG frames, iCCP, eXIf) stays byte for byte. A file whose
    chunks cannot be walked is returned as it is: Pillow then says what is wrong with it.
    """
    if not data.startswith(SIGNATURE):
        return data
    kept, at, total = [data[:len(SIGNATURE)]], len(SIGNATURE), 0
    view = memoryview(data)
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 12 + length  # length, type, data, CRC
        if end > len(data):
            kept.append(view[at:])
            break
        if kind in TEXT_CHUNKS:
            total += _text_size(kind, view[at + 8:at + 8 + length], name)
            if total > TEXT_TOTAL_LIMIT:
                raise InputError(f"{name}: its PNG text expands past {TEXT_TOTAL_LIMIT // 2**20} MB in all: "
                                 "a decompression bomb, refused")
        else:
            kept.append(view[at:end])
        at = end
        if kind == b"IEND":
            break
    return b"".join(kept)


def _text_size(kind: bytes, body: memoryview, name) -> int:
    """How many bytes one text chunk holds once decompressed (checked in steps, never held)."""
    keyword, _, rest = bytes(body[:80]).partition(b"\0")
    start = len(keyword) + 1
    if kind == b"zTXt":
        return _inflated_size(body[start + 1:], keyword, name)
    if kind == b"iTXt" and len(body) > start + 1 and body[start] == 1:
        # flag, method, then language and translated keyword, each ending in a NUL
        tail = bytes(body[start + 2:])
        first = tail.find(b"\0")
        second = tail.find(b"\0", first + 1) if first >= 0 else -1
        if second < 0:
            return len(body)
        return _inflated_size(body[start + 2 + second + 1:], keyword, name)
    return len(body)


def _inflated_size(compressed: memoryview, keyword: bytes, name) -> int:
    inflater, size = zlib.decompressobj(), 0
    pending = bytes(compressed)
    try:
        while pending:
            size += len(inflater.decompress(pending, _STEP))
            pending = inflater.unconsumed_tail
            if size > TEXT_EXPANSION_LIMIT:
                raise InputError(f"{name}: PNG text chunk '{keyword.decode('latin-1')}' expands past "
                                 f"{TEXT_EXPANSION_LIMIT // 2**20} MB: a decompression bomb, refused")
    except zlib.error:
        return len(compressed)  # damaged text: Pillow skips it too
    return size
