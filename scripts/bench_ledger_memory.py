"""Memory the ledger cache holds for one folder of many outputs (issue 18): a ledger of
``--entries`` lines is read as a rerun reads it, and tracemalloc measures what stays (the
folder's cache) and the peak while reading; then lookups of recorded and unknown entries.

    python scripts/bench_ledger_memory.py [--entries 100000]

Run it with another checkout first on PYTHONPATH to measure that one's cache.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from segtool.io import ledger


def write_ledger(folder: Path, entries: int) -> None:
    with open(folder / ledger.LEDGER_NAME, "w") as stream:
        for i in range(entries):
            stream.write("\n" + json.dumps([f"IMG_{i:07d}.category.png", 40_000 + i, 1_764_000_000_000_000_000 + i, 9_000_000 + i]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    entries = parser.parse_args().entries
    with tempfile.TemporaryDirectory() as scratch:
        warm, folder = Path(scratch, "warm"), Path(scratch, "out")
        warm.mkdir(), folder.mkdir()
        write_ledger(warm, 10)
        ledger._entries(os.path.realpath(warm))  # imports made on first use are not the cache
        write_ledger(folder, entries)
        key = os.path.realpath(folder)
        start = time.perf_counter()
        ledger._entries(key)
        read_s = time.perf_counter() - start
        ledger._known.pop(key)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        ledger._entries(key)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        probes = 20_000
        start = time.perf_counter()
        for i in range(probes):  # half recorded, half unknown fingerprints (a miss reads the ledger again: not timed here)
            fingerprint = (40_000 + i, 1_764_000_000_000_000_000 + i, 9_000_000 + i + (i % 2))
            with ledger._lock:
                cache = ledger._known[key]
                if hasattr(cache, "get"):  # the name -> fingerprints dict before the hashed cache
                    fingerprint in cache.get(f"IMG_{i:07d}.category.png", ())
                else:
                    ledger.key_of(f"IMG_{i:07d}.category.png", *fingerprint) in cache
        lookup_us = (time.perf_counter() - start) / probes * 1e6
    print(f"{entries} entries: cache holds {(held - before) / 1e6:.2f} MB ({(held - before) / entries:.1f} bytes an entry), "
          f"peak while reading {(peak - before) / 1e6:.2f} MB; read {read_s:.2f} s; lookup {lookup_us:.1f} us")


if __name__ == "__main__":
    main()
