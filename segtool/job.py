"""The unit of work: one input -> its files and a report.

    plan -> settle -> load -> segment (prepare, run, finish) -> write -> report

What "write" means is the target's: FILES (each input's files, outputs.planned_outputs) or
dataset shards (datasets/target.py: one record per input into a shard, the index to settle by).

Every engine calls it. engines/local.py runs ``process_image`` in order or on threads;
engines/batched.py splits it at the inference call (``load`` on threads, one
``segmenter.run_prepared`` for a batch, ``finish`` on threads); engines/ray.py runs the local
engine in Ray actors; engines/stream.py writes each video frame's masks with ``write_outputs``.
A SegtoolError or MemoryError becomes the input's report: it never stops other inputs, except
a full or read-only output storage, which stops the batch (``ItemReport.stops_batch``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import effects
from . import io as sio
from .errors import OutputStorageError, SegtoolError
from .options import SegmentationResult
from .outputs import ImageOutputs, ItemReport, planned_outputs, settle
from .postprocess import argmax_first, pixel_counts

FAILURES = (SegtoolError, MemoryError)  # what one input may fail with; anything else is a bug


@dataclass
class Loaded:
    """An input planned, settled, read and prepared: what its inference call needs."""

    item: sio.InputItem
    plan: dict
    image: np.ndarray
    prepared: object  # segmenter.Prepared
    started: float
    facts: Optional[sio.ImageFacts] = None  # what its composites keep of the photo's metadata


class Files:
    """The default target: each input's own files (the output contract), written atomically."""

    def plan(self, item: sio.InputItem, outputs: ImageOutputs) -> dict[str, Path]:
        return planned_outputs(item, outputs)

    def settle(self, item: sio.InputItem, plan: dict, outputs: ImageOutputs) -> Optional[ItemReport]:
        return settle(item, plan, outputs)

    def write(self, loaded: Loaded, result: SegmentationResult, labels, outputs: ImageOutputs) -> tuple:
        write_outputs(loaded.plan, loaded.image, result, labels, outputs, loaded.facts)
        return tuple(loaded.plan.values())

    def failed(self, item: sio.InputItem, error: str) -> None:
        """A failed input leaves no file of its own: its line on stderr is the whole record."""


FILES = Files()


def process_image(item: sio.InputItem, segmenter, outputs: ImageOutputs, target=FILES) -> ItemReport:
    """Read, segment and write one input. Outputs are written atomically, so an interrupted or
    failed input leaves none of its files half-written; files it completed before failing stay."""
    loaded = load(item, segmenter, outputs, target)
    if isinstance(loaded, ItemReport):
        return loaded
    return finish(loaded, infer(segmenter, [loaded])[0], segmenter, outputs, target)


def load(item: sio.InputItem, segmenter, outputs: ImageOutputs, target=FILES) -> Union[Loaded, ItemReport]:
    """Plan, settle, read and prepare one input; a report instead when it is settled or fails."""
    started = time.perf_counter()
    plan = target.plan(item, outputs)
    settled = target.settle(item, plan, outputs)
    if settled is not None:
        return settled
    try:
        image, facts = read_input(item, outputs)
        return Loaded(item, plan, image, segmenter.prepare(image), started, facts)
    except FAILURES as exc:
        return failed_report(item, exc, started, target)


def infer(segmenter, loaded: list[Loaded]) -> list:
    """The network's outputs for ``loaded``, in order, in one call; where that call fails, each
    input alone, so that only the input that cannot be run fails (its exception in its place)."""
    if not loaded:
        return []
    try:
        return segmenter.run_prepared([each.prepared for each in loaded])
    except FAILURES as exc:
        if len(loaded) == 1:
            return [_naming(exc, loaded[0].item)]
        return [infer(segmenter, [each])[0] for each in loaded]


def finish(loaded: Loaded, output, segmenter, outputs: ImageOutputs, target=FILES) -> ItemReport:
    """Masks from the network's output, then the files and the report (``output`` may be the
    exception its inference raised)."""
    if isinstance(output, BaseException):
        return failed_report(loaded.item, output, loaded.started, target)
    try:
        result = segmenter.finish(output, loaded.prepared)
        written = target.write(loaded, result, segmenter.labels, outputs)
    except FAILURES as exc:
        return failed_report(loaded.item, exc, loaded.started, target)
    categories = category_fractions(result, segmenter.labels) if outputs.report_categories else {}
    return ItemReport(loaded.item.path, written, seconds=time.perf_counter() - loaded.started,
                      categories=categories)


def read_input(item: sio.InputItem, outputs: ImageOutputs) -> tuple[np.ndarray, Optional[sio.ImageFacts]]:
    """The input's pixels, and its colour profile and EXIF for its composites to keep, in one read
    (facts None: --strip-metadata, or no composite but the alpha mask, which stays plain)."""
    if not outputs.keep_metadata or not set(outputs.composites) - {"alpha"}:
        return sio.read_image(item.path, max_pixels=outputs.max_pixels), None
    return sio.read_image_and_facts(item.path, max_pixels=outputs.max_pixels)


def write_outputs(plan: dict[str, Path], image: np.ndarray, result: SegmentationResult,
                  labels, outputs: ImageOutputs, facts: Optional[sio.ImageFacts] = None) -> None:
    """Every file of ``plan``, each written atomically: the one place that picks a writer."""
    for path in {p.parent for p in plan.values()}:
        sio.ensure_dir(path)
    for kind, path in plan.items():
        if kind == "category":
            sio.write_category_png(path, result.category_mask)
        elif kind == "category-color":
            sio.write_category_preview(path, result.category_mask)
        elif kind == "confidence" and outputs.confidence_format == "exr":
            sio.write_exr(path, result.confidence_masks, labels)
        elif kind == "confidence":
            sio.write_npy(path, result.confidence_masks)
        else:
            picture = effects.render(kind, image, result.confidence_masks, outputs.effect_options,
                                     subject=result.subject_alpha)
            sio.write_image(path, picture, facts=None if kind == "alpha" else facts)


def failed_report(item: sio.InputItem, exc: BaseException, started: float, target=FILES) -> ItemReport:
    """The input's one-line failure; the target records it too (a dataset's error record)."""
    if isinstance(exc, MemoryError):
        # The image passed --max-pixels yet its masks do not fit: that input fails, not the batch.
        error = f"{item.path}: out of memory (lower --max-pixels)"
    else:
        error = str(exc)
    stops = isinstance(exc, OutputStorageError)
    if not stops:
        try:
            target.failed(item, error)
        except OutputStorageError as storage:  # the shard holding the error record cannot be written
            error, stops = str(storage), True
    return ItemReport(item.path, error=error, seconds=time.perf_counter() - started, stops_batch=stops)


def _naming(exc: BaseException, item: sio.InputItem) -> BaseException:
    """An inference error names no input; its report line must (MemoryError's line already does)."""
    if isinstance(exc, SegtoolError) and not str(exc).startswith(str(item.path)):
        return type(exc)(f"{item.path}: {exc}")
    return exc


def category_fractions(result: SegmentationResult, labels) -> dict[str, float]:
    """Share of the image's pixels in each category present (from the category mask, else argmax)."""
    if result.category_mask is not None:
        mask = result.category_mask
    elif result.confidence_masks is not None:
        mask = argmax_first(result.confidence_masks)
    else:
        return {}
    counts = pixel_counts(mask)
    total = max(1, mask.size)
    return {labels[i]: round(float(c) / total, 6) for i, c in enumerate(counts[:len(labels)]) if c}
