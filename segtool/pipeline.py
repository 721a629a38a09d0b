"""Batches: inputs -> segmenter -> effects -> files on disk, reporting each item as it finishes.

Knows nothing of Click: the CLI builds an ImageOutputs and a segmenter, then calls run_images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from . import effects
from . import io as sio
from .errors import SegtoolError
from .options import SegmentationResult


@dataclass(frozen=True)
class ImageOutputs:
    """Which files each input produces, and where."""

    out_dir: Path
    category_mask: bool = False
    confidence_masks: bool = True
    confidence_format: str = "npy"
    composites: tuple[str, ...] = ()
    effect_options: effects.EffectOptions = field(default_factory=effects.EffectOptions)
    composite_format: Optional[str] = None
    skip_existing: bool = False
    max_pixels: Optional[int] = sio.DEFAULT_MAX_PIXELS

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

    @property
    def ok(self) -> bool:
        return self.error is None


def planned_outputs(item: sio.InputItem, outputs: ImageOutputs) -> dict[str, Path]:
    """The output contract: DIR/<stem>.category.png, .confidence.npy|exr, .<composite>.<ext>."""
    base = outputs.out_dir / item.stem
    plan = {}
    if outputs.category_mask:
        plan["category"] = base.with_name(f"{base.name}.category.png")
    if outputs.confidence_masks:
        plan["confidence"] = base.with_name(f"{base.name}.confidence.{outputs.confidence_format}")
    for name in outputs.composites:
        suffix = ".png" if name == "cutout" else sio.composite_extension(item.path, outputs.composite_format)
        plan[name] = base.with_name(f"{base.name}.{name}{suffix}")
    return plan


def process_image(item: sio.InputItem, segmenter, outputs: ImageOutputs) -> ItemReport:
    """Read, segment and write one input; a SegtoolError becomes the report's error line."""
    started = time.perf_counter()
    plan = planned_outputs(item, outputs)
    if outputs.skip_existing and plan and sio.existing(plan.values()):
        return ItemReport(item.path, tuple(plan.values()), skipped=True)
    try:
        image = sio.read_image(item.path, max_pixels=outputs.max_pixels)
        result = segmenter.segment(image)
        write_outputs(plan, image, result, segmenter.labels, outputs)
    except SegtoolError as exc:
        return ItemReport(item.path, error=str(exc), seconds=time.perf_counter() - started)
    return ItemReport(item.path, tuple(plan.values()), seconds=time.perf_counter() - started,
                      categories=category_fractions(result, segmenter.labels))


def write_outputs(plan: dict[str, Path], image: np.ndarray, result: SegmentationResult,
                  labels, outputs: ImageOutputs) -> None:
    for path in {p.parent for p in plan.values()}:
        sio.ensure_dir(path)
    for kind, path in plan.items():
        if kind == "category":
            sio.write_category_png(path, result.category_mask)
        elif kind == "confidence" and outputs.confidence_format == "exr":
            sio.write_exr(path, result.confidence_masks, labels)
        elif kind == "confidence":
            sio.write_npy(path, result.confidence_masks)
        else:
            picture = effects.composite(kind, image, result.confidence_masks, outputs.effect_options)
            sio.write_image(path, picture)


def category_fractions(result: SegmentationResult, labels) -> dict[str, float]:
    """Share of the image's pixels in each category present (from the category mask, else argmax)."""
    if result.category_mask is not None:
        mask = result.category_mask
    elif result.confidence_masks is not None:
        mask = result.confidence_masks.argmax(axis=0)
    else:
        return {}
    counts = np.bincount(mask.ravel(), minlength=len(labels))
    total = max(1, mask.size)
    return {labels[i]: round(float(c) / total, 6) for i, c in enumerate(counts) if c}


def run_images(items: Iterable[sio.InputItem], segmenter, outputs: ImageOutputs,
               on_item: Callable[[ItemReport], None] = lambda report: None) -> list[ItemReport]:
    """Process every input in order, going on past failures; each report goes to ``on_item``."""
    reports = []
    for item in items:
        report = process_image(item, segmenter, outputs)
        on_item(report)
        reports.append(report)
    return reports
