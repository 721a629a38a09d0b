"""Which inputs the complete shards of an output hold, so a rerun does only the rest.

Each shard, once complete, gets a sidecar index object ``.segtool-index/<shard name>.idx``
beside it, written (atomically, or uploaded whole) right after the shard itself:

    b"SEGTOOL-INDEX-1\\n", uint64 LE count of records that succeeded, uint64 LE count of
    error records, then 16 bytes per record: BLAKE2b-128 of its input (records.input_digest),
    the succeeded ones first.

A rerun reads them with one listing of the output and one of ``.segtool-index`` (a few hundred
names for millions of inputs, never a key per input), then one read per index object. A shard
whose index is missing (its writer was killed between the two) or unreadable is read itself
instead, so a complete shard always counts; an index whose shard is gone counts for nothing.

In memory the digests are two sorted uint64 arrays: 16 bytes per input held (160 MB for ten
million), about 40 bytes per input for a moment while they are sorted.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from ..errors import SegtoolError
from ..io import storage
from .formats import KINDS, extension, kind_of, shard_inputs
from .records import input_digest

INDEX_FOLDER = ".segtool-index"
INDEX_SUFFIX = ".idx"
_MAGIC = b"SEGTOOL-INDEX-1\n"
_COUNTS = struct.Struct("<QQ")
# shard-<host>-<pid>-<random>-<number>.<extension>: what sink.py names the shards it writes
SHARD_NAME = re.compile(r"^shard-[A-Za-z0-9-]+-[0-9]{5,}\.(parquet|tar|jsonl)$")
_READERS = 16  # index objects read at once from an object store


def index_bytes(succeeded: Iterable[bytes], failed: Iterable[bytes]) -> bytes:
    succeeded, failed = b"".join(succeeded), b"".join(failed)
    return _MAGIC + _COUNTS.pack(len(succeeded) // 16, len(failed) // 16) + succeeded + failed


def parse_index(data: bytes) -> Optional[tuple[bytes, bytes]]:
    """(succeeded digests, failed digests) as packed bytes; None for anything damaged."""
    head = len(_MAGIC) + _COUNTS.size
    if len(data) < head or not data.startswith(_MAGIC):
        return None
    succeeded, failed = _COUNTS.unpack_from(data, len(_MAGIC))
    if len(data) != head + 16 * (succeeded + failed):
        return None
    return data[head:head + 16 * succeeded], data[head + 16 * succeeded:]


class DigestSet:
    """16-byte digests as two sorted uint64 arrays: 16 bytes each, membership by binary search."""

    def __init__(self, packed: Iterable[bytes] = ()):
        chunks = [c for c in packed if c]
        pairs = np.empty((sum(len(c) for c in chunks) // 16, 2), np.uint64)
        at = 0
        for chunk in chunks:
            rows = len(chunk) // 16
            pairs[at:at + rows] = np.frombuffer(chunk, ">u8").reshape(rows, 2)
            at += rows
        order = np.argsort(pairs[:, 0], kind="stable")
        self._high = np.ascontiguousarray(pairs[order, 0])
        self._low = np.ascontiguousarray(pairs[order, 1])

    def __len__(self) -> int:
        return len(self._high)

    @property
    def nbytes(self) -> int:
        return self._high.nbytes + self._low.nbytes

    def __contains__(self, digest: bytes) -> bool:
        high, low = struct.unpack(">QQ", digest)
        start = int(np.searchsorted(self._high, np.uint64(high), "left"))
        # two digests sharing their first 8 bytes: about one pair in 1e11 at ten million inputs
        for at in range(start, len(self._high)):
            if self._high[at] != high:
                return False
            if self._low[at] == low:
                return True
        return False


class ShardIndex:
    """The inputs that have a record in a complete shard of one output (any format there)."""

    def __init__(self, succeeded: DigestSet, failed: DigestSet, shards: int = 0, rebuilt: int = 0):
        self.succeeded = succeeded
        self.failed = failed
        self.shards = shards  # complete shards found
        self.rebuilt = rebuilt  # of which the index was read from the shard itself

    @classmethod
    def empty(cls) -> "ShardIndex":
        return cls(DigestSet(), DigestSet())

    @classmethod
    def load(cls, out, kind: Optional[str] = None) -> "ShardIndex":
        """Read the index of the shards in ``out`` (a folder or object-store prefix; str, Path or
        UPath); ``kind`` limits it to one format's shards. Nothing there: an empty index."""
        folder = storage.location(out) if isinstance(out, str) else out
        wanted = {extension(kind)} if kind else {extension(k) for k in KINDS}
        shards = [n for n in _names_in(folder) if SHARD_NAME.match(n) and n.rsplit(".", 1)[1] in wanted]
        indexed = set(_names_in(folder / INDEX_FOLDER))
        with ThreadPoolExecutor(_READERS if storage.is_remote(folder) else 1) as pool:
            found = list(pool.map(lambda name: _shard_digests(folder, name, indexed), shards))
        rebuilt = sum(1 for _, _, from_shard in found if from_shard)
        return cls(DigestSet(s for s, _, _ in found), DigestSet(f for _, f, _ in found), len(shards), rebuilt)

    @property
    def nbytes(self) -> int:
        return self.succeeded.nbytes + self.failed.nbytes

    def __len__(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def __contains__(self, input) -> bool:
        """Whether ``input`` (str(item.path), as ShardRecord.input) has a record, good or failed."""
        digest = input_digest(str(input))
        return digest in self.succeeded or digest in self.failed

    def has_succeeded(self, input) -> bool:
        return input_digest(str(input)) in self.succeeded

    def missing(self, items: Iterable, *, retry_failed: bool = False) -> Iterator:
        """The items (InputItems, paths or strings) without a record, lazily, in order; with
        ``retry_failed`` the inputs whose only records are errors too."""
        for item in items:
            digest = input_digest(str(getattr(item, "path", item)))
            if digest in self.succeeded or (not retry_failed and digest in self.failed):
                continue
            yield item


def _names_in(folder) -> list[str]:
    if storage.is_remote(folder):
        return [str(name) for _, name in storage.list_prefix(folder, recursive=False)]
    with contextlib.suppress(OSError):
        return [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    return []


def _shard_digests(folder, name: str, indexed: set) -> tuple[bytes, bytes, bool]:
    """(succeeded, failed, read from the shard itself) for one complete shard."""
    if name + INDEX_SUFFIX in indexed:
        parsed = parse_index(_read(folder / INDEX_FOLDER / (name + INDEX_SUFFIX)))
        if parsed is not None:
            return (*parsed, False)
    succeeded, failed = bytearray(), bytearray()
    # a shard damaged since it was written vouches only for the records read before the damage
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, tarfile.TarError):
        with _open(folder / name) as stream:
            for input, ok in shard_inputs(kind_of(name.rsplit(".", 1)[1]), stream):
                (succeeded if ok else failed).extend(input_digest(input))
    return bytes(succeeded), bytes(failed), True


def _read(location) -> bytes:
    try:
        return storage.read_bytes(location) if storage.is_remote(location) else Path(location).read_bytes()
    except (OSError, SegtoolError):  # unreadable: the shard itself is read instead
        return b""


def _open(location):
    return location.fs.open(location.path, "rb") if storage.is_remote(location) else open(location, "rb")
