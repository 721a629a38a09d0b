"""Which files to process: command-line paths, folders and path lists on stdin."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterator, Sequence

from . import storage

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm .pbm .jpe .jfif".split()
)


@dataclass(frozen=True)
class InputItem:
    """One input file and the relative name its outputs take (sub-folders kept for --recursive)."""

    path: Path
    name: PurePath

    @property
    def stem(self) -> PurePath:
        return self.name.with_suffix("")


def expand_inputs(items: Sequence[str], *, recursive: bool = False, stdin=None,
                  null_separated: bool = False) -> Iterator[InputItem]:
    """Inputs to process, in order: files as given, directories expanded, ``-`` read from stdin.

    A directory yields the files with an image extension. Anything that cannot be an image but
    was clearly meant as one is still yielded, so that it gets its own error instead of
    vanishing: a file named explicitly, and (without --recursive) a sub-folder named like an
    image, e.g. ``holiday.jpg/``.
    """
    for item in items:
        if storage.is_url(item) and not storage.is_remote(item):
            item = os.fspath(storage.location(item))  # file:// is a local path
        if item == "-":
            yield from _paths_from_stream(stdin or sys.stdin, null_separated)
        elif storage.is_remote(item):
            yield from _objects_at(storage.location(item), item, recursive)
        elif Path(item).is_dir():
            yield from _images_in(Path(item), recursive)
        else:
            yield InputItem(Path(item), PurePath(Path(item).name))


def _paths_from_stream(stream, null_separated: bool) -> Iterator[InputItem]:
    # Read bytes where we can: file names need not be valid UTF-8, and os.fsdecode keeps
    # undecodable bytes (as surrogates) so that the file still opens.
    raw = getattr(stream, "buffer", stream).read()
    text = os.fsdecode(raw) if isinstance(raw, bytes) else raw
    parts = text.split("\0") if null_separated else text.splitlines()
    for part in parts:
        if part.strip():
            yield InputItem(Path(part), PurePath(Path(part).name))


def _images_in(folder: Path, recursive: bool) -> Iterator[InputItem]:
    pattern = "**/*" if recursive else "*"
    found = (p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and _wanted(p, recursive))
    for path in sorted(found):
        yield InputItem(path, PurePath(path.relative_to(folder)))


def _objects_at(url, text: str, recursive: bool) -> Iterator[InputItem]:
    # A URL ending in "/" or without an image extension is a prefix, listed once; anything
    # else names one object, read as it is (no request spent asking what it is).
    if not text.endswith("/") and url.suffix.lower() in IMAGE_EXTENSIONS:
        yield InputItem(url, PurePath(url.name))
        return
    listed = storage.list_prefix(url, recursive=recursive)
    if not listed:  # nothing there: one error line for it, as a missing local folder gets
        yield InputItem(url, PurePath(url.name))
    for found, name in listed:
        if name.suffix.lower() in IMAGE_EXTENSIONS:
            yield InputItem(found, name)


def _wanted(path: Path, recursive: bool) -> bool:
    # With --recursive a folder named like an image is descended into like any folder;
    # without it, it is reported ("is a directory") rather than silently left out, and so is
    # a broken symbolic link.
    return path.is_file() or path.is_symlink() or (not recursive and path.is_dir())
