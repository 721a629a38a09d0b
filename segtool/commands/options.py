"""Option groups shared by several subcommands, written once as decorators."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

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
        click.option("--threads", type=click.IntRange(min=1), default=None, envvar="SEGTOOL_THREADS",
                     help="onnxruntime intra-op threads (default: one per physical core, shared among --jobs)."),
        click.option("--locale", "display_names_locale", default="en", show_default=True,
                     help="Language of category names, where the model has them."),
    )(function)


def jobs_option(function):
    return click.option(
        "--jobs", "-j", type=click.IntRange(min=1), default=None, envvar="SEGTOOL_JOBS",
        help="Inputs processed at once, so decoding and encoding overlap inference "
             "(default: one per core, at least 2).")(function)


def mask_options(function):
    return _stack(
        click.option("--category-mask/--no-category-mask", default=False, show_default=True,
                     help="Write <stem>.category.png: uint8 category index per pixel."),
        click.option("--confidence-masks/--no-confidence-masks", default=True, show_default=True,
                     help="Write <stem>.confidence.<fmt>: float32 (C, H, W)."),
        click.option("--confidence-format", type=click.Choice(["npy", "exr"]), default="npy",
                     show_default=True, help="File format of confidence masks."),
    )(function)


COMPOSITE_NAMES = ("blur", "replace", "cutout", "recolor")  # effects.COMPOSITES, without importing cv2

Color = tuple[int, int, int]

# A short list a person would type; anything else as #rrggbb or r,g,b.
NAMED_COLORS: dict[str, Color] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "silver": (192, 192, 192), "red": (220, 20, 20), "green": (0, 150, 60), "blue": (30, 80, 220),
    "yellow": (250, 210, 30), "orange": (250, 130, 20), "purple": (120, 40, 160),
    "violet": (150, 80, 220), "pink": (240, 110, 170), "magenta": (220, 0, 180),
    "cyan": (0, 200, 220), "teal": (0, 128, 128), "navy": (20, 30, 100), "brown": (110, 60, 30),
    "beige": (225, 210, 180), "gold": (212, 175, 55), "chroma-green": (0, 177, 64),
    "chroma-blue": (0, 71, 187), "blonde": (230, 200, 120), "platinum": (230, 228, 215),
    "auburn": (150, 50, 30), "copper": (190, 90, 40), "chestnut": (120, 60, 40),
    "burgundy": (120, 20, 40), "ash": (170, 165, 155),
}


def parse_color(text: str) -> Color:
    """'red', '#c83232', '#c33' or '200,50,50' -> (r, g, b); ValueError otherwise."""
    value = text.strip().lower()
    if value in NAMED_COLORS:
        return NAMED_COLORS[value]
    digits = value.lstrip("#")
    if value.startswith("#") and len(digits) in (3, 6) and all(c in "0123456789abcdef" for c in digits):
        digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        return tuple(int(p) for p in parts)
    raise ValueError(f"'{text}' is not a colour: use a name ({', '.join(sorted(NAMED_COLORS))}), "
                     "#rrggbb or r,g,b")


def _color_option(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_color(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _backdrop_option(ctx, param, value):
    """An existing file is a picture; anything else must be a colour."""
    if value is None or Path(value).is_file():
        return None if value is None else Path(value)
    try:
        return parse_color(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is neither an existing image file nor a colour "
                                 "(a name, #rrggbb or r,g,b)") from None


@dataclass(frozen=True)
class CompositeRequest:
    """The composite flags as given; ``effect_options`` resolves them once the model is known.

    ``backdrop`` is a colour or the path of a picture, read only when the options are resolved.
    ``format`` overrides the composites' file format (png, jpg, webp; the input's by default).
    """

    names: tuple[str, ...] = ()
    classes: Optional[str] = None
    blur_strength: float = 1.0
    backdrop: Union[Color, Path, None] = None
    hair_color: Optional[Color] = None
    refine: bool = True
    format: Optional[str] = None

    def effect_options(self, labels):
        from ..effects import Backdrop, EffectOptions

        classes = parse_classes(self.classes, labels)
        backdrop = None
        if isinstance(self.backdrop, Path):
            from ..io import read_image

            backdrop = Backdrop(picture=read_image(self.backdrop))
        elif self.backdrop is not None:
            backdrop = Backdrop(color=self.backdrop)
        return EffectOptions(classes=classes, recolor_classes=self._recolor_classes(classes, labels),
                             blur_strength=self.blur_strength, backdrop=backdrop,
                             hair_color=self.hair_color, refine=self.refine)

    def _recolor_classes(self, classes, labels) -> Optional[tuple[int, ...]]:
        # Recolouring the whole person is never what --recolor-hair means: without --classes it
        # takes the model's hair category, and a model without one is an error, not a guess.
        if "recolor" not in self.names or classes is not None:
            return classes
        hair = [index for index, label in enumerate(labels) if label.lower() == "hair"]
        if not hair:
            raise click.BadParameter(
                f"this model has no hair category ({', '.join(labels)}); use --model hair or "
                "--model multiclass, or name the categories to recolour with --classes",
                param_hint="--recolor-hair")
        return tuple(hair)


def composite_options(function):
    """Adds the composite flags and hands the command one ``composite`` (a CompositeRequest)."""

    @functools.wraps(function)
    def command(*args, blur, blur_strength, replace_bg, cutout, recolor_hair, classes, refine,
                composite_format, **kwargs):
        wanted = {"blur": blur, "replace": replace_bg is not None, "cutout": cutout,
                  "recolor": recolor_hair is not None}
        request = CompositeRequest(
            names=tuple(name for name in COMPOSITE_NAMES if wanted[name]), classes=classes,
            blur_strength=blur_strength, backdrop=replace_bg, hair_color=recolor_hair, refine=refine,
            format=composite_format,
        )
        return function(*args, composite=request, **kwargs)

    return _stack(
        click.option("--blur", is_flag=True, help="Write <stem>.blur.<ext>: background blurred, subject sharp."),
        click.option("--blur-strength", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
                     help="Blur radius relative to the default (1.2% of the longer side)."),
        click.option("--replace-bg", metavar="IMAGE|COLOR", callback=_backdrop_option,
                     help="Write <stem>.replace.<ext>: background replaced by a picture (scaled to "
                          "cover) or a colour (name, #rrggbb, r,g,b)."),
        click.option("--cutout", is_flag=True,
                     help="Write <stem>.cutout.png: RGBA, alpha = subject confidence (.webp with "
                          "--composite-format webp)."),
        click.option("--recolor-hair", metavar="COLOR", callback=_color_option,
                     help="Write <stem>.recolor.<ext>: hair tinted, shading kept (--model hair or "
                          "multiclass)."),
        click.option("--classes", default=None, metavar="NAMES",
                     help="Comma-separated category names or indices that count as the subject "
                          "(default: all but background; for --recolor-hair: hair)."),
        click.option("--refine/--no-refine", default=True, show_default=True,
                     help="Snap composite edges to the image (mask files are never refined)."),
        click.option("--composite-format", type=click.Choice(["png", "jpg", "webp"]), default=None,
                     help="File format of composites (default: the input's)."),
    )(command)


def strip_metadata_option(function):
    """--strip-metadata, for still images (video outputs carry no photo metadata to strip)."""
    return click.option(
        "--strip-metadata", is_flag=True,
        help="Composites without the input's EXIF (camera, date, GPS) and colour profile; "
             "by default they keep both, with the orientation reset since their pixels are upright.",
    )(function)


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
    if not chosen:
        raise click.BadParameter(f"'{text}' names no category", param_hint="--classes")
    return tuple(dict.fromkeys(chosen))


def output_dir_option(function):
    return click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("."), show_default=True, help="Folder for the outputs.")(function)
