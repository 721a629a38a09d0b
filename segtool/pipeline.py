"""Batches: inputs -> segmenter -> effects -> files on disk, reporting each item as it finishes.

Knows nothing of Click: the CLI builds an ImageOutputs and a segmenter, then calls run_images.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2
import numpy as np

from . import effects
from . import io as sio
from .errors import OutputStorageError, SegtoolError
from .options import SegmentationResult
from .postprocess import argmax_first


@dataclass(frozen=True)
class ImageOutputs:
    """Which files each input produces, and where."""

    out_dir: Path
    category_mask: bool = False
    category_preview: bool = False  # also <stem>.category-color.png, RGB, for people to look at
    confidence_masks: bool = True
    confidence_format: str = "npy"
    composites: tuple[str, ...] = ()
    effect_options: effects.EffectOptions = field(default_factory=effects.EffectOptions)
    composite_format: Optional[str] = None
    skip_existing: bool = False
    max_pixels: Optional[int] = sio.DEFAULT_MAX_PIXELS
    report_categories: bool = True  # fill ItemReport.categories (the CLI: only for --json)
    protected: frozenset = frozenset()  # (device, inode) of the run's inputs: never written over
    keep_metadata: bool = True  # composites carry the input's ICC profile and EXIF (not mask files)

    @property
    def needs_confidence(self) -> bool:
        return self.confidence_masks or bool(self.composites)


@dataclass(frozen=True)
class ItemReport:
    """What happened to one input: the files written, or the one-line reason it failed."""

    input: Path
    outputs: tuple[Path, ...] = ()
    error: Optional[str] = None
    skipped: bool = False
    seconds: float = 0.0
    categories: dict = field(default_factory=dict)
    stops_batch: bool = False  # the output storage failed (full, read-only): nothing later can succeed

    @property
    def ok(self) -> bool:
        return self.error is None


def planned_outputs(item: sio.InputItem, outputs: ImageOutputs) -> dict[str, Path]:
    """The output contract: DIR/<stem>.category.png, .category-color.png, .confidence.npy|exr,
    .<composite>.<ext> (io.paths.OUTPUT_INFIXES lists the infixes, so walks skip these files).

    Composites: <stem>.blur|replace|recolor.<ext> (ext: the input's, or --composite-format),
    <stem>.cutout.png (.webp when the format asked for is webp) and <stem>.alpha.png (8-bit grey).
    """
    base = outputs.out_dir / item.stem
    plan = {}
    if outputs.category_mask:
        plan["category"] = base.with_name(f"{base.name}.category.png")
    if outputs.category_preview:
        plan["category-color"] = base.with_name(f"{base.name}.category-color.png")
    if outputs.confidence_masks:
        plan["confidence"] = base.with_name(f"{base.name}.confidence.{outputs.confidence_format}")
    for name in outputs.composites:
        plan[name] = base.with_name(f"{base.name}.{name}{_composite_suffix(name, item, outputs)}")
    return plan


def _composite_suffix(name: str, item: sio.InputItem, outputs: ImageOutputs) -> str:
    # A cut-out needs an alpha channel: PNG, or WebP when asked for; never the input's JPEG.
    if name == "cutout":
        return ".webp" if outputs.composite_format == "webp" else ".png"
    if name == "alpha":  # what compositors load as a matte: always a grey PNG
        return ".png"
    return sio.composite_extension(item.path, outputs.composite_format)


def process_image(item: sio.InputItem, segmenter, outputs: ImageOutputs) -> ItemReport:
    """Read, segment and write one input; a SegtoolError becomes the report's error line.

    Outputs are written atomically, so an interrupted or failed item leaves none of its files
    half-written; files it completed before failing stay (they are whole).
    """
    started = time.perf_counter()
    plan = planned_outputs(item, outputs)
    decided = decided_before_work(item, plan, outputs)
    if decided is not None:
        return decided
    try:
        image, facts = load_input(item, outputs)
        result = segmenter.segment(image)
        write_outputs(plan, image, result, segmenter.labels, outputs, facts)
    except (SegtoolError, MemoryError) as exc:
        return failed_report(item, exc, started)
    return done_report(item, plan, result, segmenter.labels, outputs, started)


def failed_report(item: sio.InputItem, exc: BaseException, started: float) -> ItemReport:
    if isinstance(exc, MemoryError):
        # The image passed --max-pixels yet its masks do not fit: that input fails, not the batch.
        return ItemReport(item.path, error=f"{item.path}: out of memory (lower --max-pixels)",
                          seconds=time.perf_counter() - started)
    return ItemReport(item.path, error=str(exc), seconds=time.perf_counter() - started,
                      stops_batch=isinstance(exc, OutputStorageError))


def done_report(item: sio.InputItem, plan: dict, result: SegmentationResult, labels,
                outputs: ImageOutputs, started: float) -> ItemReport:
    categories = category_fractions(result, labels) if outputs.report_categories else {}
    return ItemReport(item.path, tuple(plan.values()), seconds=time.perf_counter() - started,
                      categories=categories)


def decided_before_work(item: sio.InputItem, plan: dict[str, Path], outputs: ImageOutputs) -> Optional[ItemReport]:
    """The report of an input settled before it is read, else None (every engine calls this).

    Skipped: --skip-existing, and all its outputs are there and segtool wrote them. Refused: one
    of its outputs would replace a file segtool did not write, or an input of the run; checked
    for all of them first, so that a refused input writes nothing.
    """
    if outputs.skip_existing and plan and sio.existing(plan.values()):
        return ItemReport(item.path, tuple(plan.values()), skipped=True)
    refused = next(filter(None, (sio.overwrite_problem(p, outputs.protected) for p in plan.values())), None)
    return None if refused is None else ItemReport(item.path, error=refused)


def load_input(item: sio.InputItem, outputs: ImageOutputs) -> tuple[np.ndarray, Optional[sio.ImageFacts]]:
    """The input's pixels, and its colour profile and EXIF for its composites to keep, in one read
    (facts None: --strip-metadata, or no composite but the alpha mask, which stays plain)."""
    if not outputs.keep_metadata or not set(outputs.composites) - {"alpha"}:
        return sio.read_image(item.path, max_pixels=outputs.max_pixels), None
    return sio.read_image_and_facts(item.path, max_pixels=outputs.max_pixels)


def write_outputs(plan: dict[str, Path], image: np.ndarray, result: SegmentationResult,
                  labels, outputs: ImageOutputs, facts: Optional[sio.ImageFacts] = None) -> None:
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
            picture = effects.composite(kind, image, result.confidence_masks, outputs.effect_options)
            sio.write_image(path, picture, facts=None if kind == "alpha" else facts)


def category_fractions(result: SegmentationResult, labels) -> dict[str, float]:
    """Share of the image's pixels in each category present (from the category mask, else argmax)."""
    if result.category_mask is not None:
        mask = result.category_mask
    elif result.confidence_masks is not None:
        mask = argmax_first(result.confidence_masks)
    else:
        return {}
    counts = _histogram(mask)
    total = max(1, mask.size)
    return {labels[i]: round(float(c) / total, 6) for i, c in enumerate(counts[:len(labels)]) if c}


def _histogram(mask: np.ndarray) -> np.ndarray:
    """Pixel count of each uint8 value; OpenCV's calcHist is 15x faster than np.bincount here.

    calcHist counts in float32, exact to 2**24: larger masks are counted in bands of rows.
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    rows = max(1, (1 << 24) // max(1, mask.shape[1]))
    counts = np.zeros(256, np.int64)
    for top in range(0, mask.shape[0], rows):
        counts += cv2.calcHist([mask[top:top + rows]], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return counts


def run_images(items: Iterable[sio.InputItem], segmenter, outputs: ImageOutputs,
               on_item: Callable[[ItemReport], None] = lambda report: None, *, jobs: int = 1,
               batch_size: int = 1) -> list[ItemReport]:
    """Process every input, going on past failures; each report goes to ``on_item`` in input order.

    ``jobs`` inputs are processed at once on threads (decoding, onnxruntime and encoding release
    the GIL, so one input's decode overlaps another's inference and a third's encode); at most
    ``2 * jobs`` are in flight, so memory stays flat however many inputs there are.

    ``batch_size`` > 1: inputs are decoded and prepared on ``jobs`` threads, gathered into
    batches for one inference call each (segmenter.run_prepared), and finished and written on
    the same threads (see pipeline_batches.py); the files and reports are those of batch size 1.

    Stops early only when the output storage fails (full or read-only disk): the rest could
    not be written either. Two inputs that would write the same output file (``a.jpg`` and
    ``a.png``) are not both run: the second fails instead of overwriting the first's masks.
    """
    if batch_size > 1:
        from .pipeline_batches import run_batched

        return run_batched(items, segmenter, outputs, on_item, jobs=max(1, jobs), batch_size=batch_size)
    if jobs <= 1:
        return _run_in_order(items, segmenter, outputs, on_item)
    return _run_concurrently(items, segmenter, outputs, on_item, jobs)


def _run_in_order(items, segmenter, outputs: ImageOutputs, on_item) -> list[ItemReport]:
    reports = []
    claimed: dict[Path, Path] = {}
    for item in items:
        report = _clash(item, outputs, claimed) or process_image(item, segmenter, outputs)
        on_item(report)
        reports.append(report)
        if report.stops_batch:
            break
    return reports


def _run_concurrently(items, segmenter, outputs: ImageOutputs, on_item, jobs: int) -> list[ItemReport]:
    reports: list[ItemReport] = []
    claimed: dict[Path, Path] = {}
    latest: dict[Path, Future] = {}  # the last job of each input path, for repeated inputs
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="segtool-image")
    try:
        for item in items:
            pending.append(_submit(pool, item, segmenter, outputs, claimed, latest))
            while len(pending) >= 2 * jobs or (pending and pending[0].done()):
                if _report(pending.popleft().result(), reports, on_item):
                    return _finish_after_stop(pending, reports, on_item)
        while pending:
            if _report(pending.popleft().result(), reports, on_item):
                return _finish_after_stop(pending, reports, on_item)
        return reports
    finally:
        # Ctrl-C, SIGTERM or a stop: start nothing new, and let the items being written finish
        # (their files are written atomically) before the caller tidies up.
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool, item: sio.InputItem, segmenter, outputs: ImageOutputs, claimed: dict,
            latest: dict) -> Future:
    clash = _clash(item, outputs, claimed)  # decided here, in input order
    if clash is not None:
        done: Future = Future()
        done.set_result(clash)
        return done
    # The same input listed twice writes the same files: the second waits for the first, so
    # two threads never write one temporary file. Waiting cannot deadlock: the pool starts jobs
    # in submission order, so whatever a job waits for has already started.
    previous = latest.get(item.path)
    future = pool.submit(_process_after, previous, item, segmenter, outputs)
    latest[item.path] = future
    return future


def _process_after(previous: Optional[Future], item, segmenter, outputs) -> ItemReport:
    if previous is not None:
        wait([previous])
    return process_image(item, segmenter, outputs)


def _report(report: ItemReport, reports: list, on_item) -> bool:
    on_item(report)
    reports.append(report)
    return report.stops_batch


def _finish_after_stop(pending: deque, reports: list, on_item) -> list[ItemReport]:
    """Report the inputs already in flight when the storage failed, minus repeats of that failure.

    Those that still succeeded wrote whole files and are counted as done; those that failed on
    the same full or read-only disk add nothing to the line already printed: they count as
    not tried, as they would have been one at a time.
    """
    for future in pending:
        future.cancel()
    for future in pending:
        if not future.cancelled():
            report = future.result()
            if not report.stops_batch:
                _report(report, reports, on_item)
    return reports


def _clash(item: sio.InputItem, outputs: ImageOutputs, claimed: dict[Path, Path]) -> Optional[ItemReport]:
    """A failed report when ``item``'s outputs were already claimed by another input, else None.

    Claims are kept by real path, so sub-folders that are symbolic links to one another clash too.
    """
    plan = [_real(p) for p in planned_outputs(item, outputs).values()]
    owner = next((claimed[p] for p in plan if p in claimed and claimed[p] != item.path), None)
    if owner is not None:
        return ItemReport(item.path, error=f"{item.path}: its outputs would overwrite those of {owner}; "
                                           "rename one of them")
    claimed.update((p, item.path) for p in plan)
    return None


def _real(path: Path) -> Path:
    if sio.is_remote(path):  # an object key has no links to resolve
        return path
    return Path(os.path.realpath(path.parent), path.name)
