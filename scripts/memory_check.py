"""Peak memory of `segtool image` over a batch of hundreds of large images: does it stay flat?

Generates COUNT JPEGs of WIDTHxHEIGHT in a temporary folder (from pictures scikit-image and
matplotlib ship, shifted so no two are alike), runs the real CLI over them with --json, and
samples the process's resident memory from /proc while each finished input is reported.

    python scripts/memory_check.py                     # 200 x 1920x1080, masks + category
    python scripts/memory_check.py --count 300 -- --blur --threads 2
    python scripts/memory_check.py --count 50000 --width 64 --height 48 --stdin   # paths on stdin

With --stdin the paths reach `segtool image -` through a pipe, as `find ... | segtool image -`
does, so nothing is listed up front: what grows then is what segtool keeps per input.

Prints RSS after given numbers of inputs, the peak (VmHWM), and the growth between the 20th
input and the last; exits 1 when that growth is over --max-growth-mb (a leak, not noise).
Linux only (/proc).
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHECKPOINTS = (1, 10, 20, 50, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="segtool-memory-", dir=args.workdir) as work:
        folder = Path(work) / "in"
        started = time.perf_counter()
        make_images(folder, args.count, args.width, args.height)
        print(f"generated {args.count} JPEGs of {args.width}x{args.height} in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        source = "-" if args.stdin else str(folder)
        command = segtool_command() + ["image", source, "-o", str(Path(work) / "out"), "--json",
                                       "-q", *args.segtool_args]
        paths = sorted(folder.iterdir()) if args.stdin else None
        samples, peak_kib, seconds, code = run_sampled(command, args.interval, paths)
    return report(command, samples, peak_kib, seconds, code, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mb", type=float, default=25.0)
    parser.add_argument("--workdir", default=None, help="where the temporary folder goes")
    parser.add_argument("--baseline", type=int, default=20,
                        help="growth is counted from the inputs around this one (after warm-up)")
    parser.add_argument("--stdin", action="store_true", help="pass the paths on stdin (`segtool image -`)")
    parser.add_argument("segtool_args", nargs="*", default=["--category-mask"],
                        help="options for `segtool image` (after --)")
    return parser.parse_args()


def segtool_command() -> list[str]:
    script = Path(sys.executable).with_name("segtool")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from segtool.cli import main; main()"]


def base_pictures(width: int, height: int) -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as stream:
        hopper = np.asarray(Image.open(io.BytesIO(stream.read())).convert("RGB"))
    sources = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), hopper]
    return [np.asarray(Image.fromarray(s).resize((width, height), Image.BILINEAR)) for s in sources]


def make_images(folder: Path, count: int, width: int, height: int) -> None:
    folder.mkdir(parents=True)
    bases = base_pictures(width, height)
    for index in range(count):
        # Rolled by a different amount each time: every file decodes to different pixels.
        picture = np.roll(bases[index % len(bases)], shift=7 * index, axis=1)
        Image.fromarray(picture).save(folder / f"img{index:06d}.jpg", quality=90)


def run_sampled(command: list[str], interval: float, paths=None):
    """Run ``command``; sample RSS after every finished input (one --json line) and on a timer.

    ``paths``: fed to the command's stdin, one a line, as it reads them.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.PIPE if paths is not None else subprocess.DEVNULL)
    if paths is not None:
        def feed() -> None:
            with process.stdin:
                for path in paths:
                    process.stdin.write(bytes(path) + b"\n")

        threading.Thread(target=feed, daemon=True).start()
    samples: list[tuple[int, int]] = []  # (inputs finished, RSS KiB)
    state = {"done": 0, "peak": 0}

    def sample() -> None:
        status = read_status(process.pid)
        if status:
            samples.append((state["done"], status["VmRSS"]))
            state["peak"] = max(state["peak"], status["VmHWM"])

    def count_lines() -> None:
        for _ in process.stdout:
            state["done"] += 1
            if state["done"] <= 1000 or state["done"] % 50 == 0:  # /proc reads cost time too
                sample()

    reader = threading.Thread(target=count_lines, daemon=True)
    started = time.perf_counter()
    reader.start()
    while process.poll() is None:
        sample()
        time.sleep(interval)
    reader.join()
    seconds = time.perf_counter() - started
    errors = process.stderr.read().decode(errors="replace").strip()
    if errors:
        print(errors, file=sys.stderr)
    return samples, state["peak"], seconds, process.returncode


def read_status(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process has just exited
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}
    except (KeyError, ValueError):  # a zombie has no memory lines
        return {}


def rss_at(samples, done: int) -> float:
    """Highest RSS (MB) seen while exactly ``done`` inputs were finished."""
    values = [rss for count, rss in samples if count == done]
    return max(values) / 1024 if values else float("nan")


def window_max(samples, low: int, high: int) -> float:
    values = [rss for count, rss in samples if low <= count <= high]
    return max(values) / 1024 if values else float("nan")


def report(command, samples, peak_kib, seconds, code, args) -> int:
    done = max((count for count, _ in samples), default=0)
    print(f"command: segtool image <{args.count} JPEGs> -o <out> --json -q {' '.join(args.segtool_args)}")
    print(f"inputs: {done} of {args.count} ({args.width}x{args.height} JPEG), exit status {code}, "
          f"{seconds:.1f} s ({seconds / max(1, done):.3f} s per input)")
    for checkpoint in (c for c in CHECKPOINTS if c <= done):
        print(f"  RSS after {checkpoint:4d} inputs: {rss_at(samples, checkpoint):7.1f} MB")
    print(f"  peak RSS (VmHWM): {peak_kib / 1024:.1f} MB")
    # Highest RSS early on (inputs 10-30) against the highest over the last 20: a leak shows as
    # a difference; a single large allocation at the start does not hide it.
    low, high = args.baseline // 2, args.baseline + args.baseline // 2
    early, late = window_max(samples, low, high), window_max(samples, done - 20, done)
    growth = late - early
    print(f"  growth, max RSS over inputs {low}-{high} -> last 20: {early:.1f} -> {late:.1f} MB "
          f"({growth:+.1f} MB, limit {args.max_growth_mb} MB)")
    return 0 if code == 0 and done == args.count and growth <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())
