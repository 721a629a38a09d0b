"""A set of 64-bit hashes in about 8 bytes an entry, for caches that must stay small per item.

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
from typing import Iterable

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
