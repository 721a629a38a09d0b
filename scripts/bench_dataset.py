"""Dataset shards against loose files: records/s, bytes, object-store requests, memory.

What runs now (the dataset layer on its own, fed records from real segmentations of one photo
repeated under many names, so the numbers are the writers' and not the model's):
  - records/s and bytes written per format, against the loose files `segtool image` writes
    for the same masks (category PNG, and with --confidence a float32 .npy each);
  - with --s3: requests per 1,000 inputs on moto's S3 server (started here), counted from its
    request log, for shards and for loose files;
  - --rss N1,N2: this process's peak RSS after streaming N inputs from a manifest through the
    index filter into a sink (the driver's share of the dataset layer).
  - --cli: the whole job through `segtool image` (--dataset KIND against loose files) on
    generated JPEGs of --size: images/s, bytes, with --s3 requests per 1,000 inputs, the
    command's peak RSS; --engine ray runs it on Ray (a local instance, or $RAY_ADDRESS).
    For the driver's RSS at 5,000 and 50,000 inputs of a whole run, see scripts/memory_check.py
    (`-- --dataset parquet`), which samples it per input.

    python scripts/bench_dataset.py --inputs 2000 --size 256x256
    python scripts/bench_dataset.py --inputs 1000 --s3
    python scripts/bench_dataset.py --rss 5000,50000
    python scripts/bench_dataset.py --cli --inputs 300 --size 256x256 [--s3] [--engine ray] [--rounds 3]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from segtool import ImageSegmenter, ImageSegmenterOptions  # noqa: E402
from segtool import io as sio  # noqa: E402
from segtool.datasets import KINDS, ShardIndex, ShardOptions, ShardRecord, ShardSink  # noqa: E402
from segtool.io.paths import inputs_from_manifest  # noqa: E402


def one_segmentation(size: tuple[int, int], model: str):
    from skimage import data
    import cv2

    image = cv2.resize(data.astronaut(), (size[1], size[0]))
    options = ImageSegmenterOptions(model=model, output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        return segmenter.segment(image), segmenter.labels


def shifted(array: np.ndarray, n: int) -> np.ndarray:
    # every input's mask differs (rolled by n pixels), so no format gains from identical rows
    return np.roll(array, n % array.shape[-1], axis=-1)


def records(count: int, result, labels, model: str, confidence: bool):
    for n in range(count):
        yield ShardRecord(f"/data/photos/{n:08d}.jpg", model=model, labels=labels,
                          category_mask=shifted(result.category_mask, n),
                          confidence_masks=shifted(result.confidence_masks, n) if confidence else None)


def loose_files(out, count: int, result, confidence: bool) -> None:
    sio.ensure_dir(out)
    for n in range(count):
        sio.write_category_png(out / f"{n:08d}.category.png", shifted(result.category_mask, n))
        if confidence:
            sio.write_npy(out / f"{n:08d}.confidence.npy", shifted(result.confidence_masks, n))


def shards(kind: str, out, count: int, result, labels, model: str, confidence: bool) -> int:
    options = ShardOptions(confidence_masks=confidence and kind != "coco")
    with ShardSink.open(kind, out, options) as sink:
        for record in records(count, result, labels, model, confidence):
            sink.add(record)
    return len(sink.shards)


def size_of(out) -> int:
    if sio.is_remote(out):
        return sum(out.fs.du(out.path, total=False).values())
    return sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())


def timed(label: str, work, out, count: int, requests=None) -> None:
    before = len(requests()) if requests else 0
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    line = f"{label:<12} {count / seconds:9.0f} inputs/s  {size_of(out) / count / 1024:8.1f} KiB/input"
    if requests:
        asked = requests()[before:]
        line += f"  {len(asked) * 1000 / count:8.1f} requests/1000 inputs ({sum(r.startswith('PUT') for r in asked)} PUT)"
    print(line, flush=True)


def throughput(args, result, labels) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    server = start_s3() if args.s3 else None
    try:
        base = f"s3://bench-{os.getpid()}" if server else str(root)
        if server:
            server.filesystem().mkdir(base.split("://")[1])
        requests = server.requests if server else None
        for kind in KINDS:  # imports (pyarrow loads pandas on its first array) stay out of the timing
            shards(kind, root / "warm-up" / kind, 5, result, labels, args.model, args.confidence)
        out = sio.location(f"{base}/loose")
        timed("loose", lambda: loose_files(out, args.inputs, result, args.confidence), out, args.inputs, requests)
        for kind in KINDS:
            out = sio.location(f"{base}/{kind}")
            timed(kind, lambda: shards(kind, out, args.inputs, result, labels, args.model, args.confidence),
                  out, args.inputs, requests)
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def driver_rss(counts, result, labels, model: str) -> None:
    """Peak RSS after streaming N inputs from a manifest through the index into a sink (one process each)."""
    for count in counts:
        done = subprocess.run([sys.executable, __file__, "--rss-child", str(count), "--model", model],
                              capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr[-2000:], flush=True)


def rss_child(count: int, model: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    try:
        manifest = folder / "inputs.txt"
        with open(manifest, "w") as stream:
            for n in range(count):
                stream.write(f"/data/photos/{n:08d}.jpg\n")
        mask = np.zeros((16, 16), np.uint8)
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        index = ShardIndex.load(folder / "out")
        with ShardSink.open("parquet", folder / "out") as sink:
            for item in index.missing(inputs_from_manifest(str(manifest))):
                sink.add(ShardRecord(str(item.path), model=model, labels=("background", "person"), category_mask=mask))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{count:>8} inputs: peak RSS {peak / 1024:.1f} MiB ({(peak - start) / 1024:+.1f} MiB while streaming)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cli_job(args) -> None:
    """The same `segtool image` job writing loose files, then each kind of shard."""
    from PIL import Image

    root = Path(tempfile.mkdtemp(prefix="bench-dataset-cli-"))
    server = start_s3() if args.s3 else None
    try:
        height, width = map(int, args.size.lower().split("x"))
        photo = np.asarray(Image.open(Path(__file__).resolve().parent.parent / "docs" / "astronaut.jpg")
                           .convert("RGB").resize((width, height)))
        (root / "in").mkdir()
        for n in range(args.inputs):
            Image.fromarray(shifted(photo, n)).save(root / "in" / f"{n:06d}.jpg", quality=90)
        base = f"s3://bench-{os.getpid()}" if server else str(root)
        if server:
            server.filesystem().mkdir(base.split("://")[1])
        segtool = [str(Path(sys.executable).with_name("segtool")), "image", str(root / "in"), "--model", args.model,
                   "--category-mask", "--no-confidence-masks", "-q", "--engine", args.engine]
        jobs = [("loose", [])] + [(kind, ["--dataset", kind]) for kind in KINDS]
        rates: dict[str, list[float]] = {label: [] for label, _ in jobs}
        for round_ in range(args.rounds):
            # Each round starts at another job, so no output kind always runs first (cold caches).
            for label, extra in jobs[round_ % len(jobs):] + jobs[:round_ % len(jobs)]:
                out = f"{base}/{label}-{round_}/"
                before = len(server.requests()) if server else 0
                started = time.perf_counter()
                done = subprocess.run(segtool + ["-o", out, *extra], capture_output=True, text=True)
                seconds = time.perf_counter() - started
                rates[label].append(args.inputs / seconds)
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                line = (f"{label:<12} {args.inputs / seconds:7.1f} images/s  exit {done.returncode}  "
                        f"{size_of(sio.location(out.rstrip('/'))) / args.inputs / 1024:7.1f} KiB/input  "
                        f"peak RSS of any run so far {peak:.0f} MiB")
                if server:
                    asked = server.requests()[before:]
                    line += f"  {len(asked) * 1000 / args.inputs:7.1f} requests/1000 inputs"
                print(line, flush=True)
        if args.rounds > 1:
            loose = statistics.median(rates["loose"])
            for label, values in rates.items():
                print(f"median of {args.rounds}: {label:<12} {statistics.median(values):7.1f} images/s "
                      f"({statistics.median(values) / loose:.2f}x loose files)")
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def start_s3():
    import types

    from services import S3Server, _listening, free_port  # noqa: F401  (tests/services.py)

    port = free_port()
    log = Path(tempfile.mkdtemp()) / "requests.log"
    sink = open(log, "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not _listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    server = S3Server(f"http://127.0.0.1:{port}", log)
    os.environ.update(server.env)
    server.stop = types.MethodType(lambda self: (process.terminate(), process.wait()), server)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--size", default="256x256", help="HxW of the masks")
    parser.add_argument("--model", default="selfie")
    parser.add_argument("--confidence", action="store_true", help="also write confidence masks")
    parser.add_argument("--s3", action="store_true", help="write to moto's S3 server and count requests")
    parser.add_argument("--rss", default="", help="comma-separated input counts, e.g. 5000,50000")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cli", action="store_true", help="the whole job through `segtool image`")
    parser.add_argument("--engine", default="local", choices=["local", "ray"], help="with --cli")
    parser.add_argument("--rounds", type=int, default=1, help="with --cli: runs of each output kind, rotated")
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.model)
    if args.cli:
        print(f"# segtool image --category-mask on {args.inputs} JPEGs of {args.size}, model {args.model}, "
              f"engine {args.engine}, {'S3 (moto)' if args.s3 else 'local disk'}")
        return cli_job(args)
    height, width = map(int, args.size.lower().split("x"))
    result, labels = one_segmentation((height, width), args.model)
    print(f"# {args.inputs} inputs of {height}x{width}, model {args.model}, "
          f"confidence {'on' if args.confidence else 'off'}, {'S3 (moto)' if args.s3 else 'local disk'}")
    if args.rss:
        driver_rss([int(n) for n in args.rss.split(",")], result, labels, args.model)
    else:
        throughput(args, result, labels)


if __name__ == "__main__":
    main()
