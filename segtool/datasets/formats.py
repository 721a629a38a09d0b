"""The shard formats by name; each module is imported only when its format is used."""
from __future__ import annotations

import importlib
import importlib.util

from ..errors import UsageError

KINDS = ("parquet", "webdataset", "coco")
_MODULES = {"parquet": ("parquet", "ParquetFormat"), "webdataset": ("webdataset", "WebDatasetFormat"),
            "coco": ("coco", "CocoFormat")}
_EXTENSIONS = {"parquet": "parquet", "webdataset": "tar", "coco": "jsonl"}
# What each format needs beyond segtool's own dependencies, for the error that names the fix.
_NEEDS = {"parquet": "pyarrow", "webdataset": None, "coco": "pycocotools"}


def extension(kind: str) -> str:
    check_kind(kind)
    return _EXTENSIONS[kind]


def kind_of(extension: str):
    return next((kind for kind, ext in _EXTENSIONS.items() if ext == extension), None)


def check_kind(kind: str) -> None:
    if kind not in _MODULES:
        raise UsageError(f"{kind!r}: not a dataset format (choose from {', '.join(KINDS)})")


def shard_format(kind: str, options):
    """The format object for ``kind``: encode(record), open(temporary path), inputs_in(stream)."""
    check_kind(kind)
    needed = _NEEDS[kind]
    if needed is not None and importlib.util.find_spec(needed) is None:
        raise UsageError(f"--dataset {kind} needs {needed}: pip install 'segtool[dataset]'")
    module, name = _MODULES[kind]
    return getattr(importlib.import_module(f".{module}", __package__), name)(options)


def shard_inputs(kind: str, stream):
    """(input, succeeded) for every record of a finished ``kind`` shard read from ``stream``."""
    check_kind(kind)
    module, _ = _MODULES[kind]
    return importlib.import_module(f".{module}", __package__).inputs_in(stream)
