"""ImageSegmenter: MediaPipe Tasks' API over preprocess -> runtime -> postprocess."""
from __future__ import annotations

import threading
from typing import Optional, Sequence

import cv2
import numpy as np

from . import registry
from .errors import ModelError, UsageError
from .io import to_rgb8
from .options import ImageProcessingOptions, ImageSegmenterOptions, RunningMode, SegmentationResult
from .postprocess import postprocess, probabilities
from .preprocess import image_to_tensor, validate_image
from .runtime import InferenceSession

_NO_ROTATION = ImageProcessingOptions()


class ImageSegmenter:
    """Segments images, video frames or a live stream, as fixed by ``options.running_mode``.

    Use as a context manager, or call ``close()``: a LIVE_STREAM segmenter runs a worker thread.
    """

    def __init__(self, options: ImageSegmenterOptions, model: registry.ResolvedModel,
                 session: InferenceSession):
        self._options = options
        self._model = model
        self._session = session
        self._last_timestamp: Optional[int] = None
        self._previous_mask: Optional[np.ndarray] = None  # the hair network's fourth channel
        self._worker = _LatestFrameWorker(self._deliver) if _is_live(options) else None

    @classmethod
    def create_from_options(cls, options: ImageSegmenterOptions) -> "ImageSegmenter":
        _check_options(options)
        model = registry.locate(options.model)
        registry.verify(model)
        session = InferenceSession(model.path, device=options.device, num_threads=options.num_threads,
                                   spin=options.busy_wait)
        _check_signature(model, session)
        return cls(options, model, session)

    @classmethod
    def create_from_model_path(cls, model: str) -> "ImageSegmenter":
        return cls.create_from_options(ImageSegmenterOptions(model=model))

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
        if self._worker:
            self._worker.close()

    def __enter__(self) -> "ImageSegmenter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the pipeline for one call --------------------------------------------------------

    def _segment_batch(self, images: list, processing: ImageProcessingOptions) -> list[SegmentationResult]:
        rotation = _rotation(processing)
        frames = [to_rgb8(np.asarray(image)) for image in images]
        if len(frames) > 1 and not self._session.batchable:
            return [r for f in frames for r in self._segment_batch([f], processing)]
        tensors = [self._tensor(f, rotation) for f in frames]
        # One frame (every segment() call) is a view, not a copy: 4 MB less to move for hair.
        raw = self._session.run(tensors[0][None] if len(tensors) == 1 else np.stack(tensors))
        if self.spec.input_channels == 4 and self._options.running_mode is not RunningMode.IMAGE:
            self._previous_mask = probabilities(raw[-1], self.spec.activation)[1]
        return [self._result(r, f.shape[:2], rotation) for r, f in zip(raw, frames)]

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
        confidence, category = postprocess(
            raw, activation=self.spec.activation, image_size=image_size, rotation_degrees=rotation,
            confidence=self._options.output_confidence_masks, category=self._options.output_category_mask,
        )
        return SegmentationResult(confidence_masks=confidence, category_mask=category)

    def _deliver(self, item) -> None:
        frame, timestamp_ms, processing = item
        result = self._segment_batch([frame], processing)[0]
        self._options.result_callback(result, frame, timestamp_ms)

    # ---- checks ---------------------------------------------------------------------------

    def _require_mode(self, mode: RunningMode, method: str) -> None:
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


def _is_live(options: ImageSegmenterOptions) -> bool:
    return options.running_mode is RunningMode.LIVE_STREAM


def _check_options(options: ImageSegmenterOptions) -> None:
    if not isinstance(options.running_mode, RunningMode):
        raise UsageError(f"running_mode must be a RunningMode, not {options.running_mode!r}")
    if _is_live(options) and options.result_callback is None:
        raise UsageError("LIVE_STREAM mode needs a result_callback")
    if not _is_live(options) and options.result_callback is not None:
        raise UsageError(f"result_callback is only for LIVE_STREAM mode, not {options.running_mode.name}")
    if not (options.output_category_mask or options.output_confidence_masks):
        raise UsageError("ask for at least one of output_category_mask and output_confidence_masks")


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


class _LatestFrameWorker:
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
