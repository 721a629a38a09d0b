"""A model file's verified sha256, remembered against what the file system says about the file.

Hashing a model on every run costs 1-10 ms per file (more on a slow disk) at every start-up.
Once a file's sha256 has matched the one recorded for it, the digest is kept in
``<models dir>/.verified-sha256`` against the file's path, size, inode, device, mtime and
ctime (nanoseconds). A later run that finds all of them unchanged trusts the digest; any change
(the file rewritten, replaced, touched, moved, chmod-ed: the kernel sets ctime, which no user can
set back) means hashing it again. A file changed within the last 2 seconds is not remembered,
since a write in the same clock tick could leave its times as they were (git's "racy" case).
The cache is a convenience: written atomically, ignored when unreadable or damaged, and never
written where the folder cannot take it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

CACHE_NAME = ".verified-sha256"  # JSON, named so that no *.json glob (install records) takes it
_RACY_NS = 2_000_000_000  # files changed this recently are hashed again next time
_MOST_ENTRIES = 64


def _identity(stat: os.stat_result) -> list:
    return [stat.st_size, stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns]


def verified_sha256(path: Path, expected: Optional[str], cache_dir: Path,
                    compute: Callable[[Path], str]) -> str:
    """``path``'s sha256: remembered if the file is unchanged since it last matched, else ``compute``-d.

    Only a digest equal to ``expected`` is remembered (a mismatch is hashed, and reported, every
    time). OSError from reading the model itself propagates.
    """
    key = os.path.abspath(path)
    stat = os.stat(path)
    entries = _read(cache_dir / CACHE_NAME)
    known = entries.get(key)
    if expected and isinstance(known, dict) and known.get("file") == _identity(stat) \
            and known.get("sha256") == expected:
        return expected
    digest = compute(path)
    if expected and digest == expected and time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > _RACY_NS:
        after = os.stat(path)
        if _identity(after) == _identity(stat):  # not rewritten while it was being hashed
            entries[key] = {"file": _identity(stat), "sha256": digest}
            _write(cache_dir / CACHE_NAME, entries)
    return digest


def _read(cache: Path) -> dict:
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, truncated, not UTF-8: as if empty
        return {}
    return entries if isinstance(entries, dict) else {}


def _write(cache: Path, entries: dict) -> None:
    # Entries of files that are gone are dropped, and the file stays small whatever happens.
    kept = {k: v for k, v in entries.items() if os.path.exists(k)}
    kept = dict(list(kept.items())[-_MOST_ENTRIES:])
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(kept, indent=0), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:  # a read-only or full models folder: the next run hashes again, nothing worse
        try:
            tmp.unlink()
        except OSError:
            pass
