"""WebDataset shards: plain tar files (the stdlib's tarfile) whose members group into samples.

Each sample is the members sharing one key (records.sample_key: no dots, so WebDataset's
readers, which split a member's name at the first dot of its base name, see one key):
  <key>.json            input, name, height, width, model, labels, categories (index, label,
                        pixels, fraction), error (null, or the one-line reason it failed)
  <key>.category.png    8-bit grey PNG, pixel values are category indices (as <stem>.category.png)
  <key>.confidence.npy  float16 (C, H, W), when asked for
  <key>.<name>.<ext>    each composite asked for (<key>.blur.jpg, <key>.cutout.png, ...)
A failed input is a sample with only its .json.
"""
from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Iterator

from ..io.writers import category_png_bytes
from .records import ShardRecord, categories_present, confidence_npy

EXTENSION = "tar"


def sample_facts(record: ShardRecord) -> dict:
    """The .json member (and COCO's extra fields): everything about the record but its pixels."""
    height, width = record.size()
    facts = {"key": record.key, "input": record.input, "name": record.file_name, "height": height,
             "width": width, "model": record.model, "labels": list(record.labels), "categories": [],
             "error": record.error}
    if record.ok:
        facts["categories"] = [vars(share) for share in categories_present(record.mask(), record.labels)]
    return facts


class WebDatasetFormat:
    extension = EXTENSION

    def __init__(self, options):
        self.options = options

    def encode(self, record: ShardRecord) -> list[tuple[str, bytes]]:
        """The sample's members, in the order they go into the tar."""
        key = record.key
        members = [(f"{key}.json", json.dumps(sample_facts(record)).encode())]
        if record.ok:
            members.append((f"{key}.category.png", category_png_bytes(record.mask())))
            if self.options.confidence_masks and record.confidence_masks is not None:
                members.append((f"{key}.confidence.npy", confidence_npy(record.confidence_masks)))
            members += [(f"{key}.{suffix}", bytes(data)) for suffix, data in record.composites.items()]
        return members

    def open(self, path: Path) -> "TarShardWriter":
        return TarShardWriter(path)


class TarShardWriter:
    def __init__(self, path: Path):
        self._stream = open(path, "wb")
        self._tar = tarfile.open(fileobj=self._stream, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, members: list[tuple[str, bytes]]) -> None:
        now = int(time.time())
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), now, 0o644
            self._tar.addfile(info, io.BytesIO(data))

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        try:
            self._tar.close()  # the two zero blocks that end a tar
        finally:
            self._stream.close()

    def abort(self) -> None:
        self._stream.close()


def inputs_in(stream) -> Iterator[tuple[str, bool]]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name.endswith(".json") and member.name.count(".") == 1:
                facts = json.loads(tar.extractfile(member).read())
                yield facts["input"], facts.get("error") is None
