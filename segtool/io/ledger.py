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
- Entries are whole lines (far under PIPE_BUF) appended with O_APPEND in one write. Each starts
  with a newline, so a line torn by a full disk or a power cut stays a line of its own, which is
  skipped when read.
- Any number of threads, processes, Ray actors or machines may write one folder. Appending an
  entry and renaming its file into place happen under an exclusive lock on a second hidden file,
  ``.segtool-written.lock`` (never replaced, so every writer locks the same file), and so does
  compaction, which rewrites the ledger with only the entries whose file is in place: it reads
  the ledger with no append in flight and no entry waiting for its rename, so it cannot drop
  one. Exclusive rather than shared for appends: on NFS, O_APPEND is not atomic between
  machines, and taking and releasing a lock is what makes an NFS client re-read and flush.
  Where the file system refuses locks, appends go on unlocked and the ledger is never compacted.
- Reruns append a line per file each time: compaction keeps the ledger at most about twice the
  files it vouches for (and no shorter than ``COMPACT_AFTER_LINES``).
- The inode tells a file segtool wrote from one copied over it with ``cp -p`` (same size and
  mtime). Storage without inodes can use 0 there and still compare size and mtime.
- What a process remembers of a folder's ledger is one 8-byte hash per entry (name and
  fingerprint, ``segtool.hashset``), so a folder of a million outputs costs ~10 MB, not the
  hundreds a set of names would; reading and compacting stream the ledger line by line. A hash
  shared by two entries (2**-64 a pair) could vouch for a file it should not; a hash not in
  memory never refuses a file by itself: a miss reads the ledger again.
- The ledger lives beside the files it describes, so it moves with the folder and works on any
  storage that can append to a file; it is hidden and never taken for an input.

``may_replace`` / ``record_written`` are the pair other storage backends implement.
``SEGTOOL_LEDGER_COMPACT_AFTER`` overrides ``COMPACT_AFTER_LINES`` (0: never compact).
"""
from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import stat
import threading
from pathlib import Path
from typing import Iterable, Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

import numpy as np

from ..hashset import HashSet, key_of
from . import storage

LEDGER_NAME = ".segtool-written"
LOCK_NAME = LEDGER_NAME + ".lock"  # what writers lock; the ledger itself is replaced by compaction

Fingerprint = tuple[int, int, int]  # size, mtime_ns, inode

# A ledger longer than this, and more than twice as long as the files it still vouches for
# (reruns append a line per file each time), is rewritten with only the live entries.
COMPACT_AFTER_LINES = 4096

_lock = threading.Lock()  # threads of one process take turns (a POSIX lock is the process's)
_known: dict[str, HashSet] = {}  # folder (real path) -> key_of(name, *fingerprint) of its ledger's entries
_lines: dict[str, int] = {}  # folder (real path) -> lines its ledger holds, as far as we know
_live: dict[str, int] = {}  # folder (real path) -> files its ledger vouched for at the last compaction


_TOO_LONG = os.strerror(errno.ENAMETOOLONG)


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
        if exc.errno == errno.ENAMETOOLONG:
            return _TOO_LONG
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
    if reason is _TOO_LONG:
        return f"{path}: cannot write ({reason}: the name is {len(os.fsencode(Path(path).name))} bytes)"
    return f"{path}: {reason}; not overwriting it (move it away or choose another --output)"


def record_written(finished, path) -> None:
    """Record the finished file ``finished`` in ``path``'s folder, then rename it to ``path``.

    Both under the folder's ledger lock, so a compaction (which keeps only the entries whose file
    is in place) never falls between them. An OSError means the ledger cannot be written or the
    rename failed; the caller treats it like any failed write (a recorded entry whose file never
    appeared matches nothing).
    """
    path = Path(path)
    print_ = fingerprint(os.stat(finished))
    # \udcXX keeps undecodable bytes; the leading newline ends a line a full disk may have torn
    line = ("\n" + json.dumps([os.fsdecode(path.name), *print_]) + "\n").encode("ascii")
    folder = _key(path.parent)
    with _lock, _locked(folder) as locked:
        entries = _entries(folder)
        _append(folder, line)
        os.replace(finished, path)
        entries.add(key_of(path.name, *print_))
        _lines[folder] = _lines.get(folder, 0) + 1
        if locked and compaction_due(folder):
            _compact(folder)


def compact_after() -> int:
    """The fewest lines a ledger has before it is compacted; 0 means never."""
    value = os.environ.get("SEGTOOL_LEDGER_COMPACT_AFTER", "")
    return int(value) if value.strip().isdigit() else COMPACT_AFTER_LINES


def compaction_due(folder: str) -> bool:
    threshold = compact_after()
    lines = _lines.get(folder, 0)
    return threshold > 0 and lines > threshold and lines > 2 * _live.get(folder, 0)


def _append(folder: str, line: bytes) -> None:
    descriptor = os.open(os.path.join(folder, LEDGER_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.write(descriptor, line) != len(line):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _locked(folder: str) -> Iterator[bool]:
    """Hold the folder's ledger lock (exclusive, between processes and machines) for the block;
    yields whether it is held: False where the file system takes no locks."""
    try:
        descriptor = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False  # a folder we cannot add the lock file to fails at the append, with its reason
        return
    try:
        held = _lock_file(descriptor)
        yield held
    finally:
        os.close(descriptor)  # releases the lock


def _lock_file(descriptor: int) -> bool:
    try:
        if fcntl is not None:
            # flock: per open file; Linux's NFS client maps it to a POSIX lock the server shares
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        else:  # Windows: a lock on the first byte, retried while another process holds it
            while True:
                try:
                    msvcrt.locking(descriptor, msvcrt.LK_LOCK, 1)
                    break
                except OSError as exc:
                    if exc.errno != errno.EDEADLK:
                        raise
    except OSError:
        return False
    return True


def _recorded(path: Path, print_: Fingerprint) -> bool:
    folder = _key(path.parent)
    key = key_of(path.name, *print_)
    with _lock:
        if key in _entries(folder):
            return True
        # Another run may have written it since this one read the ledger: read it again.
        _known[folder], _lines[folder] = _read(folder)
        return key in _known[folder]


def _key(folder: Path) -> str:
    # One entry however the folder is spelled (./out, out/, a symbolic link to it).
    return os.path.realpath(folder)


def _entries(folder: str) -> HashSet:
    if folder not in _known:
        _known[folder], _lines[folder] = _read(folder)
    return _known[folder]


def _read(folder: str) -> tuple[HashSet, int]:
    """The keys of the ledger's entries, and how many lines it holds (as far as it reads)."""
    keys, lines = array.array("Q"), 0
    with contextlib.suppress(OSError):  # a read that fails part way: what was read stands
        for name, print_ in _entries_in(folder):
            lines += 1
            if name is not None:
                keys.append(key_of(name, *print_))
    return HashSet(np.frombuffer(keys, np.uint64) if keys else ()), lines


def _entries_in(folder: str) -> Iterator[tuple[Optional[str], Fingerprint]]:
    """(name, fingerprint) of each line of the folder's ledger, read as a stream; (None, ...)
    for a line that vouches for nothing. No ledger (or none that opens): no lines; a read
    failing part way raises OSError, so that compaction never writes a ledger read in part."""
    try:
        stream = open(os.path.join(folder, LEDGER_NAME), "rb")
    except OSError:
        return
    with stream:
        for line in stream:
            if line.strip():
                yield _parse(line) or (None, (0, 0, 0))


def _compact(folder: str) -> None:
    """Rewrite the ledger with only the entries that match the file now there (lock held).

    It reads the ledger afresh: other processes append too. One pass, writing the live lines
    to the new ledger as it goes, remembering 8 bytes an entry. Best effort: a ledger that
    cannot be rewritten stays as it is, and is still right.
    """
    ledger = os.path.join(folder, LEDGER_NAME)
    temporary = ledger + ".new"  # one name is enough: only the lock's holder writes it
    every, live, kept, lines = array.array("Q"), array.array("Q"), HashSet(), 0
    try:
        with open(temporary, "wb") as stream:
            for name, print_ in _entries_in(folder):
                lines += 1
                if name is None:
                    continue
                every.append(key_of(name, *print_))
                if key_of(name) not in kept and _current(folder, name) == print_:
                    kept.add(key_of(name))
                    live.append(every[-1])
                    stream.write(_line(name, print_))
            stream.flush()
            os.fsync(stream.fileno())  # the new ledger is whole on disk before it replaces the old
        _known[folder], _lines[folder], _live[folder] = HashSet(np.frombuffer(every, np.uint64) if every else ()), lines, len(live)
        if not (lines > compact_after() and lines > 2 * len(live)):
            os.remove(temporary)
            return  # not worth it (yet, or any more: another process compacted it meanwhile)
        os.replace(temporary, ledger)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        return
    _known[folder], _lines[folder] = HashSet(np.frombuffer(live, np.uint64) if live else ()), len(live)


def _current(folder: str, name: str) -> Optional[Fingerprint]:
    try:
        return fingerprint(os.lstat(os.path.join(folder, name)))
    except (OSError, ValueError):
        return None


def _line(name: str, print_: Fingerprint) -> bytes:
    return (json.dumps([name, *print_]) + "\n").encode("ascii")


def _parse(line: bytes) -> Optional[tuple[str, Fingerprint]]:
    # Lines torn by a power cut, or edited by hand, are skipped: they vouch for nothing.
    try:
        name, size, mtime_ns, inode = json.loads(line)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not all(type(n) is int for n in (size, mtime_ns, inode)):
        return None
    return name, (size, mtime_ns, inode)
