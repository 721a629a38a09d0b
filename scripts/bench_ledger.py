"""Cost of the overwrite guard per output file: atomic_output with the ledger check and record
(every user-facing output) against the same write unguarded, alternated, medians of 7 trials.

    python scripts/bench_ledger.py
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from segtool.io import ledger, writers

FILES = 2000


def microseconds_per_file(folder: Path, guarded: bool) -> float:
    payload = b"x" * 4096
    start = time.perf_counter()
    for i in range(FILES):
        with writers.atomic_output(folder / f"f{i:04d}.category.png", guarded=guarded) as tmp:
            tmp.write_bytes(payload)
    return (time.perf_counter() - start) / FILES * 1e6


def main() -> None:
    timings: dict[tuple[bool, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for trial in range(7):
            for guarded in (False, True):
                folder = Path(scratch, f"{guarded}-{trial}")
                folder.mkdir()
                timings.setdefault((guarded, "new"), []).append(microseconds_per_file(folder, guarded))
                ledger._known.clear()  # a new run: the ledger is read from disk again
                timings.setdefault((guarded, "rerun"), []).append(microseconds_per_file(folder, guarded))
        mask = (np.random.default_rng(0).random((1080, 1920)) > 0.5).astype(np.uint8)
        start = time.perf_counter()
        for i in range(20):
            writers.write_category_png(Path(scratch, f"m{i}.category.png"), mask)
        encode_ms = (time.perf_counter() - start) / 20 * 1e3
    for case in ("new", "rerun"):
        plain, guarded = (statistics.median(timings[(g, case)]) for g in (False, True))
        print(f"{case}: unguarded {plain:.0f} us, guarded {guarded:.0f} us per file ({guarded / plain:.2f}x)")
    print(f"for scale: write_category_png of a 1920x1080 mask {encode_ms:.1f} ms")


if __name__ == "__main__":
    main()
