"""Option groups shared by several subcommands, written once as decorators."""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import click

from ..registry import MANIFEST_NAME, bundled_dir
from ..usermodels import added_names, looks_like_path


def manifest_names() -> list[str]:
    # Read the manifest as plain JSON: cheap enough for --help, and no ModelSpec import chain.
    try:
        return list(json.loads((bundled_dir() / MANIFEST_NAME).read_text())["models"])
    except (OSError, ValueError, KeyError):
        return ["selfie"]


def model_names() -> list[str]:
    """The manifest's names, then those kept with `segtool models add`."""
    names = manifest_names()
    return names + [n for n in added_names() if n not in names]


class ModelParam(click.ParamType):
    """A model name (the manifest's or an added one) or a path to a .tflite / .onnx file.

    ``names_only``: refuse paths (commands about kept models, such as `models remove`).
    """

    name = "model"

    def __init__(self, names_only: bool = False):
        self.names_only = names_only

    def get_metavar(self, param, ctx=None) -> str:
        return "NAME" if self.names_only else "NAME|FILE"

    def convert(self, value, param, ctx):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        names = model_names()
        if value in names:
            return value
        if not self.names_only and looks_like_path(value):
            path = Path(value).expanduser()
            if not path.is_file():
                self.fail(f"{value}: {'is a folder, not' if path.is_dir() else 'no such'} model file", param, ctx)
            return value
        also = "" if self.names_only else ", or a .tflite or .onnx file"
        self.fail(f"unknown model '{value}': choose one of {', '.join(names)}{also}", param, ctx)


def _stack(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def model_options(function):
    return _stack(
        click.option("--model", "-m", default="selfie", show_default=True, envvar="SEGTOOL_MODEL",
                     type=ModelParam(),
                     help="Which segmentation model to run: a name (`segtool models list`) or a TFLite or "
                          "ONNX model file (`segtool models add` keeps one under a name)."),
        click.option("--device", default="auto", show_default=True, envvar="SEGTOOL_DEVICE",
                     type=click.Choice(["auto", "cpu", "cuda", "directml"]),
                     help="Execution provider; auto tries CUDA, then DirectML, then CPU. On CUDA the "
                          "work around the network runs on the GPU too (`segtool info` says which path runs)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, envvar="SEGTOOL_THREADS",
                     callback=_within_machine(per_cpu=1),
                     help="onnxruntime intra-op threads (default: chosen from the physical cores; "
                          "at most one per usable CPU)."),
        click.option("--locale", "display_names_locale", default="en", show_default=True,
                     help="Language of category names, where the model has them."),
    )(function)


def jobs_option(function):
    return click.option(
        "--jobs", "-j", type=click.IntRange(min=1), default=None, envvar="SEGTOOL_JOBS",
        callback=_within_machine(per_cpu=JOBS_PER_CPU),
        help="Inputs processed at once, so decoding and encoding overlap inference "
             f"(default: one per core, at least 2; at most {JOBS_PER_CPU} per usable CPU).")(function)


JOBS_PER_CPU = 4  # inputs in flight beyond this only hold decoded images in memory


def _within_machine(per_cpu: int):
    """A callback that lowers a thread or job count above ``per_cpu`` x the usable CPUs, with a note.

    Far more threads than CPUs never run faster; 20000 of them took minutes to start and
    ignored SIGTERM meanwhile (a signal waits until the C call that creates them returns).
    """

    def bound(ctx, param, value):
        if value is None:
            return None
        from ..runtime import usable_cpus

        limit = max(2, per_cpu * usable_cpus())
        if value > limit:
            click.echo(f"segtool: note: --{param.name} {value} is more than this machine can use "
                       f"({usable_cpus()} usable CPUs); using {limit}", err=True)
            return limit
        return value

    return bound


def _mask_options(category_help: str, confidence_default: bool, confidence_help: str):
    return _stack(
        click.option("--category-mask/--no-category-mask", default=False, show_default=True, help=category_help),
        click.option("--confidence-masks/--no-confidence-masks", default=confidence_default, show_default=True,
                     help=confidence_help),
        click.option("--confidence-format", type=click.Choice(["npy", "exr"]), default="npy",
                     show_default=True, help="File format of confidence masks."),
    )


mask_options = _mask_options(  # segtool image: one set of masks per input
    "Write <stem>.category.png: uint8 category index per pixel.", True,
    "Write <stem>.confidence.<fmt>: float32 (C, H, W).")

frame_mask_options = _mask_options(  # segtool video: per-frame files, only when asked (they add up fast)
    "Write <stem>.<frame>.category.png for every frame: uint8 category index per pixel.", False,
    "Write <stem>.<frame>.confidence.<fmt> for every frame: float32 (C, H, W).")


COMPOSITE_NAMES = ("blur", "replace", "cutout", "recolor", "alpha")  # effects.COMPOSITES, without importing cv2

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
            from ..errors import InputError
            from ..io import read_image

            try:
                backdrop = Backdrop(picture=read_image(self.backdrop))
            except InputError as exc:  # the command line names a picture that is not one
                raise click.BadParameter(str(exc), param_hint="--replace-bg") from None
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


def _composite_decorator(function, *, images: bool):
    """The composite flags, handed to the command as one ``composite`` (a CompositeRequest)."""

    @functools.wraps(function)
    def command(*args, blur, blur_strength, replace_bg, cutout, recolor_hair, alpha_mask, classes, refine,
                composite_format=None, **kwargs):
        if cutout and composite_format == "jpg":  # the other composites do become JPEGs
            click.echo("segtool: note: --composite-format jpg: cut-outs are written as PNG, since JPEG "
                       "has no alpha channel (webp has one)", err=True)
        wanted = {"blur": blur, "replace": replace_bg is not None, "cutout": cutout,
                  "recolor": recolor_hair is not None, "alpha": alpha_mask}
        request = CompositeRequest(
            names=tuple(name for name in COMPOSITE_NAMES if wanted[name]), classes=classes,
            blur_strength=blur_strength, backdrop=replace_bg, hair_color=recolor_hair, refine=refine,
            format=composite_format,
        )
        return function(*args, composite=request, **kwargs)

    # Image composites are files named <stem>.<effect>.<ext>; a stream's are its video frames.
    writes = "Write <stem>.{}.<ext>: ".format if images else (lambda name: "")
    cutout_help = ("Write <stem>.cutout.png: RGBA, alpha = the subject's (refined unless --no-refine; "
                   ".webp with --composite-format webp)." if images else
                   "The subject on a transparent background (an output with alpha: .webm or .mov).")
    alpha_help = ("Write <stem>.alpha.png: 8-bit grey, the subject's alpha exactly as the composites use "
                  "it (refined unless --no-refine)." if images else
                  "The subject's alpha as a grey video, exactly as the composites use it.")
    options = [
        click.option("--blur", is_flag=True, help=writes("blur") + "background blurred, subject sharp."),
        click.option("--blur-strength", type=FiniteFloatRange(min=0.05, max=MAX_BLUR_STRENGTH), default=1.0,
                     show_default=True, help="Blur radius relative to the default (1.2% of the longer side)."),
        click.option("--replace-bg", metavar="IMAGE|COLOR", callback=_backdrop_option,
                     help=writes("replace") + "background replaced by a picture (scaled to cover) or a "
                          "colour (name, #rrggbb, r,g,b)."),
        click.option("--cutout", is_flag=True, help=cutout_help),
        click.option("--recolor-hair", metavar="COLOR", callback=_color_option,
                     help=writes("recolor") + "hair tinted, shading kept (--model hair or multiclass)."),
        click.option("--alpha-mask", is_flag=True, help=alpha_help),
        click.option("--classes", default=None, metavar="NAMES",
                     help="Comma-separated category names or indices that count as the subject "
                          "(default: all but background; for --recolor-hair: hair)."),
        click.option("--refine/--no-refine", default=True, show_default=True,
                     help="Snap composite edges to the image and give edge pixels the subject's own colour"
                          + (" (mask files are never refined)." if images else ".")),
    ]
    if images:
        options.append(click.option(
            "--composite-format", type=click.Choice(["png", "jpg", "webp"]), default=None,
            help="File format of composites (default: the input's; --cutout: png or webp)."))
    return _stack(*options)(command)


def composite_options(function):
    """segtool image's composite flags: files named by the output contract."""
    return _composite_decorator(function, images=True)


def stream_composite_options(function):
    """segtool video's and webcam's: the same effects, as frames of a video (no file names, no format)."""
    return _composite_decorator(function, images=False)


MAX_BLUR_STRENGTH = 100.0  # a radius of 1.2 times the longer side: every pixel already the mean


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which every comparison lets through."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


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


def _output_folder(ctx, param, value):
    """-o of `segtool image` is a folder: an existing one, or a new name (a trailing / makes it plain).

    An existing file, or a new name ending like a picture (``-o portrait.blur.jpg``), is a
    usage error rather than a file silently replaced or a folder nobody meant.
    """
    from ..io import image_extensions  # runs only when the command does, never for --help
    from ..io.storage import is_url

    if is_url(value):  # s3://, gs://, file://: sio.location() makes it a path, never Path() (s3:/x)
        return value
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{value} is a file; --output takes a folder (an existing one, or a new "
                                 "name, which is created)")
    # Asked last: image_extensions() loads every Pillow plugin (0.1-0.2 s), which `-o existing`
    # or `-o new_folder` need not pay.
    if path.suffix and not path.exists() and not value.endswith(("/", os.sep)) \
            and path.suffix.lower() in image_extensions() | {".npy", ".exr"}:
        raise click.BadParameter(f"{value} looks like a file name; --output takes a folder, and each output is "
                                 f"named after its input (end it with / for a folder named {path.name})")
    return path


def output_dir_option(function):
    # A string for URLs, not a Path: it may be an object-store URL (s3://bucket/masks/), which Path
    # would mangle.
    return click.option("--output", "-o", "out_dir", type=click.Path(), callback=_output_folder,
                        default=".", show_default=True,
                        help="Folder (or s3://, gs://, file:// URL) for the outputs (created if needed).")(function)


def palette_option(function):
    return click.option(
        "--palette", is_flag=True,
        help="Also write <stem>.category-color.png: the category mask in colours, to look at "
             "(implies --category-mask, whose file stays the plain indices).")(function)


def refuse_unencodable_videos(targets) -> None:
    """A usage error (exit 2, before any work) for each (path, channels) no video format can take.

    channels: 1 a grey mask video, 3 RGB, 4 RGBA (the cut-out, which needs .webm or .mov).
    """
    from ..errors import OutputError
    from ..io.video import encoder_args

    for path, channels in targets:
        try:
            encoder_args(path, channels, 2, 2)
        except OutputError as exc:
            raise click.UsageError(str(exc)) from None
