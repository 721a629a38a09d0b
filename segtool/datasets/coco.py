"""COCO annotations with RLE masks, as JSON Lines shards in SA-1B's layout: one line per image.

  {"image": {"id", "file_name", "height", "width"},
   "annotations": [{"id", "image_id", "category_id", "segmentation": {"size": [h, w], "counts": str},
                    "area", "bbox": [x, y, w, h], "iscrowd": 0}, ...],
   "categories": [{"id": index, "name": label}, ...],
   "key", "input", "model", "error": null}

One annotation per category present (background too), whose RLE is pycocotools' encoding of
``mask == category_id``: decoding every annotation and painting its category_id gives the
category mask back exactly. Category ids are the mask's indices (0 is the model's first label).
A failed input is a line with its "error", "input" and an "image" without a size, and no
annotations. Confidence masks and composites are not part of COCO and are not written here.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from ..postprocess import pixel_counts
from .records import ShardRecord, image_id

EXTENSION = "jsonl"


def annotations(mask: np.ndarray, image: int) -> list[dict]:
    from pycocotools import mask as rle

    found = []
    for category in np.flatnonzero(pixel_counts(mask)):
        encoded = rle.encode(np.asfortranarray(mask == category, dtype=np.uint8))
        found.append({"id": _annotation_id(image, int(category)), "image_id": image,
                      "category_id": int(category),
                      "segmentation": {"size": [int(n) for n in encoded["size"]],
                                       "counts": encoded["counts"].decode("ascii")},
                      "area": int(rle.area(encoded)), "bbox": [float(v) for v in rle.toBbox(encoded)],
                      "iscrowd": 0})
    return found


def _annotation_id(image: int, category: int) -> int:
    # below 2**53, like image ids, and the same for the same input in every run and engine
    digest = hashlib.blake2b(f"{image}:{category}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big") >> 3 or 1


def coco_record(record: ShardRecord) -> dict:
    height, width = record.size()
    image = image_id(record.input)
    line = {"image": {"id": image, "file_name": record.file_name, "height": height, "width": width},
            "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(record.labels)],
            "key": record.key, "input": record.input, "model": record.model, "error": record.error}
    if record.ok:
        line["annotations"] = annotations(record.mask(), image)
    return line


class CocoFormat:
    extension = EXTENSION

    def __init__(self, options):
        self.options = options

    def encode(self, record: ShardRecord) -> bytes:
        return json.dumps(coco_record(record), separators=(",", ":")).encode() + b"\n"

    def open(self, path: Path) -> "LinesShardWriter":
        return LinesShardWriter(path)


class LinesShardWriter:
    def __init__(self, path: Path):
        self._stream = open(path, "wb")

    def write(self, line: bytes) -> None:
        self._stream.write(line)

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        self._stream.close()

    def abort(self) -> None:
        self._stream.close()


def inputs_in(stream) -> Iterator[tuple[str, bool]]:
    for line in stream:
        if line.strip():
            record = json.loads(line)
            yield record["input"], record.get("error") is None
