"""ShardSink: records in, complete shards out, from any number of threads.

A sink fills one shard at a time under a temporary name (io.writers.atomic_output: a hidden
``.<name>.part-<pid>`` renamed into place, its ledger entry written just before, or a local
file uploaded whole to an object store, carrying segtool's mark) and finishes it once it holds
``target_bytes``: a shard is complete or absent, whatever ends the run. Its index object
(index.py) follows it. Shard names carry a writer id (host, process, random), so any number of
sinks, threads or Ray actors on many machines, write into one output without a clash:

    shard-<host>-<pid>-<random>-<number>.parquet|tar|jsonl

Records are encoded on the calling thread (PNG, RLE, JSON) and only appended under the lock;
a shard is renamed or uploaded by the thread whose record filled it, outside the lock.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import OutputError, OutputStorageError, UsageError
from ..io import storage
from ..io.writers import atomic_output, ensure_dir, write_error
from .formats import check_kind, shard_format
from .index import INDEX_FOLDER, INDEX_SUFFIX, index_bytes
from .records import ShardRecord, check_record, input_digest

MiB = 1 << 20


@dataclass(frozen=True)
class ShardOptions:
    """What the shards hold and how big they grow.

    ``target_bytes``: a shard is finished once it holds this much (it ends at the first record
    past it). ``confidence_masks``: also store them (float16 .npy; Parquet and WebDataset).
    ``composites``: the composite names the records carry (blur, cutout, ...): Parquet's columns.
    ``row_group_bytes``: Parquet row groups of about this size (what readers load at once), and
    at most ``row_group_rows`` rows: the rows wait in memory as Python objects until then.
    """

    target_bytes: int = 256 * MiB
    confidence_masks: bool = False
    composites: tuple[str, ...] = ()
    row_group_bytes: int = 32 * MiB
    row_group_rows: int = 2048

    def __post_init__(self):
        if self.target_bytes < 1 or self.row_group_bytes < 1 or self.row_group_rows < 1:
            raise UsageError("dataset shard and row group sizes must be at least 1 byte")
        for name in self.composites:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
                raise UsageError(f"{name!r}: a composite's name is a plain word (blur, cutout, ...)")


@dataclass
class _Shard:
    location: object  # Path or UPath of the finished shard
    stack: contextlib.ExitStack  # holds atomic_output open while the shard fills
    writer: object
    succeeded: bytearray = field(default_factory=bytearray)  # input digests, 16 bytes each
    failed: bytearray = field(default_factory=bytearray)


class _Discarded(Exception):
    """Thrown into atomic_output to make it throw the temporary away."""


class ShardSink:
    """Thread-safe writer of one output's shards; use ``ShardSink.open`` and ``close()`` (or a
    ``with`` block: leaving it by an exception throws the unfinished shard away)."""

    def __init__(self, kind: str, folder, options: ShardOptions, writer_id: str):
        self.kind = kind
        self.folder = folder
        self.options = options
        self.writer_id = writer_id
        self.shards: list = []  # locations of the shards finished so far
        self.records = 0
        self._format = shard_format(kind, options)
        self._lock = threading.Condition()
        self._open: Optional[_Shard] = None
        self._numbered = 0
        self._finishing = 0
        self._error: Optional[OutputStorageError] = None
        self._closed = False

    @classmethod
    def open(cls, kind: str, out, options: ShardOptions = ShardOptions(), *,
             writer_id: Optional[str] = None) -> "ShardSink":
        """A sink writing ``kind`` ("parquet", "webdataset", "coco") shards into ``out``: a local
        folder (made if needed) or an object-store prefix, as a str, Path or UPath."""
        check_kind(kind)
        folder = storage.location(out) if isinstance(out, str) else out
        ensure_dir(folder)
        if not storage.is_remote(folder):
            ensure_dir(Path(folder) / INDEX_FOLDER)
            for place in (Path(folder), Path(folder) / INDEX_FOLDER):
                remove_dead_partials(place)
        return cls(kind, folder, options, writer_id or new_writer_id())

    # ---- records in ------------------------------------------------------------------------

    def add(self, record: ShardRecord):
        """Append one record; returns the location its shard will have once complete.

        An OutputStorageError when shards can no longer be written (a full disk, a failed
        upload): the records of the shard lost with it are in no index, so --skip-existing
        redoes them. A UsageError for a record the sink was not opened for.
        """
        check_record(record, composites=self.options.composites)
        encoded = self._format.encode(record)  # outside the lock: the costly part
        digest = input_digest(record.input)
        with self._lock:
            self._check_usable()
            shard = self._open = self._open or self._start()
            try:
                shard.writer.write(encoded)
            except OSError as exc:
                self._open = None
                raise self._failed(shard, exc) from exc
            (shard.succeeded if record.ok else shard.failed).extend(digest)
            self.records += 1
            full = shard.writer.tell() >= self.options.target_bytes
            if full:
                self._open, self._finishing = None, self._finishing + 1
        if full:
            self._finish(shard)
        return shard.location

    def flush(self) -> None:
        """Finish the shard being filled now (e.g. at the end of a Ray batch)."""
        with self._lock:
            self._check_usable()
            shard, self._open = self._open, None
            if shard is not None:
                self._finishing += 1
        if shard is not None:
            self._finish(shard)

    def close(self) -> None:
        """Finish the open shard and wait for those other threads are finishing; raise the
        first error any of them met."""
        try:
            if not self._closed:
                self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._lock.wait_for(lambda: self._finishing == 0)
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Throw the unfinished shard away (an interrupted run): no partial shard is left."""
        with self._lock:
            shard, self._open, self._closed = self._open, None, True
        if shard is not None:
            _throw_away(shard)
        with self._lock:
            self._lock.wait_for(lambda: self._finishing == 0)

    def __enter__(self) -> "ShardSink":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        else:
            self.abort()

    # ---- shards ----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise UsageError("this dataset sink is closed")

    def _start(self) -> _Shard:
        self._numbered += 1
        name = f"shard-{self.writer_id}-{self._numbered:05d}.{self._format.extension}"
        location = self.folder / name
        stack = contextlib.ExitStack()
        try:
            temporary = stack.enter_context(atomic_output(location))
            writer = self._format.open(temporary)
        except OSError as exc:
            raise self._failed(_Shard(location, stack, None), exc) from exc
        except OutputError as exc:
            stack.close()
            raise self._failed(_Shard(location, stack, None), exc) from exc
        return _Shard(location, stack, writer)

    def _finish(self, shard: _Shard) -> None:
        """Close, rename or upload, then index one full shard; any failure breaks the sink."""
        try:
            try:
                shard.writer.close()
            except OSError as exc:
                raise self._failed(shard, exc) from exc
            try:
                shard.stack.close()  # the rename (with its ledger entry) or the whole upload
                self._write_index(shard)
            except (OSError, OutputError) as exc:
                raise self._failed(shard, exc, discard=False) from exc
            with self._lock:
                self.shards.append(shard.location)
        finally:
            with self._lock:
                self._finishing -= 1
                self._lock.notify_all()

    def _write_index(self, shard: _Shard) -> None:
        location = self.folder / INDEX_FOLDER / (shard.location.name + INDEX_SUFFIX)
        with atomic_output(location) as temporary:
            Path(temporary).write_bytes(index_bytes([bytes(shard.succeeded)], [bytes(shard.failed)]))

    def _failed(self, shard: _Shard, exc: BaseException, *, discard: bool = True) -> OutputStorageError:
        """The error that stops every later add(): shards can no longer be written here."""
        if discard:
            _throw_away(shard)
        if isinstance(exc, OutputStorageError):
            error = exc
        else:
            reason = str(exc) if isinstance(exc, OutputError) else str(write_error(shard.location, exc, "cannot write"))
            error = OutputStorageError(f"{reason}; stopping, later shards would fail too")
        with self._lock:
            self._error = self._error or error
        return error


def _throw_away(shard: _Shard) -> None:
    if shard.writer is not None:
        with contextlib.suppress(OSError):
            shard.writer.abort()
    with contextlib.suppress(_Discarded, OSError, OutputError):
        shard.stack.__exit__(_Discarded, _Discarded(), None)


def new_writer_id() -> str:
    """<host>-<pid>-<8 hex digits>: unique across processes and machines, and safe in a name."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:32] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


_PARTIAL = re.compile(r"^\.shard-(?P<writer>[A-Za-z0-9-]+)-[0-9]{5,}\.[a-z]+(\.idx)?\.part-(?P<pid>[0-9]+)$")


def remove_dead_partials(folder: Path) -> None:
    """Remove the temporaries of shards whose writer on this machine was killed (``kill -9``
    runs no ``finally``): named by sink.py, written from this host, by a process now gone."""
    host = new_writer_id().rsplit("-", 2)[0]
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            found = _PARTIAL.match(entry.name)
            if found and found["writer"].rsplit("-", 2)[0] == host and not _alive(int(found["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
