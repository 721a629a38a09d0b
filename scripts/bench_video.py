"""Video throughput with --blur: segtool against a MediaPipe Tasks loop, in the same run.

    python scripts/bench_video.py [--seconds 3] [--models selfie,deeplab] [--markdown]
    python scripts/bench_video.py --live [--reference /work/main] [--rounds 2] [--markdown]

``--live`` measures what a user waits for instead, at 720p30: ``segtool video clip.mp4 --blur``
on a 4-second clip as a command (wall seconds, start-up included), and ``segtool webcam --blur``
on a 720p30 lavfi source for 11 seconds (frames dropped in all and after the first second,
delivered fps). ``--reference TREE`` runs the same with TREE's segtool (e.g. the main branch),
alternating with this tree's, so that the two are compared under the same load.

For 720p30 and 1080p30 synthetic clips (tests/clips.py: a real person sliding over a flat
background, with audio), each model blurs the background of every frame and writes an H.264 MP4.
segtool is timed through ``segtool.engines.stream.run_video`` as `segtool video --blur` sets it up
(decode, VIDEO-mode inference with ``pipeline_options``, the blur composite with its edge
refinement, encode, audio copied). The MediaPipe loop runs
in /work/mpvenv (mediapipe 0.10.21) as a subprocess and does the same job its usual way: frames
from the same ffmpeg pipe, ``segment_for_video``, a full-size Gaussian blur blended by the
confidence mask, and the same x264 settings into the same kind of pipe. Times exclude loading
the model. fps = frames / wall seconds; CPU ms/frame counts every thread and the ffmpeg
children, so it stays meaningful when the machine is shared (two idle cores can at best run
2000 / CPU-ms frames per second).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the clip synthesizer the tests use

MP_PYTHON = Path("/work/mpvenv/bin/python")
MP_MODELS = {  # the TFLite files segtool's ONNX models were converted from
    "selfie": "selfie_segmenter.tflite",
    "selfie_landscape": "selfie_segmentation_landscape.tflite",
    "deeplab": "deeplab_v3.tflite",
    "hair": "hair_segmentation.tflite",
}
SIZES = {"720p30": (1280, 720), "1080p30": (1920, 1080)}

# Runs in MediaPipe's own environment (numpy < 2, no segtool);
# argv: scripts-dir models-dir model ffmpeg clip width height out
MP_LOOP = r"""
import json, resource, subprocess, sys, tempfile, time
from pathlib import Path
import cv2, numpy as np, mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

sys.path.insert(0, sys.argv[1])
from make_reference_masks import model_with_metadata  # MediaPipe needs metadata the landscape and hair files lack

models_dir, name, ffmpeg, clip, out = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[8]
width, height = int(sys.argv[6]), int(sys.argv[7])
model = model_with_metadata(models_dir, name, Path(tempfile.mkdtemp()))
options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(model)),
                                       running_mode=vision.RunningMode.VIDEO, output_confidence_masks=True)
segmenter = vision.ImageSegmenter.create_from_options(options)
decode = subprocess.Popen([ffmpeg, "-loglevel", "error", "-i", clip, "-map", "0:v:0", "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "pipe:1"], stdout=subprocess.PIPE)
encode = subprocess.Popen([ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                           "-s", f"{width}x{height}", "-r", "30", "-i", "pipe:0", "-i", clip, "-map", "0:v:0",
                           "-map", "1:a:0", "-c:a", "copy", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                           "-preset", "veryfast", "-crf", "18", out], stdin=subprocess.PIPE)
sigma = 0.012 * max(width, height)
frames, started, started_cpu = 0, time.perf_counter(), time.process_time()
while True:
    raw = decode.stdout.read(width * height * 3)
    if len(raw) < width * height * 3:
        break
    frame = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    result = segmenter.segment_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame), frames * 1000 // 30)
    masks = [m.numpy_view() for m in result.confidence_masks]
    subject = masks[0] if len(masks) == 1 else 1.0 - masks[0]
    alpha = np.clip(subject, 0, 1)[:, :, None]
    blurred = cv2.GaussianBlur(frame, (0, 0), sigma)
    encode.stdin.write((frame * alpha + blurred * (1.0 - alpha)).astype(np.uint8).tobytes())
    frames += 1
encode.stdin.close()
encode.wait()
decode.wait()
seconds = time.perf_counter() - started
children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the two ffmpegs, started inside the timing
cpu = time.process_time() - started_cpu + children.ru_utime + children.ru_stime
print(json.dumps({"frames": frames, "seconds": seconds, "cpu": cpu}))
"""


class Run(NamedTuple):
    fps: float
    cpu_ms: float  # CPU time per frame, all threads and ffmpeg children: steadier than fps on a busy machine


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def segtool_run(model: str, clip: Path, out: Path) -> Run | None:
    from segtool import io as sio
    from segtool.errors import ModelError
    from segtool.options import ImageSegmenterOptions, RunningMode
    from segtool.segmenter import ImageSegmenter
    from segtool.engines.stream import VideoOutputs, pipeline_options, run_video

    options = pipeline_options(ImageSegmenterOptions(model=model, running_mode=RunningMode.VIDEO))
    try:
        segmenter = ImageSegmenter.create_from_options(options)
    except ModelError:
        return None  # not installed here (hair is converted by the user)
    with segmenter, sio.open_video(clip) as reader:
        started = cpu_seconds()
        report = run_video(reader, segmenter, VideoOutputs(videos=(("blur", out),)))
        cpu = cpu_seconds() - started  # the decoding ffmpeg has been reaped by now, the encoder too
    return Run(report.speed, 1000 * cpu / report.frames)


def mediapipe_run(model: str, clip: Path, size: tuple[int, int], out: Path, models_dir: Path) -> Run | None:
    from segtool.io.video import ffmpeg_exe

    tflite = models_dir / MP_MODELS[model]
    if not MP_PYTHON.is_file() or not tflite.is_file():
        return None
    result = subprocess.run([str(MP_PYTHON), "-c", MP_LOOP, str(ROOT / "scripts"), str(models_dir), model,
                             ffmpeg_exe(), str(clip), str(size[0]), str(size[1]), str(out)], capture_output=True, text=True,
                            env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        print(f"mediapipe loop failed for {model}: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(measured["frames"] / measured["seconds"], 1000 * measured["cpu"] / measured["frames"])


def cells(run: Run | None) -> str:
    return f"{run.fps:.1f} | {run.cpu_ms:.0f}" if run else "- | -"


LIVE_SOURCE = "lavfi:testsrc2=size=1280x720:rate=30:duration={seconds}"


def live_run(seconds: float = 11.0, warmup_s: float = 1.0) -> dict:
    """`segtool webcam --blur --output x.mp4` on a 720p30 lavfi source, in process: what it drops."""
    from segtool import effects
    from segtool import io as sio
    from segtool.options import ImageSegmenterOptions
    from segtool.engines.stream import LiveOutputs, run_live

    statuses = []
    with tempfile.TemporaryDirectory() as tmp, sio.open_live(LIVE_SOURCE.format(seconds=seconds)) as reader:
        info = reader.info
        with sio.VideoWriter(Path(tmp) / "live.mp4", width=info.width, height=info.height, fps=info.fps,
                             channels=3, realtime=True) as sink:
            final = run_live(reader, ImageSegmenterOptions(), LiveOutputs(composite="blur",
                             effect_options=effects.EffectOptions()), [sink], on_status=statuses.append,
                             status_every_s=0.25)
    early = max((s.dropped for s in statuses if s.seconds <= warmup_s), default=0)
    return {"frames_in": final.frames_in, "frames_out": final.frames_out, "dropped": final.dropped,
            "dropped_after_1s": final.dropped - early, "fps": final.fps}


def cli_run(tree: Path, clip: Path, out: Path) -> dict:
    """`segtool video clip --blur -o out` as a user runs it: wall and CPU seconds, start-up included."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segtool", "video", str(clip), "--blur", "-o", str(out), "-q"],
                   env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": cpu}


def live_in(tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--live-once"], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def live_main(args) -> None:
    from clips import make_clip

    trees = {"this tree": ROOT}
    if args.reference:
        trees["reference " + str(args.reference)] = args.reference.resolve()
    cli: dict = {name: [] for name in trees}
    live: dict = {name: [] for name in trees}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "720p30.mp4", size=SIZES["720p30"], frames=120)
        for _ in range(args.rounds):
            for name, tree in trees.items():
                cli[name].append(cli_run(tree, clip, Path(tmp) / "out.mp4"))
                live[name].append(live_in(tree))
                print(name, cli[name][-1], live[name][-1], file=sys.stderr, flush=True)
    rows = ["| segtool | `video --blur`, 4 s 720p30 clip: wall s (each run) | CPU s | `webcam --blur` 720p30, "
            "11 s: dropped (each run) | dropped after the first second | fps delivered |",
            "|---|---|---|---|---|---|"]
    for name in trees:
        walls = ", ".join(f"{r['wall']:.2f}" for r in cli[name])
        cpus = ", ".join(f"{r['cpu']:.2f}" for r in cli[name])
        drops = ", ".join(f"{r['dropped']} of {r['frames_in']}" for r in live[name])
        late = ", ".join(str(r["dropped_after_1s"]) for r in live[name])
        fps = ", ".join(f"{r['fps']:.1f}" for r in live[name])
        rows.append(f"| {name} | {walls} | {cpus} | {drops} | {late} | {fps} |")
    header = (f"`python scripts/bench_video.py --live{' --reference ' + str(args.reference) if args.reference else ''} "
              f"--rounds {args.rounds}` on {datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores; "
              f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the machine is shared).")
    print("\n".join(["### Live: blur at 720p30", "", header, "", *rows, ""] if args.markdown else rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each synthetic clip")
    parser.add_argument("--models", default=",".join(MP_MODELS), help="comma-separated model names")
    parser.add_argument("--mp-models", type=Path, default=ROOT.parent / "shared" / "models",
                        help="folder of the TFLite files for the MediaPipe loop")
    parser.add_argument("--markdown", action="store_true", help="print a '## Video' section for BENCHMARKS.md")
    parser.add_argument("--live", action="store_true", help="the video command and the webcam at 720p30 instead")
    parser.add_argument("--reference", type=Path, help="with --live: also measure this tree's segtool")
    parser.add_argument("--rounds", type=int, default=2, help="with --live: runs of each")
    parser.add_argument("--live-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.live_once:
        print(json.dumps(live_run()))
        return
    if args.live:
        live_main(args)
        return
    from clips import make_clip

    rows, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in SIZES.items():
            clip = make_clip(Path(tmp) / f"{label}.mp4", size=size, frames=round(30 * args.seconds))
            for model in args.models.split(","):
                ours = segtool_run(model, clip, Path(tmp) / "segtool.mp4")
                theirs = mediapipe_run(model, clip, size, Path(tmp) / "mediapipe.mp4", args.mp_models)
                ratio = f"{theirs.cpu_ms / ours.cpu_ms:.2f}x" if ours and theirs else "-"
                rows.append(f"| {label} | {model} | {cells(ours)} | {cells(theirs)} | {ratio} |")
                print(rows[-1], file=sys.stderr, flush=True)
    table = ["| clip | model | segtool fps | segtool CPU ms/frame | MediaPipe fps | MediaPipe CPU ms/frame "
             "| CPU MediaPipe / segtool |", "|---|---|---|---|---|---|---|", *rows]
    if not args.markdown:
        print("\n".join(table))
        return
    print("\n".join([
        "## Video", "",
        f"`python scripts/bench_video.py --seconds {args.seconds:g} --markdown` on "
        f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.platform()}); 1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (the machine is shared).", "",
        "Background blur of every frame of a synthetic clip, decode to encode (H.264, audio copied): frames "
        "per second of wall time, and CPU milliseconds per frame over all threads and the ffmpeg processes. "
        "MediaPipe Tasks 0.10.21 runs the same loop in its own environment in the same run (see the "
        "script's docstring). Real time is 30 fps; 2 cores give at most 2000 / (CPU ms) fps.", "",
        *table, "",
    ]))


if __name__ == "__main__":
    main()
