"""MediaPipe's ImageSegmenter task (``mp.tasks.vision.ImageSegmenter``) over segtool's segmenter.

Outputs follow MediaPipe model by model: a one-channel model (the selfie models) gives ONE
confidence mask (the person probability) and a category mask of 0 (person) and 255
(background); other models one mask per label and category indices. Rotated inputs come back in
MediaPipe's layout. Errors are MediaPipe's types and messages. Beyond MediaPipe:
``segment_batch``, ``display_names_locale``, GPU through CUDA or DirectML, numpy 2.
"""
from __future__ import annotations

import dataclasses
import numbers
import threading
from typing import Callable, Optional, Sequence

import numpy as np

from segtool import registry
from segtool.errors import ModelError
from segtool.mediapipe.images import Image, ImageFormat, as_rgb_array
from segtool.mediapipe.model_files import device_for, model_choice
from segtool.mediapipe.tasks.python.core.base_options import BaseOptions
from segtool.options import ImageSegmenterOptions as EngineOptions
from segtool.options import RunningMode as EngineMode
from segtool.preprocess import validate_image
from segtool.segmenter import ImageSegmenter as Engine
from segtool.segmenter import LatestFrameWorker

from .core.image_processing_options import ImageProcessingOptions
from .core.vision_task_running_mode import VisionTaskRunningMode

_RunningMode = VisionTaskRunningMode
CLOSED = "Task runner is currently not running."


@dataclasses.dataclass
class ImageSegmenterResult:
    """``confidence_masks``: one VEC32F1 Image per output channel (or None); ``category_mask``: a
    GRAY8 Image (or None)."""

    confidence_masks: Optional[list] = None
    category_mask: Optional[Image] = None


@dataclasses.dataclass
class ImageSegmenterOptions:
    """MediaPipe's options; ``display_names_locale`` (labels in that language where the model has
    them) is segtool's addition: MediaPipe's C layer takes one, its Python options lack it."""

    base_options: BaseOptions
    running_mode: _RunningMode = _RunningMode.IMAGE
    output_confidence_masks: bool = True
    output_category_mask: bool = False
    result_callback: Optional[Callable[[ImageSegmenterResult, Image, int], None]] = None
    display_names_locale: str = "en"


class ImageSegmenter:
    """Segments images (IMAGE), video frames (VIDEO) or a live stream (LIVE_STREAM).

    Create with ``create_from_model_path`` or ``create_from_options``; use as a context manager
    or call ``close()``.
    """

    def __init__(self, options: ImageSegmenterOptions, engine: Engine):
        self._options = options
        self._engine = engine
        self._labels = _labels(engine.spec, options.display_names_locale)
        self._one_channel = engine.spec.output_channels == 1
        self._last_timestamp: Optional[int] = None
        self._closed = False
        self._clock = threading.Lock()  # timestamps of segment_async arrive from any thread
        self._live_images: dict = {}  # timestamp -> the Image given, for the callback
        self._worker = LatestFrameWorker(self._deliver) if options.running_mode is _RunningMode.LIVE_STREAM else None

    @classmethod
    def create_from_model_path(cls, model_path: str) -> "ImageSegmenter":
        """An IMAGE mode segmenter with default options for a model file."""
        return cls.create_from_options(ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model_path)))

    @classmethod
    def create_from_options(cls, options: ImageSegmenterOptions) -> "ImageSegmenter":
        _check_options(options)
        engine_options = EngineOptions(
            **model_choice(options.base_options),
            running_mode=EngineMode.IMAGE if options.running_mode is _RunningMode.IMAGE else EngineMode.VIDEO,
            output_confidence_masks=options.output_confidence_masks,
            output_category_mask=options.output_category_mask,
            display_names_locale=options.display_names_locale or "en",
            device=device_for(options.base_options.delegate),
        )
        try:
            engine = Engine.create_from_options(engine_options)
        except ModelError as exc:  # not a model, not a segmenter, damaged: MediaPipe's ValueError
            raise ValueError(str(exc)) from exc
        return cls(options, engine)

    @property
    def labels(self) -> list:
        """The label of each confidence mask (index in the category mask); [] when the model has none."""
        return list(self._labels)

    # ---- one method per running mode, as MediaPipe ---------------------------------------------

    def segment(self, image: Image, image_processing_options: Optional[ImageProcessingOptions] = None
                ) -> ImageSegmenterResult:
        self._require(_RunningMode.IMAGE, "image")
        return self._run(image, _rotation(image_processing_options))

    def segment_for_video(self, image: Image, timestamp_ms: int,
                          image_processing_options: Optional[ImageProcessingOptions] = None
                          ) -> ImageSegmenterResult:
        self._require(_RunningMode.VIDEO, "video")
        rotation = _rotation(image_processing_options)
        with self._clock:
            self._advance(timestamp_ms)
        return self._run(image, rotation)

    def segment_async(self, image: Image, timestamp_ms: int,
                      image_processing_options: Optional[ImageProcessingOptions] = None) -> None:
        """Queue a frame; its result reaches ``result_callback(result, image, timestamp_ms)`` on
        another thread. A frame still waiting when a newer one arrives is dropped (as MediaPipe
        may drop). An exception raised by the callback is raised by the next call here or close()."""
        self._require(_RunningMode.LIVE_STREAM, "live stream")
        rotation = _rotation(image_processing_options)
        pixels = validate_image(as_rgb_array(image))
        with self._clock:
            self._advance(timestamp_ms)
            self._live_images[int(timestamp_ms)] = image
        self._worker.submit((pixels, int(timestamp_ms), rotation))

    def segment_batch(self, images: Sequence[Image],
                      image_processing_options: Optional[ImageProcessingOptions] = None) -> list:
        """segtool's addition: IMAGE mode, several images in one inference call where the model allows."""
        self._require(_RunningMode.IMAGE, "image")
        rotation = _rotation(image_processing_options)
        arrays = [validate_image(as_rgb_array(image)) for image in images]
        return self._segment_arrays(arrays, rotation)

    def close(self) -> None:
        """Finish queued live frames (their callbacks run) and release the model; closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._worker:
                self._worker.close()
        finally:
            self._engine.close()

    def __enter__(self) -> "ImageSegmenter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the work -------------------------------------------------------------------------------

    def _run(self, image: Image, rotation: int) -> ImageSegmenterResult:
        return self._segment_arrays([validate_image(as_rgb_array(image))], rotation)[0]

    def _segment_arrays(self, arrays: list, rotation: int) -> list:
        engine = self._engine
        # MediaPipe's layout for rotated inputs: the rotated view's masks resized straight to the
        # input's size (rotation 0 at the end), where segtool's API turns them back.
        prepared = [dataclasses.replace(engine.prepare(array, rotation), rotation=0) for array in arrays]
        outputs = engine.run_prepared(prepared)
        return [self._result(engine.finish(output, item)) for output, item in zip(outputs, prepared)]

    def _result(self, segmentation) -> ImageSegmenterResult:
        confidence, category = segmentation.confidence_masks, segmentation.category_mask
        if self._one_channel:  # segtool's (1 - p, p) and 1 = person; MediaPipe's p and 0 = person
            confidence = None if confidence is None else confidence[1:]
            category = None if category is None else (np.uint8(1) - category) * np.uint8(255)
        return ImageSegmenterResult(
            confidence_masks=None if confidence is None else [Image.wrap(ImageFormat.VEC32F1, m) for m in confidence],
            category_mask=None if category is None else Image.wrap(ImageFormat.GRAY8, category),
        )

    def _deliver(self, item) -> None:
        pixels, timestamp_ms, rotation = item
        result = self._segment_arrays([pixels], rotation)[0]
        with self._clock:  # frames dropped before this one are forgotten with it
            image = self._live_images.pop(timestamp_ms)
            for older in [t for t in self._live_images if t < timestamp_ms]:
                del self._live_images[older]
        self._options.result_callback(result, image, timestamp_ms)

    # ---- MediaPipe's checks, in its order and words ---------------------------------------------

    def _require(self, mode: _RunningMode, words: str) -> None:
        if self._options.running_mode is not mode:
            raise ValueError(f"Task is not initialized with the {words} mode. Current running mode:"
                             f"{self._options.running_mode.name}")
        if self._closed:
            raise ValueError(CLOSED)

    def _advance(self, timestamp_ms) -> None:
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, numbers.Integral):
            raise TypeError(f"timestamp_ms must be an int (milliseconds), not {type(timestamp_ms).__name__}")
        if self._last_timestamp is not None and timestamp_ms <= self._last_timestamp:
            raise ValueError("Input timestamp must be monotonically increasing.")
        self._last_timestamp = int(timestamp_ms)


def _check_options(options: ImageSegmenterOptions) -> None:
    if not isinstance(options.running_mode, _RunningMode):
        raise ValueError(f"running_mode must be a RunningMode (IMAGE, VIDEO or LIVE_STREAM), "
                         f"not {options.running_mode!r}")
    if options.running_mode is _RunningMode.LIVE_STREAM:
        if options.result_callback is None:
            raise ValueError("The vision task is in live stream mode, a user-defined result callback must be provided.")
    elif options.result_callback:
        raise ValueError("The vision task is in image or video mode, a user-defined result callback should not "
                         "be provided.")
    if not (options.output_confidence_masks or options.output_category_mask):
        raise ValueError("At least one of CONFIDENCE_MASK, CONFIDENCE_MASKS and CATEGORY_MASK must be connected.")


def _rotation(processing: Optional[ImageProcessingOptions]) -> int:
    if processing is None:
        return 0
    if processing.rotation_degrees % 90 != 0:
        raise ValueError("Expected rotation to be a multiple of 90°.")
    if processing.region_of_interest:
        raise ValueError("This task doesn't support region-of-interest.")
    return int(processing.rotation_degrees) % 360


def _labels(spec: registry.ModelSpec, locale: str) -> tuple:
    """MediaPipe's labels: one per confidence mask; [] where the model names none.

    segtool gives a one-channel model two labels (background, its category). MediaPipe gives the
    one its metadata names: the manifest records it (``mediapipe_labels``) for the shipped
    models; a user's own model keeps it as its second label, unless the file named none
    (``labels_given`` false: segtool made its labels up).
    """
    labels = spec.labels_for(locale or "en")
    if spec.output_channels != 1:
        return tuple(labels)
    if spec.mediapipe_labels is not None:
        return tuple(spec.mediapipe_labels)
    return tuple(labels[1:]) if getattr(spec, "labels_given", True) else ()
