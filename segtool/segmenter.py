"""ImageSegmenter: MediaPipe Tasks' API over preprocess -> runtime -> postprocess."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np

from . import registry
from .errors import ModelError, UsageError
from .io import to_rgb8
from .options import ImageProcessingOptions, ImageSegmenterOptions, RunningMode, SegmentationResult
from .postprocess import postprocess, probabilities, subject_classes, subject_probability
from .preprocess import image_to_tensor, resample_to_model, validate_image
from .runtime import (DEVICE_PROVIDERS, ExecutionPath, InferenceSession, choose_path, concurrent_runs,
                      default_batch_size, usable_cpus)

_NO_ROTATION = ImageProcessingOptions()
_DEVICES = ("auto", *DEVICE_PROVIDERS)


class ImageSegmenter:
    """Segments images, video frames or a live stream, as fixed by ``options.running_mode``.

    Use as a context manager, or call ``close()``: a LIVE_STREAM segmenter runs a worker thread.
    """

    def __init__(self, options: ImageSegmenterOptions, model: registry.ResolvedModel,
                 session: InferenceSession, device_graph=None, path: Optional[ExecutionPath] = None):
        self._options = options
        self._model = model
        self._session = session
        self._device_graph = device_graph  # a gpu_graph.DeviceGraph when the path is device-graph
        self._path = path or ExecutionPath("exact", "built without a path choice")
        self._pool: Optional[ThreadPoolExecutor] = None  # segment_batch's CPU stages, made when first needed
        self._last_timestamp: Optional[int] = None
        self._previous_mask: Optional[np.ndarray] = None  # the hair network's fourth channel
        self._worker = LatestFrameWorker(self._deliver) if _is_live(options) else None
        self._closed = False

    @classmethod
    def create_from_options(cls, options: ImageSegmenterOptions) -> "ImageSegmenter":
        _check_options(options)
        model = registry.resolve(options.model, buffer=options.model_buffer)
        registry.verify(model)
        if options.output_subject_classes is not None:  # indices that fit this model's categories
            subject_classes(len(model.spec.labels_for(options.display_names_locale)), options.output_subject_classes)
        session = InferenceSession(model.path, device=options.device, num_threads=options.num_threads,
                                   spin=options.busy_wait)
        _check_signature(model, session)
        path = choose_path(session.providers, image_mode=options.running_mode is RunningMode.IMAGE)
        graph = _device_graph(options, model, path) if path.device_graph else None
        return cls(options, model, session, graph, path)

    @classmethod
    def create_from_model_path(cls, model_path: Union[str, os.PathLike]) -> "ImageSegmenter":
        """A segmenter in IMAGE mode for a TFLite or ONNX file (a path, never a model name)."""
        return cls.create_from_options(ImageSegmenterOptions(model=Path(os.fspath(model_path))))

    @classmethod
    def create_from_model_buffer(cls, model_buffer: bytes) -> "ImageSegmenter":
        """A segmenter in IMAGE mode for a TFLite or ONNX file's bytes."""
        return cls.create_from_options(ImageSegmenterOptions(model_buffer=model_buffer))

    # ---- properties -----------------------------------------------------------------------

    @property
    def options(self) -> ImageSegmenterOptions:
        return self._options

    @property
    def spec(self) -> registry.ModelSpec:
        return self._model.spec

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels_for(self._options.display_names_locale)

    @property
    def providers(self) -> list[str]:
        return self._session.providers

    @property
    def path(self) -> ExecutionPath:
        """Which computation runs around the network, and why (``segtool info``, ``--verbose``)."""
        return self._path

    @property
    def default_batch_size(self) -> int:
        return default_batch_size(self._path, self.providers)

    @property
    def concurrent_runs(self) -> int:
        """How many run_prepared calls pay to have in flight at once (threads of the caller's)."""
        return concurrent_runs(self.providers)

    @property
    def dropped_frames(self) -> int:
        return self._worker.dropped if self._worker else 0

    # ---- one method per running mode ------------------------------------------------------

    def segment(self, image, image_processing_options: ImageProcessingOptions = _NO_ROTATION
                ) -> SegmentationResult:
        """Segment one image: uint8 or uint16 (H, W) or (H, W, 1) gray, (H, W, 3) RGB or (H, W, 4)
        RGBA (alpha laid over white), or float32/float64 of those shapes holding 0..1. Anything
        else (floats holding 0..255, NaN, bool, 2 or 5 channels, empty, 4-D) raises ValueError.
        """
        self._require_mode(RunningMode.IMAGE, "segment")
        return self._segment_batch([validate_image(image)], image_processing_options)[0]

    def segment_batch(self, images: Sequence, image_processing_options: ImageProcessingOptions = _NO_ROTATION
                      ) -> list[SegmentationResult]:
        """IMAGE mode, several images in one inference call where the model allows it."""
        self._require_mode(RunningMode.IMAGE, "segment_batch")
        return self._segment_batch([validate_image(image) for image in images], image_processing_options)

    def segment_for_video(self, image, timestamp_ms: int,
                          image_processing_options: ImageProcessingOptions = _NO_ROTATION
                          ) -> SegmentationResult:
        self._require_mode(RunningMode.VIDEO, "segment_for_video")
        image = validate_image(image)  # before the clock moves: a refused frame takes no timestamp
        self._advance_clock(timestamp_ms)
        return self._segment_batch([image], image_processing_options)[0]

    def segment_async(self, image, timestamp_ms: int,
                      image_processing_options: ImageProcessingOptions = _NO_ROTATION) -> None:
        """Queue a frame; the newest frame wins when inference falls behind."""
        self._require_mode(RunningMode.LIVE_STREAM, "segment_async")
        image = validate_image(image)
        self._advance_clock(timestamp_ms)
        self._worker.submit((to_rgb8(image), timestamp_ms, image_processing_options))

    def close(self) -> None:
        """Stop the worker threads; every method that segments raises ValueError from now on.

        Closing twice is harmless. A LIVE_STREAM callback's error not yet surfaced is raised here.
        """
        if self._closed:
            return
        try:
            if self._worker:
                self._worker.close()  # runs the frame still waiting, so closed only after it
        finally:
            self._closed = True
            if self._pool:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> "ImageSegmenter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the pipeline for one call --------------------------------------------------------

    def _segment_batch(self, images: list, processing: ImageProcessingOptions) -> list[SegmentationResult]:
        rotation = _rotation(processing)
        prepared = self._map(lambda image: self.prepare(image, rotation), images)
        outputs = self._run_in_lanes(prepared)
        return self._map(lambda pair: self.finish(*pair), list(zip(outputs, prepared)))

    def _run_in_lanes(self, prepared: list) -> list:
        """run_prepared, split into concurrent_runs calls side by side where that pays (CUDA)."""
        lanes = min(self.concurrent_runs, len(prepared))
        if lanes < 2:
            return self.run_prepared(prepared)
        step = -(-len(prepared) // lanes)
        parts = self._map(self.run_prepared, [prepared[i:i + step] for i in range(0, len(prepared), step)])
        return [output for part in parts for output in part]

    # ---- the three stages of a batch, for callers that run them on threads of their own ----
    # segment_batch == finish(run_prepared([prepare(image) ...])): pipeline.run_images prepares
    # and finishes on its --jobs threads and makes one inference call per batch in between.

    def prepare(self, image, rotation_degrees: int = 0) -> "Prepared":
        """CPU work before inference for one image: its tensor (exact path) or model-size pixels."""
        self._require_open("prepare")
        frame = to_rgb8(np.asarray(image))
        if self._device_graph is not None and rotation_degrees == 0:
            spec = self.spec
            pixels = resample_to_model(frame, spec.input_size, input_channels=spec.input_channels)
            return Prepared(pixels, frame.shape[:2], 0, on_device=True)
        return Prepared(self._tensor(frame, rotation_degrees), frame.shape[:2], rotation_degrees)

    def run_prepared(self, prepared: list) -> list:
        """One inference call for the whole batch where the model allows (per image size on the device graph)."""
        self._require_open("run_prepared")
        outputs: list = [None] * len(prepared)
        for indices in _groups(prepared, self._session.batchable):
            group = [prepared[i] for i in indices]
            for i, output in zip(indices, self._run_group(group)):
                outputs[i] = output
        return outputs

    def finish(self, output, prepared: "Prepared") -> SegmentationResult:
        """CPU work after inference for one image: its masks at the image's size."""
        self._require_open("finish")
        if prepared.on_device:
            confidence, category, subject = output
            return SegmentationResult(confidence_masks=confidence, category_mask=category, subject_alpha=subject)
        return self._result(output, prepared.image_size, prepared.rotation)

    def _run_group(self, group: list) -> list:
        if group[0].on_device:
            return self._device_graph.run([p.tensor for p in group], group[0].image_size)
        tensors = [p.tensor for p in group]
        # One frame (every segment() call) is a view, not a copy: 4 MB less to move for hair.
        raw = self._session.run(tensors[0][None] if len(tensors) == 1 else np.stack(tensors))
        if self.spec.input_channels == 4 and self._options.running_mode is not RunningMode.IMAGE:
            self._previous_mask = probabilities(raw[-1], self.spec.activation)[1]
        return list(raw)

    def _map(self, function: Callable, items: list) -> list:
        """``function`` over ``items``, on every usable CPU when there are several (results in order)."""
        if len(items) < 2 or usable_cpus() < 2:
            return [function(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=usable_cpus(), thread_name_prefix="segtool-batch")
        return list(self._pool.map(function, items))

    def _tensor(self, frame: np.ndarray, rotation: int) -> np.ndarray:
        spec = self.spec
        tensor = image_to_tensor(frame, spec.input_size, mean=spec.mean, std=spec.std,
                                 rotation_degrees=rotation, input_channels=spec.input_channels)
        if spec.input_channels == 4:
            # cvtColor copies RGB into a 4-channel array 10x faster than np.concatenate, which
            # moves the pixels one 12-byte piece at a time; the fourth channel is then set.
            rgba = cv2.cvtColor(tensor, cv2.COLOR_RGB2RGBA)
            rgba[:, :, 3] = self._mask_channel()[:, :, 0]
            tensor = rgba
        return tensor

    def _mask_channel(self) -> np.ndarray:
        # MediaPipe Tasks feeds zeros for still images; for video the hair network was trained
        # to take the previous frame's mask, which steadies it.
        if self._previous_mask is None or self._options.running_mode is RunningMode.IMAGE:
            return np.zeros((*self.spec.input_size, 1), np.float32)
        return self._previous_mask[:, :, None].astype(np.float32)

    def _result(self, raw: np.ndarray, image_size: tuple, rotation: int) -> SegmentationResult:
        options = self._options
        subject = options.output_subject_classes
        confidence, category = postprocess(
            raw, activation=self.spec.activation, image_size=image_size, rotation_degrees=rotation,
            confidence=options.output_confidence_masks or subject is not None, category=options.output_category_mask,
        )
        alpha = None if subject is None else subject_probability(confidence, subject)
        return SegmentationResult(confidence_masks=confidence if options.output_confidence_masks else None,
                                  category_mask=category, subject_alpha=alpha)

    def _deliver(self, item) -> None:
        frame, timestamp_ms, processing = item
        result = self._segment_batch([frame], processing)[0]
        self._options.result_callback(result, frame, timestamp_ms)

    # ---- checks ---------------------------------------------------------------------------

    def _require_open(self, method: str) -> None:
        if self._closed:
            # MediaPipe's task runner says "Task runner is currently not running." (a ValueError)
            raise UsageError(f"{method}() called after close(): this ImageSegmenter is closed "
                             "(its task runner is not running); create a new one")

    def _require_mode(self, mode: RunningMode, method: str) -> None:
        self._require_open(method)
        if self._options.running_mode is not mode:
            raise UsageError(
                f"{method}() needs running_mode {mode.name}, but this segmenter was created with "
                f"{self._options.running_mode.name}"
            )

    def _advance_clock(self, timestamp_ms: int) -> None:
        if self._last_timestamp is not None and timestamp_ms <= self._last_timestamp:
            raise UsageError(
                f"timestamp {timestamp_ms} ms is not after the previous one ({self._last_timestamp} ms); "
                "timestamps must increase"
            )
        self._last_timestamp = int(timestamp_ms)


@dataclass(frozen=True)
class Prepared:
    """One image made ready for inference: ``tensor`` is the float tensor, or on the device graph
    the uint8 model-size pixels; ``image_size`` is the (height, width) its masks come back at."""

    tensor: np.ndarray
    image_size: tuple
    rotation: int = 0
    on_device: bool = False


def _groups(prepared: list, batchable: bool) -> list[list[int]]:
    """Indices that go into one inference call: all of them, one by one for a fixed batch of 1,
    and on the device graph one call per image size (the graph upsamples to one size a call)."""
    if not prepared:
        return []
    if not batchable:
        return [[i] for i in range(len(prepared))]
    groups: dict = {}
    for i, item in enumerate(prepared):
        groups.setdefault((item.on_device, item.image_size if item.on_device else None), []).append(i)
    return list(groups.values())


def _device_graph(options: ImageSegmenterOptions, model: registry.ResolvedModel, path: ExecutionPath):
    from . import gpu_graph

    wanted = gpu_graph.GraphOutputs(confidence=options.output_confidence_masks,
                                    category=options.output_category_mask, subject=options.output_subject_classes)
    session = InferenceSession(gpu_graph.build(model.path, model.spec, wanted), device=options.device,
                               num_threads=options.num_threads, spin=options.busy_wait,
                               name=f"{model.path} (device graph)")
    return gpu_graph.DeviceGraph(session, wanted)


def _is_live(options: ImageSegmenterOptions) -> bool:
    return options.running_mode is RunningMode.LIVE_STREAM


def _check_options(options: ImageSegmenterOptions) -> None:
    """Every option, checked when the segmenter is made: a ValueError naming the option, the
    value given and what it takes (nothing is loaded before this passes)."""
    if not isinstance(options, ImageSegmenterOptions):
        raise UsageError(f"options must be an ImageSegmenterOptions, not {type(options).__name__}")
    model = options.model
    if getattr(options, "model_buffer", None) is None and (
            not isinstance(model, (str, os.PathLike)) or not os.fspath(model)):
        raise UsageError(f"model must be a model name (segtool models list) or a path to a model file, not {model!r}")
    if not isinstance(options.running_mode, RunningMode):
        raise UsageError(f"running_mode must be a RunningMode (IMAGE, VIDEO or LIVE_STREAM), not {options.running_mode!r}")
    for name in ("output_category_mask", "output_confidence_masks", "busy_wait"):
        if not isinstance(getattr(options, name), (bool, np.bool_)):
            raise UsageError(f"{name} must be True or False, not {getattr(options, name)!r}")
    locale = options.display_names_locale
    if not isinstance(locale, str) or not locale.strip():
        raise UsageError(f"display_names_locale must be a locale name such as 'en', not {locale!r}")
    if options.device not in _DEVICES:
        raise UsageError(f"device must be one of {', '.join(map(repr, _DEVICES))}, not {options.device!r}")
    threads = options.num_threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"num_threads must be None (as many as suit this machine) or a whole number of "
                         f"at least 1, not {threads!r}")
    if options.result_callback is not None and not callable(options.result_callback):
        raise UsageError(f"result_callback must be a function (result, image, timestamp_ms), not {options.result_callback!r}")
    if _is_live(options) and options.result_callback is None:
        raise UsageError("LIVE_STREAM mode needs a result_callback")
    if not _is_live(options) and options.result_callback is not None:
        raise UsageError(f"result_callback is only for LIVE_STREAM mode, not {options.running_mode.name}")
    subject = options.output_subject_classes
    if subject is not None and (not isinstance(subject, tuple) or not subject or any(
            isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0 for c in subject)):
        raise UsageError(f"output_subject_classes must be None or a tuple of category indices, not {subject!r}")
    if not (options.output_category_mask or options.output_confidence_masks or subject):
        raise UsageError("ask for at least one of output_category_mask, output_confidence_masks and "
                         "output_subject_classes")


def _check_signature(model: registry.ResolvedModel, session: InferenceSession) -> None:
    """A file that loads but is not the model its name promises is refused, not run."""
    expected = (model.spec.input_height, model.spec.input_width, model.spec.input_channels)
    if tuple(session.input_shape[1:]) != expected:
        raise ModelError(
            f"{model.path}: input {tuple(session.input_shape[1:])} is not the {expected} of model "
            f"'{model.spec.name}'; {registry.reinstall_hint(model.spec)}"
        )


def _rotation(processing: Optional[ImageProcessingOptions]) -> int:
    degrees = (processing or _NO_ROTATION).rotation_degrees
    if degrees % 90:
        raise UsageError(f"rotation_degrees must be a multiple of 90, not {degrees}")
    return degrees % 360


class LatestFrameWorker:
    """Runs frames one at a time on a thread; a frame still waiting when a newer one arrives is dropped."""

    def __init__(self, handle):
        self._handle = handle
        self._ready = threading.Condition()
        self._pending = None
        self._closed = False
        self._error: Optional[BaseException] = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="segtool-live", daemon=True)
        self._thread.start()

    def submit(self, item) -> None:
        with self._ready:
            self._raise_pending_error()
            if self._closed:
                raise UsageError("this LIVE_STREAM segmenter is closed")
            if self._pending is not None:
                self.dropped += 1
            self._pending = item
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()
        self._raise_pending_error()

    def _loop(self) -> None:
        while True:
            with self._ready:
                while self._pending is None and not self._closed:
                    self._ready.wait()
                if self._pending is None:
                    return
                item, self._pending = self._pending, None
            try:
                self._handle(item)
            except BaseException as exc:  # surfaced to the caller on its next call
                with self._ready:
                    self._error = self._error or exc

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
