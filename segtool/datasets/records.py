"""One input's dataset record, and what every shard format derives from it the same way.

A record is what the engines hand a sink (sink.py): the input as given, its size, the model and
its labels, the masks and the composites' encoded bytes, or the one-line reason it failed.
The formats agree on everything derived here: the sample key, the image id, the pixel counts
of each category present and the encodings of the masks.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping, Optional

import numpy as np

from ..errors import UsageError
from ..postprocess import pixel_counts

# Confidence masks in shards: float16 .npy bytes of the (C, H, W) array, label order. Half
# precision keeps 3 decimal digits of a 0..1 probability (steps of 2**-11 near 1) at half
# the bytes; readers get it back with np.load(io.BytesIO(data)).
CONFIDENCE_DTYPE = np.float16
CONFIDENCE_ENCODING = "npy float16 (C, H, W), label order"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KEY_STEM_CHARS = 48


@dataclass(frozen=True, eq=False)
class ShardRecord:
    """One input, segmented or failed, as every shard format stores it.

    ``input``: the path or URL as given (what --skip-existing matches). ``name``: its relative
    name (io.paths.InputItem.name; COCO's file_name), the input's base name when empty.
    ``category_mask``: uint8 (H, W); when None but ``confidence_masks`` is given, their argmax.
    ``confidence_masks``: float32 (C, H, W), stored only when the sink was opened for them.
    ``composites``: {"<name>.<ext>": encoded bytes}, named as the per-file outputs' suffixes
    (``blur.jpg``, ``cutout.png``); the sink must have been opened with each name.
    ``error``: the one-line reason the input failed; masks are then None.
    """

    input: str
    height: Optional[int] = None
    width: Optional[int] = None
    model: str = ""
    labels: tuple[str, ...] = ()
    category_mask: Optional[np.ndarray] = None
    confidence_masks: Optional[np.ndarray] = None
    composites: Mapping[str, bytes] = field(default_factory=dict)
    error: Optional[str] = None
    name: str = ""

    @classmethod
    def failed(cls, input: str, error: str, *, name: str = "", model: str = "",
               labels: tuple[str, ...] = ()) -> "ShardRecord":
        return cls(str(input), model=model, labels=tuple(labels), error=str(error), name=name)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def file_name(self) -> str:
        return self.name or PurePosixPath(self.input.replace("\\", "/").rstrip("/")).name

    @property
    def key(self) -> str:
        return sample_key(self.input)

    def mask(self) -> np.ndarray:
        """The category mask, uint8 (H, W); a UsageError for a record that has none."""
        if self.category_mask is not None:
            return np.ascontiguousarray(self.category_mask, dtype=np.uint8)
        if self.confidence_masks is not None:
            from ..postprocess import argmax_first

            return argmax_first(np.asarray(self.confidence_masks))
        raise UsageError(f"{self.input}: a dataset record needs a category or confidence mask")

    def size(self) -> tuple[Optional[int], Optional[int]]:
        """(height, width): as given, else the mask's."""
        if self.height is not None and self.width is not None:
            return int(self.height), int(self.width)
        if self.ok:
            height, width = self.mask().shape[:2]
            return int(height), int(width)
        return None, None


@dataclass(frozen=True)
class CategoryShare:
    """One category present in a mask: its index, label, pixel count and share of the pixels."""

    index: int
    label: str
    pixels: int
    fraction: float


def input_digest(text: str) -> bytes:
    """16 bytes naming an input (BLAKE2b-128 of the path or URL as given): what the index keeps.

    128 bits: the chance that two of ten million inputs share one is about 1e-25.
    """
    return hashlib.blake2b(os.fsencode(str(text)), digest_size=16).digest()


def sample_key(text: str) -> str:
    """A key for ``text`` that is unique, stable across runs and engines, and safe for
    WebDataset: no dot (its readers split a member name at the first dot of the base name), no
    slash, only [A-Za-z0-9_-]. The stem keeps it readable; 16 hex digits of the input's digest
    tell apart inputs whose stems agree (a.jpg and a.png, dir1/a.jpg and dir2/a.jpg, a.b.jpg)."""
    name = PurePosixPath(str(text).replace("\\", "/").rstrip("/")).name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    readable = _UNSAFE.sub("_", stem).strip("_")[:_KEY_STEM_CHARS] or "input"
    return f"{readable}-{input_digest(text)[:8].hex()}"


def image_id(text: str) -> int:
    """A positive integer id below 2**53 (exact in JSON readers that use doubles) for COCO."""
    return int.from_bytes(input_digest(text)[8:15], "big") >> 3 or 1


def categories_present(mask: np.ndarray, labels) -> list[CategoryShare]:
    """The categories with at least one pixel, in index order; an index past the labels is
    named by its number."""
    counts = pixel_counts(mask)
    total = max(1, mask.size)
    return [CategoryShare(int(index), labels[index] if index < len(labels) else str(index),
                          int(counts[index]), float(counts[index]) / total)
            for index in np.flatnonzero(counts)]


def confidence_npy(masks: np.ndarray) -> bytes:
    """The confidence masks as float16 .npy bytes (CONFIDENCE_ENCODING)."""
    from ..io.writers import npy_bytes

    return npy_bytes(np.asarray(masks).astype(CONFIDENCE_DTYPE, copy=False))


def composite_name(suffix: str) -> tuple[str, str]:
    """"blur.jpg" -> ("blur", "jpg"): the composite and its file extension."""
    name, dot, extension = suffix.partition(".")
    if not dot or not name or not extension or not _UNSAFE.sub("", name) == name:
        raise UsageError(f"{suffix!r}: a composite is named '<name>.<extension>', e.g. 'blur.jpg'")
    return name, extension.lower()


def check_record(record: ShardRecord, *, composites: tuple[str, ...]) -> None:
    """A UsageError for a record the sink was not opened for (a bug in the caller, not an input)."""
    if not isinstance(record, ShardRecord):
        raise UsageError(f"a dataset sink takes ShardRecord, not {type(record).__name__}")
    for suffix in record.composites:
        if composite_name(suffix)[0] not in composites:
            raise UsageError(f"{record.input}: composite {suffix!r} was not among those the "
                             f"dataset was opened with ({', '.join(composites) or 'none'})")
