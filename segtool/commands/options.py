"""Option groups shared by several subcommands, written once as decorators."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click

from ..registry import MANIFEST_NAME, bundled_dir


def _model_names() -> list[str]:
    # Read the manifest as plain JSON: cheap enough for --help, and no ModelSpec import chain.
    try:
        return list(json.loads((bundled_dir() / MANIFEST_NAME).read_text())["models"])
    except (OSError, ValueError, KeyError):
        return ["selfie"]


def _stack(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def model_options(function):
    return _stack(
        click.option("--model", "-m", default="selfie", show_default=True, envvar="SEGTOOL_MODEL",
                     type=click.Choice(_model_names()), help="Which segmentation model to run."),
        click.option("--device", default="auto", show_default=True, envvar="SEGTOOL_DEVICE",
                     type=click.Choice(["auto", "cpu", "cuda", "directml"]),
                     help="Execution provider; auto tries CUDA, then DirectML, then CPU."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="onnxruntime intra-op threads (default: one per core)."),
        click.option("--locale", "display_names_locale", default="en", show_default=True,
                     help="Language of category names, where the model has them."),
    )(function)


def mask_options(function):
    return _stack(
        click.option("--category-mask/--no-category-mask", default=False, show_default=True,
                     help="Write <stem>.category.png: uint8 category index per pixel."),
        click.option("--confidence-masks/--no-confidence-masks", default=True, show_default=True,
                     help="Write <stem>.confidence.<fmt>: float32 (C, H, W)."),
        click.option("--confidence-format", type=click.Choice(["npy", "exr"]), default="npy",
                     show_default=True, help="File format of confidence masks."),
    )(function)


@dataclass(frozen=True)
class CompositeRequest:
    """The composite flags as given; ``effect_options`` resolves them once the model is known."""

    names: tuple[str, ...] = ()
    classes: Optional[str] = None
    blur_strength: float = 1.0

    def effect_options(self, labels):
        from ..effects import EffectOptions

        return EffectOptions(classes=parse_classes(self.classes, labels), blur_strength=self.blur_strength)


def composite_options(function):
    """Adds the composite flags and hands the command one ``composite`` (a CompositeRequest)."""

    @functools.wraps(function)
    def command(*args, blur, blur_strength, classes, **kwargs):
        names = ("blur",) if blur else ()
        request = CompositeRequest(names=names, classes=classes, blur_strength=blur_strength)
        return function(*args, composite=request, **kwargs)

    return _stack(
        click.option("--blur", is_flag=True, help="Write <stem>.blur.<ext>: background blurred, subject sharp."),
        click.option("--blur-strength", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
                     help="Blur radius relative to the default."),
        click.option("--classes", default=None, metavar="NAMES",
                     help="Comma-separated category names or indices that count as the subject."),
    )(command)


def parse_classes(text, labels) -> tuple[int, ...] | None:
    """'hair,face-skin' or '1,3' -> category indices; None keeps the default (all but background)."""
    if not text:
        return None
    lookup = {label.lower(): index for index, label in enumerate(labels)}
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isdigit() and int(part) < len(labels):
            chosen.append(int(part))
        elif part.lower() in lookup:
            chosen.append(lookup[part.lower()])
        else:
            raise click.BadParameter(f"'{part}' is not a category of this model ({', '.join(labels)})",
                                     param_hint="--classes")
    return tuple(chosen)


def output_dir_option(function):
    return click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("."), show_default=True, help="Folder for the outputs.")(function)
