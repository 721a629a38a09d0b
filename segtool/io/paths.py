"""Which files to process: command-line paths, folders and path lists on stdin."""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable, Iterator, Optional, Sequence

from . import storage

# The infixes of the output contract (<stem>.<infix>.<ext>, <stem>.<frame>.<infix>.<ext>): a
# folder walk never takes such a file for an input. tests/test_output_safety.py checks that
# this covers every name outputs.planned_outputs and outputs.frame_files can produce.
OUTPUT_INFIXES = frozenset({"category", "category-color", "confidence", "blur", "replace", "cutout", "recolor", "alpha"})
# Pillow only identifies MPEG (reads its size, never its pixels): a video, not a picture.
_IDENTIFY_ONLY = frozenset({"MPEG"})


@functools.lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Every file extension the decoder (Pillow, as installed here) can read pixels from.

    Derived from Pillow's registry, so a build with AVIF or JPEG 2000 support finds those
    files too: formats it can open, minus stubs that need a handler nobody registered, EPS
    without Ghostscript, and identify-only formats. MPO opens through the JPEG plugin.
    """
    from PIL import EpsImagePlugin, Image, ImageFile

    Image.init()
    readable = {name for name, (factory, _) in Image.OPEN.items()
                if not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))}
    readable -= _IDENTIFY_ONLY
    if not EpsImagePlugin.has_ghostscript():
        readable.discard("EPS")
    if "JPEG" in readable:
        readable.add("MPO")
    return frozenset(ext for ext, name in Image.registered_extensions().items() if name in readable)


def is_output_name(name: str) -> bool:
    """Whether ``name`` is named like one of segtool's outputs or temporaries, or its ledger."""
    from .ledger import LEDGER_NAME

    parts = name.split(".")
    if len(parts) >= 3 and parts[-2].lower() in OUTPUT_INFIXES:
        return True
    return name.startswith(LEDGER_NAME) or (name.startswith(".") and ".part-" in name)


@dataclass(frozen=True)
class InputItem:
    """One input file and the relative name its outputs take (sub-folders kept for --recursive)."""

    path: Path
    name: PurePath

    @property
    def stem(self) -> PurePath:
        return self.name.with_suffix("")


def expand_inputs(items: Sequence[str], *, recursive: bool = False, stdin=None,
                  null_separated: bool = False, out_dir: Optional[Path] = None,
                  on_empty: Callable[[str], None] = lambda message: None) -> Iterator[InputItem]:
    """Inputs to process, in order: files as given, directories expanded, ``-`` read from stdin.

    A directory yields the files the decoder can read (image_extensions()), except segtool's
    own outputs: files named by the output contract, and everything under ``out_dir`` when
    that lies inside the folder walked. So a rerun never segments its own outputs, wherever
    ``-o`` points. A folder that yields nothing gets one ``on_empty`` line naming it.

    Anything that cannot be an image but was clearly meant as one is still yielded, so that it
    gets its own error instead of vanishing: a file named explicitly (an output's name too), and
    (without --recursive) a sub-folder named like an image, e.g. ``holiday.jpg/``.
    """
    for item in items:
        if storage.is_url(item) and not storage.is_remote(item):
            item = os.fspath(storage.location(item))  # file:// is a local path
        if item == "-":
            yield from _paths_from_stream(stdin or sys.stdin, null_separated)
        elif storage.is_remote(item):
            yield from _objects_at(storage.location(item), item, recursive)
        elif Path(item).is_dir():
            yield from _walk(Path(item), recursive, out_dir, on_empty)
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


def _walk(folder: Path, recursive: bool, out_dir: Optional[Path], on_empty) -> Iterator[InputItem]:
    found = 0
    for item in _images_in(folder, recursive, _excluded_folder(folder, out_dir)):
        found += 1
        yield item
    if not found:
        on_empty(_empty_line(folder, recursive))


def _images_in(folder: Path, recursive: bool, excluded: Optional[str]) -> Iterator[InputItem]:
    pattern = "**/*" if recursive else "*"
    extensions = image_extensions()
    found = (p for p in folder.glob(pattern)
             if p.suffix.lower() in extensions and not is_output_name(p.name) and _wanted(p, recursive)
             and not (excluded and _inside(p, excluded)))
    for path in sorted(found):
        yield InputItem(path, PurePath(path.relative_to(folder)))


def _excluded_folder(folder: Path, out_dir: Optional[Path]) -> Optional[str]:
    """The output folder's real path when it lies strictly inside ``folder``, else None."""
    if out_dir is None or storage.is_remote(out_dir):
        return None
    outside, inside = os.path.realpath(folder), os.path.realpath(out_dir)
    return inside if inside != outside and _inside_real(inside, outside) else None


def _inside(path: Path, folder: str) -> bool:
    # the parent's real path, not the file's: a link in the input folder to a file elsewhere stays an input
    return _inside_real(os.path.join(os.path.realpath(path.parent), path.name), folder)


def _inside_real(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _empty_line(folder: Path, recursive: bool) -> str:
    try:
        nested = not recursive and any(p.is_dir() for p in folder.iterdir())
    except OSError as exc:  # a walk that could not list the folder finds nothing, silently
        return f"{folder}: cannot read this folder ({exc.strerror})"
    hint = "; sub-folders are read with -r" if nested else ""
    return f"{folder}: no images in this folder (none of the formats segtool reads{hint})"


def _objects_at(url, text: str, recursive: bool) -> Iterator[InputItem]:
    # A URL ending in "/" or without an image extension is a prefix, listed once; anything
    # else names one object, read as it is (no request spent asking what it is).
    if not text.endswith("/") and url.suffix.lower() in image_extensions():
        yield InputItem(url, PurePath(url.name))
        return
    listed = storage.list_prefix(url, recursive=recursive)
    if not listed:  # nothing there: one error line for it, as a missing local folder gets
        yield InputItem(url, PurePath(url.name))
    for found, name in listed:
        if name.suffix.lower() in image_extensions() and not is_output_name(name.name):
            yield InputItem(found, name)


def _wanted(path: Path, recursive: bool) -> bool:
    # With --recursive a folder named like an image is descended into like any folder;
    # without it, it is reported ("is a directory") rather than silently left out, and so is
    # a broken symbolic link.
    return path.is_file() or path.is_symlink() or (not recursive and path.is_dir())
