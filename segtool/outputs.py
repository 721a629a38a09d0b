"""The output contract and the settle step, for every engine and every command.

Contract: which files one input, one video or one frame gives, and where.
Settle: before any work, whether an input goes, is skipped (--skip-existing, all its outputs
are whole files segtool wrote), or is refused (an output would replace a file segtool did not
write, an input of the run, or another input's outputs). The same functions decide for local
folders and object stores; io.ledger and io.storage answer "did segtool write this?" for each.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional


from . import effects
from . import io as sio
from .errors import OutputError, UsageError
from .hashset import HashMap, HashSet, key_of

MASK_VIDEO = "mask"  # the grey subject-mask video among a video's outputs
FRAME_DIGITS = 6  # <stem>.000001.category.png: frames counted from 1


# ---- what was asked for, what happened ------------------------------------------------------

@dataclass(frozen=True)
class ImageOutputs:
    """Which files each input (or each video frame) produces, and where."""

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
    protected: "InputSet" = field(default_factory=lambda: InputSet())  # the run's inputs: never written over
    keep_metadata: bool = True  # composites carry the input's ICC profile and EXIF (not mask files)
    dataset: Optional[str] = None  # "parquet", "webdataset" or "coco": shards in out_dir, no files per input
    shard_bytes: int = 256 << 20  # a dataset shard is finished once it holds this much


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


# ---- the contract ------------------------------------------------------------------------

def mask_files(base: Path, outputs: ImageOutputs) -> dict[str, Path]:
    """BASE.category.png, BASE.category-color.png, BASE.confidence.npy|exr, as asked for."""
    plan = {}
    if outputs.category_mask:
        plan["category"] = base.with_name(f"{base.name}.category.png")
    if outputs.category_preview:
        plan["category-color"] = base.with_name(f"{base.name}.category-color.png")
    if outputs.confidence_masks:
        plan["confidence"] = base.with_name(f"{base.name}.confidence.{outputs.confidence_format}")
    return plan


def planned_outputs(item: sio.InputItem, outputs: ImageOutputs) -> dict[str, Path]:
    """One input's files: DIR/<stem> + the mask endings, then <stem>.<composite>.<ext>
    (io.paths.OUTPUT_INFIXES lists the infixes, so walks skip these files).

    Composites: <stem>.blur|replace|recolor.<ext> (ext: the input's, or --composite-format),
    <stem>.cutout.png (.webp when the format asked for is webp) and <stem>.alpha.png (8-bit grey).
    """
    base = outputs.out_dir / item.stem
    plan = mask_files(base, outputs)
    for name in outputs.composites:
        plan[name] = base.with_name(f"{base.name}.{name}{composite_suffix(name, item, outputs)}")
    return plan


def composite_suffix(name: str, item: sio.InputItem, outputs: ImageOutputs) -> str:
    """The file ending of composite ``name`` for ``item``: ".jpg", ".png", ..."""
    # A cut-out needs an alpha channel: PNG, or WebP when asked for; never the input's JPEG.
    if name == "cutout":
        return ".webp" if outputs.composite_format == "webp" else ".png"
    if name == "alpha":  # what compositors load as a matte: always a grey PNG
        return ".png"
    return sio.composite_extension(item.path, outputs.composite_format)


def frame_files(stem: str, index: int, frames: ImageOutputs) -> dict[str, Path]:
    """One video frame's mask files: <stem>.000001.category.png, ... in ``frames.out_dir``."""
    return mask_files(frames.out_dir / f"{stem}.{index:0{FRAME_DIGITS}d}", frames)


def planned_videos(stem: str, output: Path, to_file: bool, names: Iterable[str],
                   mask_video: Optional[Path]) -> tuple[tuple[str, Path], ...]:
    """(name, path) of each video one input gives: the composite named, or each one as
    OUTPUT/<stem>.<name>.mp4 (the cut-out: .webm, it has alpha), and the mask video.

    Two of them that name one file (also through ``./`` spellings or symbolic links) are a
    usage error: the second would destroy the first.
    """
    names = tuple(names)
    if to_file:
        if len(names) != 1:
            raise UsageError(f"--output {output} is one video file but {len(names) or 'no'} video "
                             "effects were asked for; give a folder for several")
        planned = ((names[0], output),)
    else:
        planned = tuple((n, output / f"{stem}.{n}{'.webm' if n == 'cutout' else '.mp4'}") for n in names)
    if mask_video is not None:
        planned += ((MASK_VIDEO, mask_video),)
    seen: dict[str, Path] = {}
    for _, path in planned:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {path} are the same file: give each output its own name")
        seen[real] = path
    return planned


# ---- settling ------------------------------------------------------------------------------

def settle(item: sio.InputItem, plan: dict[str, Path], outputs: ImageOutputs) -> Optional[ItemReport]:
    """The report of an input settled before it is read, else None (it goes).

    Skipped: --skip-existing, and all its outputs are there and segtool wrote them. Refused: one
    of its outputs would replace a file segtool did not write, or an input of the run; checked
    for all of them first, so that a refused input writes nothing. "Written by segtool" is the
    folder's ledger locally and the upload's mark on object stores: one rule for both.
    """
    if outputs.skip_existing and plan and sio.existing(plan.values()):
        return ItemReport(item.path, tuple(plan.values()), skipped=True)
    refused = next(filter(None, (sio.overwrite_problem(p, outputs.protected) for p in plan.values())), None)
    return None if refused is None else ItemReport(item.path, error=refused)


def refuse_overwrites(paths: Iterable[Path], protected: frozenset) -> None:
    """Before any work: an OutputError (exit 1) when one of ``paths`` may not be written.

    A video device (/dev/videoN, a virtual camera) is written to, never replaced.
    """
    from .io.video import is_device

    for path in paths:
        problem = None if is_device(path) else sio.overwrite_problem(path, protected)
        if problem is not None:
            raise OutputError(problem)


def existing_frame_files(stem: str, frames: ImageOutputs) -> list[Path]:
    """The per-frame files of ``stem`` already in the folder (any frame count), to settle a
    video before its first frame: a refused video leaves no masks of its own behind."""
    if not frames.out_dir.is_dir():
        return []
    first = f"{stem}.{1:0{FRAME_DIGITS}d}"
    endings = [path.name[len(first):] for path in frame_files(stem, 1, frames).values()]
    pattern = re.compile(re.escape(stem) + rf"\.\d{{{FRAME_DIGITS},}}(?:" + "|".join(map(re.escape, endings)) + ")")
    return [path for path in sorted(frames.out_dir.iterdir()) if pattern.fullmatch(path.name)]


class InputSet:
    """The files this run reads, by (device, inode): never written over, whatever input's output
    would land on one. Filled as inputs stream in (Claims.claim), and ahead of them with
    whatever the command already knows (the first inputs, a --replace-bg picture); 8 bytes an
    input, so millions of inputs stay cheap. ``identity in inputs`` is what io.ledger asks."""

    def __init__(self, paths: Iterable = ()):
        self._seen = HashSet()
        for path in paths:
            self.add(path)

    def add(self, path) -> None:
        """Protect the local file at ``path`` (anything else, such as a colour, is not a file)."""
        if isinstance(path, (str, os.PathLike)) and not sio.is_remote(path):
            identity = sio.file_identity(path)
            if identity is not None:
                self._seen.add(key_of(repr(identity)))

    def __contains__(self, identity) -> bool:
        return identity is not None and key_of(repr(tuple(identity))) in self._seen

    def __bool__(self) -> bool:
        return True


class Claims:
    """Which input claimed each output path in this run: two inputs that would write one file
    (``a.jpg`` and ``a.png``) are not both run; the second fails instead.

    Claims are kept by real path, so sub-folders that are symbolic links to one another clash
    too. Engines claim in input order, before any work, in one place (the driver for Ray), and
    each claimed input joins ``inputs`` (never written over). Memory stays small at millions of
    inputs: 16 bytes a claim (hashes, see HashMap), and the names of the last ``RECENT``
    claimants for the error line.
    """

    RECENT = 4096

    def __init__(self, inputs: Optional[InputSet] = None):
        self._outputs = HashMap()  # hash of an output's real path -> hash of its input's path
        self._names: dict[int, Path] = {}  # input path hash -> input path, the recent ones
        self._inputs = inputs

    def claim(self, item: sio.InputItem, plan: dict[str, Path]) -> Optional[ItemReport]:
        """A failed report when another input already claimed one of ``plan``, else None."""
        if self._inputs is not None:
            self._inputs.add(item.path)
        mine = key_of(_name(item.path))
        real = [key_of(_name(_real(p))) for p in plan.values()]
        for path in real:
            owner = self._outputs.get(path)
            if owner is not None and owner != mine:
                other = self._names.get(owner, "another input of this run")
                return ItemReport(item.path, error=f"{item.path}: its outputs would overwrite those of {other}; "
                                                   "rename one of them")
        for path in real:
            self._outputs.put(path, mine)
        self._names[mine] = item.path
        if len(self._names) > self.RECENT:
            del self._names[next(iter(self._names))]
        return None


def _name(path) -> str:
    return str(path) if sio.is_remote(path) else os.fsdecode(path)


def _real(path: Path) -> Path:
    if sio.is_remote(path):  # an object key has no links to resolve
        return path
    return Path(os.path.realpath(path.parent), path.name)
