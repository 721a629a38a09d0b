"""Which files to process: command-line paths, folders and path lists on stdin."""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable, Iterator, Optional, Sequence

from ..errors import InputError, UsageError, first_line
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


# ---- manifests ---------------------------------------------------------------------------------

_PARQUET_MANIFEST = re.compile(r"^(?P<file>.+\.parquet)(?::(?P<column>[^/:]+))?$", re.IGNORECASE)
# Without :COLUMN, the first of these a Parquet manifest has is taken (then its only text column).
MANIFEST_COLUMNS = ("input", "path", "url", "key", "file_name", "filename", "image")
_MANIFEST_BATCH = 8192  # Parquet rows read at once: the most of a manifest held in memory


def inputs_from_manifest(spec: str) -> Iterator[InputItem]:
    """The inputs a manifest lists, read lazily (never held as a list, so ten million lines
    cost what one batch does), in its order.

    ``spec``: a text file (a local path, file:// or object-store URL; ``.gz`` read through gzip)
    with one path or URL a line, blank lines skipped; or ``FILE.parquet[:COLUMN]``, a Parquet
    file read in batches of one column: COLUMN, else the first of MANIFEST_COLUMNS it has, else
    its only string column. Relative paths are relative to the working folder, as for a list on
    stdin. An InputError when the manifest cannot be read, a UsageError for a missing column.
    """
    found = _PARQUET_MANIFEST.match(spec)
    if found:
        return _parquet_manifest(found["file"], found["column"], spec)
    return _text_manifest(spec)


def _manifest_location(text: str):
    return storage.location(text) if storage.is_url(text) else Path(text)


def _text_manifest(spec: str) -> Iterator[InputItem]:
    import gzip

    with _open_manifest(spec) as stream:
        lines = gzip.GzipFile(fileobj=stream) if spec.lower().endswith(".gz") else stream
        try:
            for line in lines:
                # bytes, so names need not be valid UTF-8 (fsdecode keeps them, as for stdin lists)
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield _listed_item(os.fsdecode(line))
        except (OSError, EOFError) as exc:  # a damaged .gz, a connection lost mid-read
            raise InputError(f"{spec}: cannot read this manifest ({first_line(exc)})") from exc


def _parquet_manifest(file: str, column: Optional[str], spec: str) -> Iterator[InputItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _open_manifest(file) as stream:
        try:
            table = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{file}: not a Parquet file ({first_line(exc)})") from exc
        name = _manifest_column(table.schema_arrow, column, spec)
        for batch in table.iter_batches(columns=[name], batch_size=_MANIFEST_BATCH):
            for value in batch.column(0).to_pylist():
                if isinstance(value, bytes):
                    value = os.fsdecode(value)
                if value and value.strip():
                    yield _listed_item(value)


def _manifest_column(schema, column: Optional[str], spec: str) -> str:
    import pyarrow as pa

    texts = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
             or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if column is not None:
        if column not in schema.names:
            raise UsageError(f"{spec}: no column {column!r} (it has: {', '.join(schema.names)})")
        if column not in texts:
            raise UsageError(f"{spec}: column {column!r} holds {schema.field(column).type}, not paths or URLs")
        return column
    chosen = next((n for n in MANIFEST_COLUMNS if n in texts), None) or (texts[0] if len(texts) == 1 else None)
    if chosen is None:
        raise UsageError(f"{spec}: say which column holds the paths or URLs, e.g. {spec}:COLUMN "
                         f"(text columns: {', '.join(texts) or 'none'})")
    return chosen


@contextlib.contextmanager
def _open_manifest(text: str):
    place = _manifest_location(text)
    try:
        stream = place.fs.open(place.path, "rb") if storage.is_remote(place) else open(place, "rb")
    except FileNotFoundError as exc:
        raise InputError(f"{text}: no such manifest file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{text}: is a folder, not a manifest file") from exc
    except OSError as exc:
        raise InputError(f"{text}: cannot open this manifest ({first_line(exc)})") from exc
    with stream:
        yield stream


def _listed_item(text: str) -> InputItem:
    if storage.is_url(text):
        place = storage.location(text)  # file:// is a local path
        return InputItem(place, PurePath(place.name))
    return InputItem(Path(text), PurePath(Path(text).name))
