"""Which files segtool wrote, so that a rerun replaces its own outputs and never a user's file.

Each output folder keeps a hidden ledger, ``.segtool-written``: one JSON line per file segtool
wrote there, ``[name, size, mtime_ns, inode]``. A path may be replaced when nothing is there,
or when what is there is a regular file whose name and fingerprint are in its folder's ledger:
segtool wrote it and nobody changed it since. Anything else (a user's photo, a file edited or
copied over since, a symbolic link, a folder) is never replaced.

Why this shape:
- The entry is taken from the finished temporary file just before the atomic rename (a rename
  keeps size, mtime and inode), so there is no moment at which a finished output of segtool's
  is unrecorded. A run killed between the two leaves an entry that matches no file.
- Entries are whole lines appended with O_APPEND in one write: threads and concurrent runs
  never interleave. Each starts with a newline, so a line torn by a full disk or a power cut
  stays a line of its own, which is skipped when read.
- The inode tells a file segtool wrote from one copied over it with ``cp -p`` (same size and
  mtime). Storage without inodes can use 0 there and still compare size and mtime.
- The ledger lives beside the files it describes, so it moves with the folder and works on any
  storage that can append to a file; it is hidden and never taken for an input.

``may_replace`` / ``record_written`` are the pair other storage backends implement.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Iterable, Optional

from . import storage

LEDGER_NAME = ".segtool-written"

Fingerprint = tuple[int, int, int]  # size, mtime_ns, inode

# A ledger longer than this, and more than twice as long as the files it still vouches for
# (reruns append a line per file each time), is rewritten with only the live entries.
COMPACT_AFTER_LINES = 4096

_lock = threading.Lock()
_known: dict[str, dict[str, set[Fingerprint]]] = {}  # folder (real path) -> name -> fingerprints


def fingerprint(info: os.stat_result) -> Fingerprint:
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def file_identity(path) -> Optional[tuple[int, int]]:
    """(device, inode) of the file ``path`` names (links followed); None when there is none."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def identities(paths) -> frozenset:
    """(device, inode) of each local file among ``paths`` (others, and None, are left out):
    what a run reads, and so never writes over."""
    return frozenset(filter(None, (file_identity(p) for p in paths if isinstance(p, Path) and not storage.is_remote(p))))


def may_replace(path) -> bool:
    """Whether an output may be written at ``path``: nothing is there, or segtool's own file."""
    return foreign_reason(path) is None


def written_by_segtool(path) -> bool:
    """Whether ``path`` is a whole output segtool wrote and nobody changed since."""
    return os.path.lexists(path) and may_replace(path)


def foreign_reason(path) -> Optional[str]:
    """Why ``path`` holds something segtool must not replace; None when it may write there."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing there (a parent that is a file fails when the folder is made)
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    return None if _recorded(Path(path), fingerprint(info)) else "exists and segtool did not write it"


def overwrite_problem(path, protected: Iterable[tuple[int, int]] = ()) -> Optional[str]:
    """The one line refusing to write ``path``, or None.

    ``protected``: (device, inode) of this run's inputs, which are never written over even when
    an earlier run of segtool wrote them.
    """
    if storage.is_remote(path):
        return storage.remote_overwrite_problem(path)
    if protected and file_identity(path) in protected:
        return f"{path}: is an input of this run; not overwriting it (choose another --output)"
    reason = foreign_reason(path)
    if reason is None:
        return None
    return f"{path}: {reason}; not overwriting it (move it away or choose another --output)"


def record_written(finished, path) -> None:
    """Note in ``path``'s folder that the finished file ``finished`` is about to become ``path``.

    Call it right before renaming ``finished`` to ``path``; an OSError means the ledger cannot
    be written (the caller treats it like any failed write).
    """
    path = Path(path)
    print_ = fingerprint(os.stat(finished))
    # \udcXX keeps undecodable bytes; the leading newline ends a line a full disk may have torn
    line = "\n" + json.dumps([os.fsdecode(path.name), *print_]) + "\n"
    folder = _key(path.parent)
    with _lock:
        entries = _entries(folder)
        descriptor = os.open(os.path.join(folder, LEDGER_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode("ascii"))
        finally:
            os.close(descriptor)
        entries.setdefault(path.name, set()).add(print_)


def _recorded(path: Path, print_: Fingerprint) -> bool:
    folder = _key(path.parent)
    with _lock:
        if print_ in _entries(folder).get(path.name, ()):
            return True
        # Another run may have written it since this one read the ledger: read it again.
        _known[folder] = _read(folder)[0]
        return print_ in _known[folder].get(path.name, ())


def _key(folder: Path) -> str:
    # One entry however the folder is spelled (./out, out/, a symbolic link to it).
    return os.path.realpath(folder)


def _entries(folder: str) -> dict[str, set[Fingerprint]]:
    if folder not in _known:
        entries, lines = _read(folder)
        if lines > COMPACT_AFTER_LINES and lines > 2 * len(entries):
            entries = _compact(folder, entries)
        _known[folder] = entries
    return _known[folder]


def _read(folder: str) -> tuple[dict[str, set[Fingerprint]], int]:
    """The ledger's entries by name, and how many lines it holds."""
    entries: dict[str, set[Fingerprint]] = {}
    try:
        with open(os.path.join(folder, LEDGER_NAME), "rb") as stream:
            lines = [line for line in stream.read().splitlines() if line]
    except OSError:
        return entries, 0
    for line in lines:
        entry = _parse(line)
        if entry is not None:
            entries.setdefault(entry[0], set()).add(entry[1])
    return entries, len(lines)


def _compact(folder: str, entries: dict[str, set[Fingerprint]]) -> dict[str, set[Fingerprint]]:
    """Keep only the entries that match the file now there, rewriting the ledger atomically.

    A line another run appends meanwhile is lost: that file then counts as not segtool's, the
    safe side. Best effort: a ledger that cannot be rewritten stays as it is.
    """
    live = {}
    for name, prints in entries.items():
        try:
            current = fingerprint(os.lstat(os.path.join(folder, name)))
        except OSError:
            continue
        if current in prints:
            live[name] = {current}
    ledger = os.path.join(folder, LEDGER_NAME)
    temporary = f"{ledger}.part-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="ascii") as stream:
            stream.writelines(json.dumps([name, *print_]) + "\n" for name, (print_,) in live.items())
        os.replace(temporary, ledger)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        return entries
    return live


def _parse(line: bytes) -> Optional[tuple[str, Fingerprint]]:
    # Lines torn by a power cut, or edited by hand, are skipped: they vouch for nothing.
    try:
        name, size, mtime_ns, inode = json.loads(line)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not all(type(n) is int for n in (size, mtime_ns, inode)):
        return None
    return name, (size, mtime_ns, inode)
