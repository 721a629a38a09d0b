"""Sets and maps of 64-bit hashes in 8-16 bytes an entry, for what must stay small per item
(the ledger's cache, a run's claims and inputs).

A Python set of names and tuples costs hundreds of bytes an entry; this one keeps its keys in
one sorted numpy array (a lookup is a binary search) and takes new keys into a small Python set
first, merged into the array when it reaches 1/16 of it (at least ``MIN_FRESH``): about 12 bytes
an entry at worst, and merging costs O(1) amortized an entry (numpy's stable sort merges the two
sorted runs in one pass).

``key_of`` turns any text and integers into such a key (BLAKE2b, 8 bytes): two different items
share one with probability 2**-64 a pair, which callers that vouch for something must accept.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import numpy as np

MIN_FRESH = 1024


def key_of(text: str, *numbers: int) -> int:
    """A 64-bit hash of ``text`` (any str, undecodable bytes as surrogates) and ``numbers``."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8)
    digest.update(("\0" + ",".join(map(str, numbers))).encode("ascii"))
    return int.from_bytes(digest.digest(), "little")


class HashSet:
    def __init__(self, keys: Iterable[int] | np.ndarray = ()):
        keys = keys if isinstance(keys, np.ndarray) else np.fromiter(keys, np.uint64)
        self._sorted = np.unique(keys.astype(np.uint64, copy=False))
        self._fresh: set[int] = set()

    def add(self, key: int) -> None:
        if key in self:
            return
        self._fresh.add(key)
        if len(self._fresh) >= max(MIN_FRESH, len(self._sorted) // 16):
            self._merge()

    def __contains__(self, key: int) -> bool:
        if key in self._fresh:
            return True
        at = int(np.searchsorted(self._sorted, np.uint64(key)))
        return at < len(self._sorted) and int(self._sorted[at]) == key

    def __len__(self) -> int:
        return len(self._sorted) + len(self._fresh)

    def nbytes(self) -> int:
        """Roughly what the set holds in memory."""
        return self._sorted.nbytes + len(self._fresh) * 64

    def _merge(self) -> None:
        fresh = np.sort(np.fromiter(self._fresh, np.uint64, len(self._fresh)))
        self._sorted = np.concatenate([self._sorted, fresh])
        self._sorted.sort(kind="stable")  # two sorted runs: one merge pass
        self._fresh = set()


class HashMap:
    """uint64 -> uint64, 16 bytes an entry: new entries in a dict, merged into sorted numpy
    arrays as HashSet merges (at 1/16 of them, at least MIN_FRESH), so a lookup is one dict
    probe and one binary search and the dict never holds many Python ints."""

    def __init__(self):
        self._keys = np.empty(0, np.uint64)
        self._values = np.empty(0, np.uint64)
        self._fresh: dict[int, int] = {}

    def put(self, key: int, value: int) -> None:
        self._fresh[key] = value
        if len(self._fresh) >= max(MIN_FRESH, len(self._keys) // 16):
            self._merge()

    def get(self, key: int) -> Optional[int]:
        if key in self._fresh:
            return self._fresh[key]
        at = int(np.searchsorted(self._keys, key))
        if at < len(self._keys) and int(self._keys[at]) == key:
            return int(self._values[at])
        return None

    def _merge(self) -> None:
        keys = np.fromiter(self._fresh.keys(), np.uint64, len(self._fresh))
        values = np.fromiter(self._fresh.values(), np.uint64, len(self._fresh))
        stale = np.isin(self._keys, keys)  # a key put again keeps its newest value
        keys, values = np.concatenate([self._keys[~stale], keys]), np.concatenate([self._values[~stale], values])
        order = np.argsort(keys, kind="stable")
        self._keys, self._values, self._fresh = keys[order], values[order], {}
