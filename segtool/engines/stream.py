"""The stream engine: videos and live streams, source -> segmenter -> smoothing -> effects -> sinks.

Each frame's mask files follow the output contract (outputs.frame_files) and are written by
job.write_outputs, the unit of work's own writer. Knows nothing of Click: the CLI opens a source, builds the outputs and a segmenter, then calls
``run_video`` (VIDEO mode) or ``run_live`` (LIVE_STREAM mode); progress and status come back
through callbacks. Decoding and encoding run in ffmpeg processes; a reading thread and a
rendering thread, each behind a short queue, overlap them with inference while keeping memory
flat however long the video.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from .. import effects
from .. import io as sio
from ..job import write_outputs
from ..options import ImageSegmenterOptions, RunningMode, SegmentationResult
from ..outputs import MASK_VIDEO, ImageOutputs, frame_files
from ..postprocess import argmax_first
from .inflight import opencv_threads

QUEUE_DEPTH = 4  # frames in flight per stage: enough to ride out jitter, little memory
# MediaPipe's uncertainty polynomial (SegmentationSmoothingCalculator), in (p - 0.5)^2
_UNCERTAINTY = (5.68842, -0.748699, -57.8051, 291.309, -624.717)


# ---- what to produce, what happened ---------------------------------------------------------

@dataclass(frozen=True)
class VideoOutputs:
    """What one video produces.

    ``videos``: (name, path) pairs; name is a composite (effects.COMPOSITES, 'cutout' for a
    video with alpha) or MASK_VIDEO (the subject's probability as grey). Per-frame mask files
    go to ``frames_dir`` as <stem>.<frame>.category.png / .confidence.<fmt>, frames counted
    from 1. ``smooth`` in [0, 1): how much of the previous frame's mask uncertain pixels keep.
    """

    videos: tuple[tuple[str, Path], ...] = ()
    frames_dir: Optional[Path] = None
    stem: str = "frame"
    category_mask: bool = False
    category_preview: bool = False  # also <stem>.<frame>.category-color.png (RGB, to look at)
    confidence_masks: bool = False
    confidence_format: str = "npy"
    effect_options: effects.EffectOptions = field(default_factory=effects.EffectOptions)
    smooth: float = 0.0
    keep_audio: bool = True

    @property
    def writes_frames(self) -> bool:
        return self.frames_dir is not None and (self.category_mask or self.confidence_masks)

    @property
    def frame_masks(self) -> ImageOutputs:
        """What each frame writes, in the output contract's terms (outputs.frame_files)."""
        return ImageOutputs(out_dir=self.frames_dir or Path("."), category_mask=self.category_mask,
                            category_preview=self.category_preview, confidence_masks=self.confidence_masks,
                            confidence_format=self.confidence_format)


@dataclass(frozen=True)
class VideoReport:
    """One video's outcome. ``problem``: why the input ended early (its outputs are still whole)."""

    input: str
    outputs: tuple[Path, ...]
    frames: int
    fps: Fraction
    seconds: float
    frame_files: int = 0
    problem: Optional[str] = None
    notes: tuple[str, ...] = ()

    @property
    def speed(self) -> float:
        """Frames processed per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def inference_threads() -> int:
    """onnxruntime threads for a video pipeline: half the cores; the rest decode, render and encode.

    Inference overlaps those stages here. Measured on 2 cores, 720p selfie + blur: 2 spinning
    threads cost 74-89 ms of CPU per frame, 2 without spinning 53, 1 thread 47-55, and neither
    of the last two was slower. Pipelines also turn spinning off (``busy_wait=False``).
    """
    from ..runtime import default_threads

    return max(1, default_threads() // 2)


def pipeline_options(options: ImageSegmenterOptions) -> ImageSegmenterOptions:
    """``options`` as a video pipeline runs best: inference_threads() unless set, no spinning."""
    return dataclasses.replace(options, num_threads=options.num_threads or inference_threads(), busy_wait=False)


# ---- temporal smoothing -----------------------------------------------------------------------

def smooth_confidence(previous: np.ndarray, current: np.ndarray, ratio: float) -> np.ndarray:
    """MediaPipe's segmentation smoothing, per category: uncertain pixels keep ``ratio`` of the
    previous mask, confident ones follow the new frame (so moving edges do not lag).

    Two categories are complementary and stay so; more are renormalised to sum to one.
    """
    if current.shape[0] == 2:
        foreground = _smooth_channel(previous[1], current[1], ratio)
        return np.stack([1.0 - foreground, foreground])
    smoothed = np.stack([_smooth_channel(p, c, ratio) for p, c in zip(previous, current)])
    return smoothed / np.maximum(smoothed.sum(axis=0, keepdims=True), 1e-6)


def _smooth_channel(previous: np.ndarray, current: np.ndarray, ratio: float) -> np.ndarray:
    x = np.square(current - np.float32(0.5))
    c1, c2, c3, c4, c5 = (np.float32(c) for c in _UNCERTAINTY)
    certainty = np.minimum(x * (c1 + x * (c2 + x * (c3 + x * (c4 + x * c5)))), np.float32(1.0))
    weight = (np.float32(1.0) - certainty) * np.float32(ratio)
    return current + (previous - current) * weight


class Smoother:
    """Applies smooth_confidence across a stream of results; ratio 0 passes them through."""

    def __init__(self, ratio: float):
        self._ratio = ratio
        self._previous: Optional[np.ndarray] = None

    def __call__(self, result: SegmentationResult) -> SegmentationResult:
        masks = result.confidence_masks
        if not self._ratio or masks is None:
            return result
        if self._previous is not None and self._previous.shape == masks.shape:
            masks = smooth_confidence(self._previous, masks, self._ratio).astype(np.float32, copy=False)
        self._previous = masks
        # the category mask must agree with the masks actually used
        category = argmax_first(masks) if result.category_mask is not None else None
        return SegmentationResult(confidence_masks=masks, category_mask=category)


# ---- timestamps ----------------------------------------------------------------------------

class StrictClock:
    """Millisecond timestamps that always increase, as segment_for_video/segment_async demand."""

    def __init__(self):
        self._last = -1

    def stamp(self, milliseconds: float) -> int:
        self._last = max(round(milliseconds), self._last + 1)
        return self._last


# ---- threads between the stages ---------------------------------------------------------------

_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(reader, depth: int = QUEUE_DEPTH) -> Iterator[np.ndarray]:
    """Iterate ``reader`` on a thread, up to ``depth`` frames ahead; its errors re-raised here.

    Leaving early (an error, Ctrl-C) closes the reader, which ends any read in progress.
    """
    frames: queue.Queue = queue.Queue(maxsize=depth)

    def produce():
        try:
            for frame in reader:
                frames.put(frame)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            frames.put(_Failed(exc))
        finally:
            frames.put(_END)

    thread = threading.Thread(target=produce, name="segtool-decode", daemon=True)
    thread.start()
    try:
        while (item := frames.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        reader.close()
        while thread.is_alive():  # let a producer blocked on a full queue finish
            with contextlib.suppress(queue.Empty):
                frames.get(timeout=0.05)
        thread.join()


class Background:
    """Calls ``handle(item)`` on one thread for each ``put`` item, in order, at most ``depth`` behind.

    A context manager: leaving normally waits for the queue to empty and re-raises the first
    error ``handle`` met; leaving by an exception discards what is queued.
    """

    def __init__(self, handle: Callable, depth: int = QUEUE_DEPTH, name: str = "segtool-render"):
        self._handle = handle
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._discard = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> "Background":
        self._thread.start()
        return self

    def put(self, item) -> None:
        self._raise_error()
        self._items.put(item)

    def _run(self) -> None:
        # keeps taking items after an error, so that put() can never block for ever
        while (item := self._items.get()) is not _END:
            if self._error is None and not self._discard:
                try:
                    self._handle(item)
                except BaseException as exc:
                    self._error = exc

    def __exit__(self, exc_type, exc, tb) -> None:
        self._discard = exc_type is not None
        self._items.put(_END)
        self._thread.join()
        if exc_type is None:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


# ---- rendering and writing one frame ------------------------------------------------------------

def render(name: str, frame: np.ndarray, result: SegmentationResult, options: effects.EffectOptions) -> np.ndarray:
    """The picture a video named ``name`` gets for this frame."""
    # The mask video is the alpha the composites use (refined unless --no-refine), as --alpha-mask.
    return effects.render("alpha" if name == MASK_VIDEO else name, frame, result.confidence_masks, options)


class _FrameSink:
    """Everything written per frame: video writers (opened on their first frame) and mask files.

    A context manager around the writers: leaving normally finishes (and renames) every video;
    leaving by an exception removes them all.
    """

    def __init__(self, outputs: VideoOutputs, info: sio.VideoInfo, labels: Sequence[str]):
        self._outputs = outputs
        self._info = info
        self._labels = labels
        self._writers: dict[str, sio.VideoWriter] = {}
        self._stack = contextlib.ExitStack()
        self._smoother = Smoother(outputs.smooth)
        self._frame_masks = outputs.frame_masks
        self.frame_files = 0

    def __enter__(self) -> "_FrameSink":
        if self._outputs.writes_frames:
            sio.ensure_dir(self._outputs.frames_dir)
        return self

    def __exit__(self, *exc_info):
        return self._stack.__exit__(*exc_info)

    @property
    def written(self) -> tuple[Path, ...]:
        return tuple(writer.path for writer in self._writers.values())

    def handle(self, item) -> None:
        index, frame, result = item
        result = self._smoother(result)
        for name, path in self._outputs.videos:
            picture = render(name, frame, result, self._outputs.effect_options)
            self._writer(name, path, picture).write(picture)
        if self._outputs.writes_frames:
            plan = frame_files(self._outputs.stem, index, self._frame_masks)
            write_outputs(plan, frame, result, self._labels, self._frame_masks)
            self.frame_files += len(plan)

    def _writer(self, name: str, path: Path, picture: np.ndarray) -> sio.VideoWriter:
        if name not in self._writers:
            channels = 1 if picture.ndim == 2 else picture.shape[2]
            keep_audio = self._outputs.keep_audio and name not in (MASK_VIDEO, "alpha")
            writer = sio.VideoWriter(path, width=self._info.width, height=self._info.height, fps=self._info.fps,
                                     channels=channels, audio_from=self._info if keep_audio else None,
                                     colour=self._info.colour)
            self._writers[name] = self._stack.enter_context(writer)
        return self._writers[name]


# ---- VIDEO mode ---------------------------------------------------------------------------

def run_video(reader: sio.VideoReader, segmenter, outputs: VideoOutputs,
              on_frame: Callable[[int], None] = lambda frames_done: None) -> VideoReport:
    """Segment every frame of ``reader`` with ``segmenter`` (VIDEO mode) and write ``outputs``.

    Timestamps are frame index / fps: the reader delivers frames at a constant rate. Outputs
    are complete files when this returns; an exception (Ctrl-C included) leaves none of the
    videos behind. A truncated input is not an exception: what decoded is written and
    ``problem`` says why it ended.
    """
    started = time.perf_counter()
    info = reader.info
    clock = StrictClock()
    frames = 0
    with opencv_threads(1), _FrameSink(outputs, info, segmenter.labels) as sink, \
            Background(sink.handle) as background:
        with contextlib.closing(read_ahead(reader)) as decoded:
            for frame in decoded:
                result = segmenter.segment_for_video(frame, clock.stamp(frames * 1000 / info.fps))
                background.put((frames + 1, frame, result))
                frames += 1
                on_frame(frames)
    return VideoReport(
        input=reader.label, outputs=sink.written, frames=frames, fps=info.fps,
        seconds=time.perf_counter() - started, frame_files=sink.frame_files,
        problem=_problem(reader, frames), notes=_notes(reader, outputs),
    )


def _problem(reader: sio.VideoReader, frames: int) -> Optional[str]:
    if frames == 0:
        return f"{reader.label}: no frame could be decoded" + (f" ({reader.problem})" if reader.problem else "")
    if reader.problem:
        return f"{reader.label}: {reader.problem} after frame {frames}; the outputs hold the frames that decoded"
    return None


def _notes(reader: sio.VideoReader, outputs: VideoOutputs) -> tuple[str, ...]:
    info, notes = reader.info, []
    repeated, dropped = getattr(reader, "retimed", (0, 0))
    if info.variable_rate or repeated or dropped:
        notes.append(f"{reader.label}: variable frame rate; written at a constant {float(info.fps):g} fps "
                     f"({repeated} frames repeated, {dropped} dropped, duration kept)")
    if outputs.keep_audio and not info.audio_codec and any(n != MASK_VIDEO for n, _ in outputs.videos):
        notes.append(f"{reader.label}: no audio stream; the output video is silent")
    return tuple(notes)


# ---- LIVE_STREAM mode -------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveStatus:
    """How a live run is doing: ``fps`` of results delivered, ``latency_ms`` from capture to result."""

    frames_in: int
    frames_out: int
    dropped: int
    fps: float
    latency_ms: float
    seconds: float
    stopped_by: Optional[BaseException] = None  # the stop_on exception that ended the run, if any


@dataclass(frozen=True)
class LiveOutputs:
    """Where live frames go: one composite (None: the frame as captured) to each sink."""

    composite: Optional[str] = None
    effect_options: effects.EffectOptions = field(default_factory=effects.EffectOptions)
    smooth: float = 0.0


def open_live_sinks(stack: contextlib.ExitStack, info: sio.VideoInfo, outputs: LiveOutputs, *,
                    output: Optional[Path] = None, preview: bool = False) -> list:
    """The preview window and the output file (or virtual camera) a live run writes to, entered
    on ``stack``: leaving it finishes them (a file stays playable)."""
    sinks = []
    if preview:
        sinks.append(stack.enter_context(sio.PreviewWindow(width=info.width, height=info.height, fps=info.fps)))
    if output:
        channels = 4 if outputs.composite == "cutout" else 3  # the cut-out is the one effect with alpha
        sinks.append(stack.enter_context(sio.VideoWriter(output, width=info.width, height=info.height, fps=info.fps,
                                                         channels=channels, realtime=True, colour=info.colour)))
    return sinks


class _LiveStats:
    """Counts, and the last couple of seconds of delivery times and latencies."""

    def __init__(self, window: int = 60):
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.frames_in = 0
        self.frames_out = 0
        self._latencies: collections.deque = collections.deque(maxlen=window)
        self._recent: collections.deque = collections.deque(maxlen=window)

    def delivered(self, latency_ms: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._latencies.append(latency_ms)
            self._recent.append(time.perf_counter())

    def status(self, dropped: int, stopped_by: Optional[BaseException] = None) -> LiveStatus:
        with self._lock:
            recent, latencies = list(self._recent), list(self._latencies)
        span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
        return LiveStatus(self.frames_in, self.frames_out, dropped,
                          fps=(len(recent) - 1) / span if span > 0 else 0.0,
                          latency_ms=float(np.mean(latencies)) if latencies else 0.0,
                          seconds=time.perf_counter() - self.started, stopped_by=stopped_by)


class SignalHold:
    """Holds back Ctrl-C and the other stop signals, once ``start`` is called, while threads and ffmpeg stop in order.

    A signal whose handler raises one of ``stop_on`` lands in ``held`` instead of in the middle of
    a join: raised there, it would leave a thread inside onnxruntime while the interpreter exits
    ("terminate called without an active exception") or an encoder half-finished. Leaving the
    block restores the handlers. Only the main thread has signal handlers; elsewhere a no-op.
    """

    # every signal the CLI turns into an exception: Ctrl-C, SIGTERM, a closed terminal, Ctrl-\
    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))

    def __init__(self, stop_on: tuple):
        self._stop_on = stop_on
        self._previous: dict = {}
        self.held: list[BaseException] = []

    def __enter__(self) -> "SignalHold":
        return self

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for number in self.SIGNALS:
            handler = signal.getsignal(number)
            if callable(handler):  # SIG_DFL / SIG_IGN are left as they are
                self._previous[number] = handler
                signal.signal(number, self._hold)

    def _hold(self, number, frame) -> None:
        try:
            self._previous[number](number, frame)
        except self._stop_on as exc:
            self.held.append(exc)

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def run_live(reader: sio.VideoReader, options: ImageSegmenterOptions, outputs: LiveOutputs,
             sinks: Sequence, *, on_status: Callable[[LiveStatus], None] = lambda status: None,
             status_every_s: float = 1.0, stop_on: tuple = (KeyboardInterrupt,),
             create_segmenter: Optional[Callable] = None) -> LiveStatus:
    """Segment a live source in LIVE_STREAM mode and send composites to ``sinks``.

    Each sink has ``write(frame)``; one returning False (a closed preview window) ends the run.
    Frames go to ``segment_async`` as they arrive; when inference falls behind, the newest frame
    wins. The run ends when the source does, a sink closes, or one of ``stop_on`` is raised
    (Ctrl-C, SIGTERM): all three finish the sinks cleanly, so a file output stays playable.
    The shutdown itself (reader, segmenter thread, rendering thread, in that order) is not
    interrupted by a further signal; the status's ``stopped_by`` is the first one that arrived.
    """
    stats = _LiveStats()
    smoother = Smoother(outputs.smooth)
    finished = threading.Event()
    clock, origin_ms = StrictClock(), time.perf_counter() * 1000  # timestamps count from here

    def deliver(item) -> None:
        result, frame, timestamp_ms = item
        picture = _live_picture(frame, smoother(result), outputs)
        for sink in sinks:
            if sink.write(picture) is False:
                finished.set()
        stats.delivered(time.perf_counter() * 1000 - origin_ms - timestamp_ms)

    stopped_by = None
    # one result waiting at most: when rendering falls behind, the segmenter drops input frames instead
    with SignalHold(stop_on) as hold, Background(deliver, depth=1, name="segtool-live-out") as background:
        callback = lambda result, frame, timestamp_ms: background.put((result, frame, timestamp_ms))
        live_options = dataclasses.replace(pipeline_options(options), running_mode=RunningMode.LIVE_STREAM,
                                           result_callback=callback)
        create = create_segmenter or _create_segmenter
        with create(live_options) as segmenter:
            last_status = time.perf_counter()
            with contextlib.closing(read_ahead(reader, depth=1)) as captured:
                try:
                    for frame in captured:
                        stats.frames_in += 1
                        segmenter.segment_async(frame, clock.stamp(time.perf_counter() * 1000 - origin_ms))
                        if finished.is_set():
                            break
                        if time.perf_counter() - last_status >= status_every_s:
                            last_status = time.perf_counter()
                            on_status(stats.status(segmenter.dropped_frames))
                except stop_on as exc:
                    stopped_by = exc  # a request to stop, not a failure: the sinks finish below
                finally:
                    hold.start()  # from here on, the reader, segmenter and renderer stop in order
        dropped = segmenter.dropped_frames
    return stats.status(dropped, stopped_by or next(iter(hold.held), None))


def _live_picture(frame: np.ndarray, result: SegmentationResult, outputs: LiveOutputs) -> np.ndarray:
    if outputs.composite is None:
        return frame
    picture = render(outputs.composite, frame, result, outputs.effect_options)
    # Live sinks (a camera device, a preview) take RGB: the alpha mask goes out as grey RGB.
    return np.repeat(picture[:, :, None], 3, axis=2) if picture.ndim == 2 else picture


def _create_segmenter(options: ImageSegmenterOptions):
    from ..segmenter import ImageSegmenter

    return ImageSegmenter.create_from_options(options)
