#!/usr/bin/env python
"""Start-up: `segtool --help` and `segtool image one.jpg`, with the extras installed and without, alternated.

    python scripts/bench_startup.py [--rounds 7] [--reference /path/to/other/checkout]

Each round runs every case once, in turn: `segtool --help`; `segtool image ONE.jpg -o OUT` (a
1920x1080 JPEG, selfie, the default outputs) as installed here (this venv has the convert and
gpu extras' onnx and TensorFlow); and the same with the extras' packages made unimportable
(``sys.modules[name] = None`` before segtool starts: what a plain install sees). With
--reference, the same cases run the code of another checkout too (PYTHONPATH), in the same
rounds. Reports the median wall seconds and CPU seconds (user + system of the process, from
wait4) per case; the first round is a warm-up (file cache) and is not counted.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("onnx", "tensorflow", "tf2onnx", "ai_edge_litert", "ray", "s3fs", "fsspec", "upath")
LAUNCH = ("import sys\n{hide}from segtool.cli import main\nsys.argv[0] = 'segtool'\nmain()\n")


def command(args: list[str], plain: bool) -> list[str]:
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in EXTRAS) if plain else ""
    return [sys.executable, "-c", LAUNCH.format(hide=hide), *args]


def installed_like(env: dict) -> dict:
    """The environment of an installed segtool: its modules' bytecode cached (pip compiles a
    wheel's at install). With PYTHONDONTWRITEBYTECODE set, as in some CI and agent shells, every
    start would compile segtool's ~45 modules again (0.15-0.5 s): not what a user sees."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(cmd: list[str], root: Path, cwd: Path) -> tuple[float, float]:
    # cwd: not a checkout, since `python -c` puts the working folder first on sys.path.
    env = installed_like(dict(os.environ, PYTHONPATH=str(root)))
    started = time.perf_counter()
    process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} exited {process.returncode}: {process.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reference", type=Path, help="another checkout to run in the same rounds")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import write_jpegs

    roots = {"this tree": ROOT, **({"reference": args.reference.resolve()} if args.reference else {})}
    with tempfile.TemporaryDirectory(prefix="segtool-startup-") as tmp:
        write_jpegs(Path(tmp), 1)
        one, out = str(Path(tmp) / "img0000.jpg"), Path(tmp) / "out"
        cases = {"`segtool --help`": (["--help"], False),
                 "`segtool image one.jpg`, extras installed": (["image", one, "-o", str(out), "-q"], False),
                 "`segtool image one.jpg`, extras hidden (plain install)": (["image", one, "-o", str(out), "-q"], True)}
        samples = {(tree, case): [] for tree in roots for case in cases}
        for round_ in range(args.rounds + 1):
            for case, (case_args, plain) in cases.items():
                for tree, root in roots.items():
                    if out.exists():
                        for f in out.iterdir():
                            f.unlink()
                    result = run(command(case_args, plain), root, Path(tmp))
                    if round_:
                        samples[(tree, case)].append(result)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Measured {when} by `python scripts/bench_startup.py {' '.join(argv or sys.argv[1:])}` on "
          f"{platform.machine()}, {os.cpu_count()} CPUs (load average at end {os.getloadavg()[0]:.1f}), "
          f"Python {platform.python_version()}; median of {args.rounds} alternated rounds.\n")
    print("| case | " + " | ".join(f"{tree}: wall s | {tree}: CPU s" for tree in roots) + " |")
    print("| --- |" + " ---: | ---: |" * len(roots))
    for case in cases:
        cells = []
        for tree in roots:
            walls, cpus = zip(*samples[(tree, case)])
            cells += [f"{statistics.median(walls):.3f}", f"{statistics.median(cpus):.3f}"]
        print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
