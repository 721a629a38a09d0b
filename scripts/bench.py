#!/usr/bin/env python
"""segtool against MediaPipe Tasks, side by side in one run: latency, stages, folder throughput.

    python scripts/bench.py [--repeat 20] [--rounds 3] [--images 40] [--write BENCHMARKS.md]

(a) In-memory latency: ``ImageSegmenter.segment()`` for each model at 512x512 and 1920x1080,
    confidence masks only (MediaPipe's default) and with the category mask, median of
    rounds x repeat calls, against MediaPipe Tasks' ``segment()`` on the same pixels. MediaPipe
    runs in its own environment (--mp-python) as a server that this script alternates with:
    a block of segtool calls, then a block of MediaPipe calls, round after round, so both see
    the same background load on a shared machine.
(b) Stages: where segtool's time goes (decode, preprocess, inference, postprocess, composite,
    encode), and onnxruntime alone on the model (a plain session with onnxruntime's defaults).
(c) Folder throughput: N 1920x1080 JPEGs to category PNG + blur composite through the real
    `segtool image` command against MediaPipe's equivalent loop (scripts/bench_mediapipe.py
    folder), alternated, with the category masks compared pixel by pixel.
(d) --batching: on the CPU, segment_batch of 8 against segment() one by one (and the device
    graph on the CPU provider), and `segtool image -b 8` against the default -b 1, alternated.

The hair model is not bundled: it is used from SEGTOOL_MODELS_DIR when installed there, else
installed into a temporary folder from --models-dir (needs the convert extra), else skipped.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("selfie", "selfie_landscape", "deeplab", "hair")
SIZES = ((512, 512), (1080, 1920))  # (height, width)
MARK_START, MARK_END = "<!-- bench.py:start -->", "<!-- bench.py:end -->"


# ---- test pictures ----------------------------------------------------------------------------

def picture(height: int, width: int, index: int = 0) -> np.ndarray:
    """A real photo (scikit-image's, so MediaPipe's environment has it too) stretched to size."""
    import cv2
    import skimage.data

    names = ("astronaut", "coffee", "chelsea", "rocket")
    rgb = getattr(skimage.data, names[index % len(names)])()
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if width < rgb.shape[1] else cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.roll(rgb, 37 * index, axis=1))  # no two files alike


def write_jpegs(folder: Path, count: int) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        bgr = cv2.cvtColor(picture(1080, 1920, i), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"img{i:04d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])


# ---- models -----------------------------------------------------------------------------------

def usable_models(wanted, models_dir: Path, scratch: Path) -> list[str]:
    """The wanted models segtool can load here; hair is installed into ``scratch`` if need be."""
    from segtool import registry

    found = []
    for name in wanted:
        try:
            registry.locate(name)
        except registry.ModelError:
            if not install(name, models_dir, scratch):
                print(f"bench: skipping {name}: not installed and cannot be installed", file=sys.stderr)
                continue
        found.append(name)
    return found


def install(name: str, models_dir: Path, scratch: Path) -> bool:
    target = scratch / "models"
    env = dict(os.environ, SEGTOOL_MODELS_DIR=str(target))
    done = subprocess.run([*segtool_cli(), "models", "install", name, "--from", str(models_dir)],
                          env=env, capture_output=True)
    if done.returncode == 0:
        os.environ["SEGTOOL_MODELS_DIR"] = str(target)  # for this process and the CLI runs below
    return done.returncode == 0


def segmenter(model: str, category: bool, **options):
    from segtool.options import ImageSegmenterOptions
    from segtool.segmenter import ImageSegmenter

    return ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model=model, output_category_mask=category, output_confidence_masks=True, **options))


# ---- MediaPipe, as a server in its own environment --------------------------------------------

class MediaPipe:
    """scripts/bench_mediapipe.py serve, spoken to one JSON line at a time."""

    def __init__(self, python: str, models_dir: Path):
        self._process = subprocess.Popen(
            [python, str(ROOT / "scripts" / "bench_mediapipe.py"), "serve", "--models-dir", str(models_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_mediapipe_env())
        self.version = None

    def ask(self, **request) -> dict:
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the MediaPipe server stopped (see its stderr above)")
        return json.loads(line)

    def load(self, model: str, category: bool) -> None:
        self.version = self.ask(cmd="load", model=model, category=category)["version"]

    def time(self, image_file: Path, n: int) -> list[float]:
        return self.ask(cmd="time", image=str(image_file), n=n)["ms"]

    def close(self) -> None:
        self._process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self._process.stdin.close()
        self._process.wait(timeout=30)


def _mediapipe_env() -> dict:
    # MediaPipe's glog lines go to stderr; keep them out of the way.
    return dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")


# ---- (a) latency and (b) stages ---------------------------------------------------------------

def timed(function, n: int) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(n):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


@dataclass
class Latency:
    model: str
    size: tuple
    category: bool
    segtool: list = field(default_factory=list)
    mediapipe: list = field(default_factory=list)


def warm_up(ours, mediapipe, images: dict, files: dict, calls: int = 5) -> None:
    """Both sides run every size a few times first: the first calls of a fresh session (and of
    MediaPipe's freshly loaded graph, in its own process beside ours) are not what a batch sees."""
    for size in images:
        timed(lambda: ours.segment(images[size]), calls)
        if mediapipe:
            mediapipe.time(files[size], calls)


def latency(models, args, mediapipe, scratch: Path) -> list[Latency]:
    rows = []
    images = {size: picture(*size) for size in SIZES}
    files = {size: scratch / f"{size[1]}x{size[0]}.npy" for size in SIZES}
    for size, image in images.items():
        np.save(files[size], image)
    for model in models:
        for category in (False, True):
            ours = segmenter(model, category)
            if mediapipe:
                mediapipe.load(model, category)
            warm_up(ours, mediapipe, images, files)
            for size in SIZES:
                row = Latency(model, size, category)
                for _ in range(args.rounds):
                    row.segtool += timed(lambda: ours.segment(images[size]), args.repeat)
                    if mediapipe:
                        row.mediapipe += mediapipe.time(files[size], args.repeat)
                rows.append(row)
                print(f"bench: {model} {size[1]}x{size[0]} category={category}: segtool "
                      f"{statistics.median(row.segtool):.1f} ms", file=sys.stderr)
            ours.close()
    return rows


def stages(models, args) -> list[dict]:
    """Median ms of each stage of one image, segtool's own functions, one model and size at a time."""
    from segtool import effects, io as sio
    from segtool.postprocess import postprocess
    from segtool.preprocess import image_to_tensor

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), 1)
        jpeg = Path(tmp) / "img0000.jpg"
        for model in models:
            ours = segmenter(model, True)
            spec, session = ours.spec, ours._session
            alone = plain_session(ours)
            for size in SIZES:
                image = picture(*size)
                tensor = image_to_tensor(image, spec.input_size, mean=spec.mean, std=spec.std,
                                         input_channels=spec.input_channels)
                batch = with_mask_channel(tensor, spec)[None]
                raw = session.run(batch)[0]
                conf, cat = postprocess(raw, activation=spec.activation, image_size=size, category=True)
                row = {"model": model, "size": size}
                measure = {
                    "preprocess": lambda: image_to_tensor(image, spec.input_size, mean=spec.mean, std=spec.std,
                                                          input_channels=spec.input_channels),
                    "inference": lambda: session.run(batch),
                    "ort alone": lambda: alone.run(None, {alone.get_inputs()[0].name: batch}),
                    "confidence": lambda: postprocess(raw, activation=spec.activation, image_size=size),
                    "category": lambda: postprocess(raw, activation=spec.activation, image_size=size,
                                                    confidence=False, category=True),
                    "segment()": lambda: ours.segment(image),
                }
                if size == (1080, 1920):
                    out = Path(tmp) / "o"
                    blur_options = effects.EffectOptions()
                    blurred = effects.render("blur", image, conf, blur_options)
                    measure.update({
                        "decode jpeg": lambda: sio.read_image(jpeg),
                        "blur composite": lambda: effects.render("blur", image, conf, blur_options),
                        "encode category png": lambda: sio.write_category_png(out.with_suffix(".png"), cat),
                        "encode blur jpeg": lambda: sio.write_image(out.with_suffix(".jpg"), blurred),
                    })
                samples = {name: [] for name in measure}
                for _ in range(args.rounds):  # interleaved, so load changes hit every stage alike
                    for name, function in measure.items():
                        samples[name] += timed(function, max(3, args.repeat // 2))
                row.update({name: statistics.median(v) for name, v in samples.items()})
                rows.append(row)
            ours.close()
    return rows


def with_mask_channel(tensor: np.ndarray, spec) -> np.ndarray:
    if spec.input_channels == 4:  # hair: a zero previous-mask channel, as MediaPipe feeds stills
        return np.concatenate([tensor, np.zeros((*tensor.shape[:2], 1), np.float32)], axis=2)
    return tensor


def plain_session(ours):
    """onnxruntime with its own defaults on the same file: the yardstick for segtool's inference."""
    import onnxruntime as ort
    from segtool import registry

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(registry.locate(ours.spec.name).path), options,
                                providers=["CPUExecutionProvider"])


# ---- (c) folder throughput --------------------------------------------------------------------

@dataclass
class FolderRun:
    wall: float          # seconds, process start to exit
    steady: float        # images per second after the first image
    out: Path


def installed_env(env=None) -> dict:
    """``env`` (default: ours) as an installed tool runs: its bytecode cached, as pip leaves a
    wheel (and MediaPipe's package here). With PYTHONDONTWRITEBYTECODE set, as in some CI and
    agent shells, every segtool start compiled its ~45 modules again, 0.15-0.5 s of start-up
    that no user pays."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def stream_lines(command, env=None) -> tuple[float, list[float]]:
    """Run ``command``; the wall time and the arrival time of each stdout line (one per image)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=installed_env(env))
    arrivals = [time.perf_counter() - started for line in process.stdout if line.strip() and line.strip() != "ready"]
    if process.wait() != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited with {process.returncode}")
    return time.perf_counter() - started, arrivals


def folder_run(command, out: Path, count: int, env=None) -> FolderRun:
    shutil.rmtree(out, ignore_errors=True)
    wall, arrivals = stream_lines(command, env)
    if len(arrivals) != count:
        raise RuntimeError(f"{command[0]}: {len(arrivals)} lines for {count} images")
    steady = (count - 1) / max(1e-9, arrivals[-1] - arrivals[0])
    return FolderRun(wall, steady, out)


def segtool_cli() -> list[str]:
    script = Path(sys.executable).with_name("segtool")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from segtool.cli import main; main()"]


def folder_throughput(args, scratch: Path) -> dict:
    images = scratch / "jpegs"
    write_jpegs(images, args.images)
    ours = [*segtool_cli(), "image", str(images), "-o", str(scratch / "segtool"), "--model", args.folder_model,
            "--category-mask", "--no-confidence-masks", "--blur", "--json", "-q", *args.segtool_args]
    theirs = [args.mp_python, str(ROOT / "scripts" / "bench_mediapipe.py"), "folder", str(images),
              str(scratch / "mediapipe"), "--model", args.folder_model, "--models-dir", str(args.models_dir)]
    runs = {"segtool": [], "mediapipe": []}
    # One run of each first, not counted: bytecode and the file cache as a user's second run has them.
    stream_lines(ours)
    if args.mp_python:
        stream_lines(theirs, _mediapipe_env())
    for _ in range(args.rounds):
        runs["segtool"].append(folder_run(ours, scratch / "segtool", args.images))
        if args.mp_python:
            runs["mediapipe"].append(folder_run(theirs, scratch / "mediapipe", args.images, _mediapipe_env()))
    shown = [{str(images): "JPEGS", str(scratch / "segtool"): "OUT"}.get(a, a) for a in ours[len(segtool_cli()):]]
    result = {"command": " ".join(shown), "runs": runs}
    if args.mp_python:
        result["agreement"] = mask_agreement(scratch / "segtool", scratch / "mediapipe")
    return result


def mask_agreement(ours_dir: Path, theirs_dir: Path) -> dict:
    """Pixel agreement and person IoU of segtool's category PNGs with MediaPipe's."""
    from PIL import Image

    same = total = inter = union = 0
    for ours_file in sorted(ours_dir.glob("*.category.png")):
        ours = np.asarray(Image.open(ours_file))
        theirs = np.asarray(Image.open(theirs_dir / ours_file.name))
        if theirs.ndim == 3:
            theirs = theirs[..., 0]
        # One-channel models: MediaPipe writes 0 for the person and 255 for background.
        theirs = (theirs == 0).astype(np.uint8) if ours.max() <= 1 and theirs.max() == 255 else theirs
        same += int((ours == theirs).sum())
        total += ours.size
        inter += int(((ours > 0) & (theirs > 0)).sum())
        union += int(((ours > 0) | (theirs > 0)).sum())
    return {"pixels": same / max(1, total), "iou": inter / max(1, union)}


# ---- (d) batches on the CPU (--batching) -------------------------------------------------------

BATCH = 8


def batching_in_memory(models, args) -> list[dict]:
    """ms per image: segment() one by one, segment_batch of BATCH (exact path), and the device
    graph's segment_batch on the CPU provider; alternated round by round on the same pictures."""
    rows = []
    for model in models:
        for size in SIZES:
            images = [picture(*size, i) for i in range(BATCH)]
            sides = {}
            for name, path in (("exact", "exact"), ("graph", "device-graph")):
                os.environ["SEGTOOL_PATH"] = path
                sides[name] = segmenter(model, True)
            os.environ.pop("SEGTOOL_PATH")
            calls = {"one by one": lambda: [sides["exact"].segment(i) for i in images],
                     f"segment_batch({BATCH})": lambda: sides["exact"].segment_batch(images),
                     f"device graph, segment_batch({BATCH})": lambda: sides["graph"].segment_batch(images)}
            times = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    times[name] += [t / BATCH for t in timed(call, max(2, args.repeat // 4))]
            rows.append({"model": model, "size": size, **{n: statistics.median(t) for n, t in times.items()}})
            print(f"bench: batching {model} {size}: {rows[-1]}", file=sys.stderr)
            for side in sides.values():
                side.close()
    return rows


def batching_folders(args, scratch: Path) -> list[dict]:
    """`segtool image` steady images/s at -b 1 (the CPU default) and -b BATCH, alternated."""
    images = scratch / "jpegs"
    if not images.is_dir():
        write_jpegs(images, args.images)
    rows = []
    for model, options in (("selfie", ["--blur"]), ("deeplab", [])):
        base = [*segtool_cli(), "image", str(images), "-o", str(scratch / "batched"), "--model", model,
                "--category-mask", "--no-confidence-masks", *options, "--json", "-q"]
        runs = {1: [], BATCH: [], "wall 1": [], f"wall {BATCH}": []}
        for _ in range(args.rounds):
            for size in (1, BATCH):
                wall, arrivals = stream_lines([*base, "-b", str(size)])
                # A batch's reports arrive together: both sides count from the end of the first
                # BATCH reports, or the batched run's window would leave out its first decodes.
                runs[size].append((len(arrivals) - BATCH) / max(1e-9, arrivals[-1] - arrivals[BATCH - 1]))
                runs[f"wall {size}"].append(len(arrivals) / wall)
        rows.append({"model": model, "outputs": "category PNG" + (" + blur" if options else ""),
                     **{size: statistics.median(r) for size, r in runs.items()}})
        print(f"bench: batching folder {rows[-1]}", file=sys.stderr)
    return rows


def batching_table(memory: list[dict], folders: list[dict]) -> str:
    names = ["one by one", f"segment_batch({BATCH})", f"device graph, segment_batch({BATCH})"]
    lines = ["In memory, confidence + category, median ms per image:", "",
             "| model | size | " + " | ".join(names) + " | batch / one by one |", "| --- | --- |" + " ---: |" * 4]
    for row in memory:
        cells = [f"{row[n]:.1f}" for n in names]
        lines.append(f"| {row['model']} | {row['size'][1]}x{row['size'][0]} | " + " | ".join(cells) +
                     f" | {row[names[1]] / row[names[0]]:.2f} |")
    lines += ["", "`segtool image` on 1920x1080 JPEGs, steady images/s (median of the alternated runs):", "",
              f"| model | outputs | -b 1 (default) | -b {BATCH} | -b {BATCH} / -b 1 | same, with start-up |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in folders:
        lines.append(f"| {row['model']} | {row['outputs']} | {row[1]:.1f} | {row[BATCH]:.1f} | "
                     f"{row[BATCH] / row[1]:.2f} | {row[f'wall {BATCH}'] / row['wall 1']:.2f} |")
    return "\n".join(lines)


# ---- the report -------------------------------------------------------------------------------

def latency_table(rows: list[Latency]) -> str:
    lines = ["| model | size | outputs | segtool ms | MediaPipe ms | MediaPipe / segtool |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        ours = statistics.median(row.segtool)
        theirs = statistics.median(row.mediapipe) if row.mediapipe else float("nan")
        outputs = "confidence + category" if row.category else "confidence"
        lines.append(f"| {row.model} | {row.size[1]}x{row.size[0]} | {outputs} | {ours:.1f} | "
                     f"{theirs:.1f} | {theirs / ours:.2f}x |")
    return "\n".join(lines)


def stage_table(rows: list[dict]) -> str:
    names = ["decode jpeg", "preprocess", "inference", "ort alone", "confidence", "category",
             "segment()", "blur composite", "encode category png", "encode blur jpeg"]
    lines = ["| model | size | " + " | ".join(names) + " |", "| --- | --- |" + " ---: |" * len(names)]
    for row in rows:
        cells = [f"{row[n]:.1f}" if n in row else "" for n in names]
        lines.append(f"| {row['model']} | {row['size'][1]}x{row['size'][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def folder_table(result: dict, count: int) -> str:
    lines = ["| tool | images/s, steady | images/s, incl. start-up | ratio, steady | ratio, incl. start-up |",
             "| --- | ---: | ---: | ---: | ---: |"]
    med = {tool: (statistics.median(r.steady for r in runs), statistics.median(count / r.wall for r in runs))
           for tool, runs in result["runs"].items() if runs}
    base = med.get("mediapipe")
    for tool, (steady, overall) in med.items():
        ratio = f"{steady / base[0]:.2f}x | {overall / base[1]:.2f}x" if base else "| "
        lines.append(f"| {tool} | {steady:.2f} | {overall:.2f} | {ratio} |")
    if "agreement" in result:
        agree = result["agreement"]
        lines.append(f"\nCategory masks, segtool vs MediaPipe: {agree['pixels'] * 100:.3f}% of pixels equal, "
                     f"person IoU {agree['iou']:.4f}.")
    return "\n".join(lines)


def report(args, latency_rows, stage_rows, folder, mediapipe_version, batched=None) -> str:
    import onnxruntime
    from segtool.runtime import default_jobs, default_threads, physical_cores

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"Measured {when} by `python scripts/bench.py {' '.join(args.argv)}` on {platform.machine()}, "
             f"{physical_cores()} cores (load average at start {os.getloadavg()[0]:.1f}), onnxruntime "
             f"{onnxruntime.__version__}, MediaPipe {mediapipe_version or 'not run'}; segtool defaults: "
             f"{default_threads()} onnxruntime threads, {default_jobs()} jobs."]
    if latency_rows:
        parts += ["### In-memory latency, `segment()`, median ms", latency_table(latency_rows)]
    if stage_rows:
        parts += ["### Where segtool's time goes, median ms per image", stage_table(stage_rows)]
    if folder:
        parts += [f"### Folder of {args.images} 1920x1080 JPEGs -> category PNG + blur composite "
                  f"(model {args.folder_model}, median of {args.rounds} runs)",
                  f"`segtool {folder['command']}`", folder_table(folder, args.images)]
    if batched:
        parts += ["### Batches on the CPU (--batching)", batching_table(*batched)]
    return "\n\n".join(parts) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace what an earlier run wrote between the markers; other sections stay as they are."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{MARK_START}\n{text}{MARK_END}"
    if MARK_START in old and MARK_END in old:
        head, rest = old.split(MARK_START, 1)
        new = head + block + rest.split(MARK_END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n## Speed: segtool vs MediaPipe (scripts/bench.py)\n\n" + block + "\n"
    path.write_text(new)


# ---- main -------------------------------------------------------------------------------------

def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=20, help="calls per block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks (and folder runs) per tool")
    parser.add_argument("--images", type=int, default=40, help="JPEGs in the folder benchmark")
    parser.add_argument("--folder-model", default="selfie")
    parser.add_argument("--segtool-args", nargs=argparse.REMAINDER, default=[],
                        help="extra `segtool image` options for the folder run (last on the line)")
    parser.add_argument("--mp-python", default="/work/mpvenv/bin/python",
                        help="python of an environment with mediapipe; '' to run segtool alone")
    parser.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared" / "models",
                        help="MediaPipe's TFLite files")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: latency,stages,folder")
    parser.add_argument("--write", type=Path, help="update this markdown file's bench.py section")
    parser.add_argument("--batching", action="store_true",
                        help=f"also: batches of {BATCH} against one image at a time on the CPU, in memory and folders")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.mp_python and not Path(args.mp_python).exists():
        print(f"bench: {args.mp_python} not found; running segtool alone", file=sys.stderr)
        args.mp_python = ""
    return args


def main(argv=None) -> int:
    args = parse(argv)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="segtool-bench-") as tmp:
        scratch = Path(tmp)
        models = usable_models(args.models.split(","), args.models_dir, scratch)
        mediapipe = MediaPipe(args.mp_python, args.models_dir) if args.mp_python and "latency" not in skip else None
        try:
            latency_rows = latency(models, args, mediapipe, scratch) if "latency" not in skip else []
        finally:
            if mediapipe:
                mediapipe.close()
        stage_rows = stages(models, args) if "stages" not in skip else []
        folder = folder_throughput(args, scratch) if "folder" not in skip else None
        batched = ((batching_in_memory([m for m in models if m in ("selfie", "deeplab")], args),
                    batching_folders(args, scratch)) if args.batching else None)
        text = report(args, latency_rows, stage_rows, folder, mediapipe.version if mediapipe else None, batched)
    print(text)
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
