#!/usr/bin/env python
"""Two (or more) checkouts of segtool on the same folder job, alternated: wall and CPU per image.

    python scripts/bench_trees.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 8] [--images 200] [-- IMAGE OPTIONS]

Each round runs `python -m segtool image` once per checkout (the order alternating between
rounds, so a drifting machine favours neither), from a neutral folder so that each run imports
the checkout it is given (PYTHONPATH) and not the current directory's. The JPEGs are bench.py's
1920x1080 pictures; the default job is bench.py's folder job (category PNG + blur). CPU time is
the child's user + system time: on a shared VM it moves less than the wall time does.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import write_jpegs

FOLDER_JOB = ["--model", "selfie", "--category-mask", "--no-confidence-masks", "--blur", "-q"]


def run_once(checkout: Path, jpegs: list[Path], out: Path, options: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one `segtool image` run of ``checkout``."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segtool", "image", *map(str, jpegs), "-o", str(out), *options],
                   env=env, cwd=out.parent, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="folders holding a segtool/ package")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=200)
    argv = sys.argv[1:] if argv is None else argv
    mine, options = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(mine)
    options = options or FOLDER_JOB
    runs: dict[Path, list[tuple[float, float]]] = {c: [] for c in args.checkouts}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "jpegs"
        write_jpegs(folder, args.images)
        jpegs = sorted(folder.glob("*.jpg"))
        for round_ in range(args.rounds):
            order = args.checkouts if round_ % 2 == 0 else args.checkouts[::-1]
            for checkout in order:
                runs[checkout].append(run_once(checkout.resolve(), jpegs, Path(scratch) / "out", options))
    print(f"{args.rounds} alternated rounds of `segtool image` on {args.images} 1920x1080 JPEGs "
          f"({' '.join(options)}), median:")
    for checkout, results in runs.items():
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        print(f"  {checkout}: {wall:.2f} s wall ({args.images / wall:.1f} images/s with start-up), "
              f"{1000 * cpu / args.images:.1f} ms of CPU an image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
