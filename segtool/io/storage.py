"""Where inputs and outputs live: local paths, or object-store URLs through fsspec.

A location is a ``pathlib.Path`` for local files (``file://`` URLs included) and a
``upath.UPath`` for anything else (``s3://``, ``gs://``, ...), so that the pipeline's path
arithmetic (``/``, ``.name``, ``.parent``, ``.with_name``) is the same for both.

What object stores get instead of a file system's guarantees:
- a prefix is listed once (one paginated listing, not a request per file), for the input walk
  and for ``--skip-existing``, whose existence checks come from that listing;
- an output is written to a local temporary and uploaded whole: an object appears complete or
  not at all, so there is no ``.part`` object to rename or to leave behind.

fsspec and universal_pathlib are imported only when a URL is used: local runs never need them.
Credentials come the usual ways (AWS_* variables, ~/.aws, GOOGLE_APPLICATION_CREDENTIALS, an
instance role); ``AWS_ENDPOINT_URL`` points s3:// at any S3-compatible server.
"""
from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path, PurePath
from typing import Iterator, Optional, Union

from ..errors import InputError, OutputError, first_line

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_LOCAL_PROTOCOLS = ("file", "local")

# Per-process listings of output prefixes, for existence checks: {prefix URL: names in it}.
_LISTED: dict[str, frozenset] = {}
_LISTED_LOCK = threading.Lock()
# Whether segtool uploaded an object (its mark), for the objects asked about last.
_MARKS: collections.OrderedDict = collections.OrderedDict()
MARKS_KEPT = 4096


def is_url(text) -> bool:
    return isinstance(text, str) and bool(_URL.match(text))


def is_remote(location) -> bool:
    """True for an object-store location (anything fsspec reaches that is not a local file)."""
    if is_url(location):
        return location.split("://", 1)[0].lower() not in _LOCAL_PROTOCOLS
    return not isinstance(location, (str, bytes, PurePath)) and hasattr(location, "fs")


def location(text: Union[str, os.PathLike]):
    """A Path for local names and file:// URLs, a UPath for object-store URLs."""
    if not is_url(text):
        return text if is_remote(text) else Path(text)
    protocol, rest = text.split("://", 1)
    if protocol.lower() in _LOCAL_PROTOCOLS:
        return Path(rest if rest.startswith("/") else "/" + rest)
    try:
        from upath import UPath
    except ImportError as exc:
        from ..errors import UsageError

        raise UsageError(f"{text}: object-store URLs need fsspec: pip install 'segtool[ray]'") from exc
    return UPath(text)


# ---- listing -------------------------------------------------------------------------------

def list_prefix(prefix, *, recursive: bool) -> list[tuple[object, PurePath]]:
    """Every object under ``prefix`` (one listing) as (location, name relative to the prefix).

    Without ``recursive`` only the prefix's own level, "sub-folders" included (so that one
    named like an image gets its own error instead of vanishing, as with local folders).
    """
    fs, root = prefix.fs, prefix.path.rstrip("/")
    try:
        # Names only (no detail dicts): a listing of millions of keys stays a list of strings.
        found = fs.find(root) if recursive else fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"{prefix}: cannot list ({first_line(exc)})") from exc
    entries = []
    for name in sorted(found):
        relative = PurePath(name.rstrip("/")[len(root):].lstrip("/"))
        if str(relative) not in ("", "."):
            entries.append((prefix / relative.as_posix(), relative))
    return entries


def _listing(prefix) -> frozenset:
    key = str(prefix)
    with _LISTED_LOCK:
        if key not in _LISTED:
            try:
                names = prefix.fs.ls(prefix.path, detail=True, refresh=True)
            except FileNotFoundError:
                names = []
            _LISTED[key] = frozenset(e["name"] for e in names if e.get("type") != "directory")
        return _LISTED[key]


# ---- reading and writing ---------------------------------------------------------------------

def read_bytes(path) -> bytes:
    """The whole object; an InputError naming it when it cannot be read."""
    try:
        data = path.fs.cat_file(path.path)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such object") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a prefix (a folder), not an image") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: access denied") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({first_line(exc)})") from exc
    if not data:
        raise InputError(f"{path}: empty object (0 bytes)")
    return data


@contextlib.contextmanager
def whole_upload(path) -> Iterator[Path]:
    """Yield a local temporary file; upload it as ``path`` in one piece if the block succeeds.

    The temporary has the object's own name (so the upload's content type is right) inside a
    private folder that is always removed, whatever ends the block.
    """
    folder = Path(tempfile.mkdtemp(prefix="segtool-upload-"))
    try:
        tmp = folder / path.name
        yield tmp
        try:
            path.fs.put_file(str(tmp), path.path, **_marker(path.fs))
        except OSError as exc:
            raise OutputError(f"{path}: cannot upload ({first_line(exc)})") from exc
        _remember_written(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---- can outputs be written there? -----------------------------------------------------------

PROBE_NAME = ".segtool-write-check"
_WRITABLE: set[str] = set()  # prefixes found writable by this process


def check_writable(prefix) -> None:
    """An OutputError, before any work, when objects cannot be written under ``prefix``: the
    bucket does not exist, cannot be reached, or refuses this identity's writes.

    The honest check is a write: one empty object, ``PROBE_NAME`` under the prefix, removed at
    once (two requests per run and prefix). Asking whether the bucket exists would not tell a
    read-only identity from one that may write.
    """
    key = str(prefix).rstrip("/")
    with _LISTED_LOCK:
        if any(key == known or key.startswith(known + "/") for known in _WRITABLE):
            return  # (a sub-prefix of one found writable: per item, the outputs' own sub-folders)
    probe = prefix.path.rstrip("/") + "/" + PROBE_NAME
    try:
        prefix.fs.pipe_file(probe, b"")
    except FileNotFoundError as exc:
        raise OutputError(f"{prefix}: no such bucket ({_bucket(prefix)}); create it or choose another --output") from exc
    except PermissionError as exc:
        raise OutputError(f"{prefix}: access denied: cannot write objects there") from exc
    except OSError as exc:
        raise OutputError(f"{prefix}: cannot write there ({first_line(exc)})") from exc
    with contextlib.suppress(OSError):  # an identity that may write but not delete keeps one empty object
        prefix.fs.rm_file(probe)
    with _LISTED_LOCK:
        _WRITABLE.add(key)
        _LISTED.pop(str(prefix), None)  # a listing taken before the probe is stale now


def _bucket(prefix) -> str:
    return prefix.path.lstrip("/").split("/", 1)[0]


# Object stores have no ledger file to append to: each object segtool uploads carries this in
# its user metadata instead, and an existing object without it is never replaced.
_MARK = ("written-by", "segtool")


def _marker(fs) -> dict:
    """put_file's keyword for user metadata on stores whose fsspec driver takes one (S3, GCS)."""
    protocols = set(fs.protocol) if isinstance(fs.protocol, (tuple, list)) else {fs.protocol}
    if protocols & {"s3", "s3a"}:
        return {"Metadata": dict([_MARK])}
    if protocols & {"gs", "gcs"}:
        return {"metadata": dict([_MARK])}
    return {}


def remote_overwrite_problem(path) -> Optional[str]:
    """The line refusing to upload ``path``, or None: nothing there (from the prefix's one
    listing), or an object segtool uploaded (its metadata, asked only for objects that exist)."""
    if path.path not in _listing(path.parent) or _marked(path):
        return None
    return f"{path}: an object segtool did not write is there; not overwriting it (move it away or choose another --output)"


def remote_written_by_segtool(path) -> bool:
    """Whether the object at ``path`` is there (the prefix's one listing) and segtool uploaded
    it (its mark): what --skip-existing skips, as the ledger decides for a local file."""
    return path.path in _listing(path.parent) and _marked(path)


def _marked(path) -> bool:
    """Whether segtool uploaded the object at ``path``: asked of the store once (settling an
    input asks twice in a row: skip, then refuse), remembered for the last MARKS_KEPT objects."""
    key = str(path)
    with _LISTED_LOCK:
        if key in _MARKS:
            return _MARKS[key]
    marked = _ask_mark(path)
    _remember_mark(key, marked)
    return marked


def _remember_mark(key: str, marked: bool) -> None:
    with _LISTED_LOCK:
        _MARKS[key] = marked
        while len(_MARKS) > MARKS_KEPT:
            _MARKS.popitem(last=False)


def _ask_mark(path) -> bool:
    try:
        if hasattr(path.fs, "metadata"):  # s3fs: the object's user metadata
            metadata = path.fs.metadata(path.path)
        else:  # gcsfs keeps it in info()
            metadata = path.fs.info(path.path).get("metadata") or {}
    except (OSError, ValueError):
        return False
    return {k.lower(): v for k, v in (metadata or {}).items()}.get(_MARK[0]) == _MARK[1]


def _remember_written(path) -> None:
    _remember_mark(str(path), True)
    key = str(path.parent)
    with _LISTED_LOCK:
        if key in _LISTED:
            _LISTED[key] = _LISTED[key] | {path.path}
