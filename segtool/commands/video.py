"""`segtool video`: segment a video file into composite, alpha or mask videos, or per-frame masks."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
from click.core import ParameterSource

from .options import (FiniteFloatRange, frame_mask_options, model_options, palette_option,
                      refuse_unencodable_videos, stream_composite_options)
from .report import Reporter, progress, video_summary

# --smooth alone: MediaPipe's pose landmarker smooths its segmentation mask with this ratio
DEFAULT_SMOOTH = 0.7


def smooth_option(function):
    return click.option(
        "--smooth", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.0, is_flag=False,
        flag_value=DEFAULT_SMOOTH, metavar="[RATIO]",
        help=f"Damp mask flicker between frames: uncertain pixels keep RATIO of the previous mask "
             f"(--smooth alone: {DEFAULT_SMOOTH}).",
    )(function)


def max_pixels_option(function):
    # the same default as `segtool image` (io.DEFAULT_MAX_PIXELS, not imported: --help stays light)
    return click.option(
        "--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
        help="Refuse a source whose frames (as shown, in square pixels) are larger than this many pixels; "
             "checked from the stream's header, before any frame is decoded.",
    )(function)


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@model_options
@frame_mask_options
@palette_option
@stream_composite_options
@click.option("--alpha", is_flag=True,
              help="The subject on a transparent background: VP9 .webm (default) or ProRes 4444 .mov.")
@click.option("--mask-video", type=click.Path(dir_okay=False), default=None, callback=lambda c, p, v: _video_file(v),
              help="Also write the subject mask as a grey video (white = subject), a video file.")
@click.option("--output", "-o", default=".", show_default=True, callback=lambda c, p, v: _output_target(v),
              help="A video file (.mp4 .m4v .mov .mkv .webm .avi) for one output, or a folder: an existing "
                   "one, or a name ending in /.")
@smooth_option
@max_pixels_option
@click.option("--audio/--no-audio", "keep_audio", default=True, show_default=True,
              help="Copy the input's audio into composite videos (re-encoded where the container needs it).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def video(input_path, model, device, threads, display_names_locale, category_mask, confidence_masks,
          confidence_format, palette, composite, alpha, mask_video, output, smooth, max_pixels, keep_audio,
          quiet):
    """Segment every frame of a video (MediaPipe's VIDEO running mode).

    \b
    segtool video talk.mp4 --blur -o talk.blur.mp4          H.264, same fps, size, frames, audio
    segtool video talk.mp4 --alpha -o talk.alpha.webm       subject with transparency
    segtool video talk.mp4 --category-mask -o masks/        masks/talk.000001.category.png, ...
    segtool video talk.mp4 --blur --mask-video mask.mp4 -o out/

    With a folder as --output, videos are named <stem>.<effect>.mp4 (<stem>.cutout.webm for
    --alpha). Per-frame files are <stem>.<frame>.category.png and <stem>.<frame>.confidence.npy
    (or .exr), frames counted from 1; per-frame confidence masks are written only when
    --confidence-masks is given, since they add up fast. --palette adds
    <stem>.<frame>.category-color.png, the masks in colour. A file segtool did not write, or
    the input, is never overwritten.
    """
    from .. import io as sio
    from ..engines.stream import VideoOutputs, pipeline_options, run_video
    from ..options import ImageSegmenterOptions, RunningMode
    from ..outputs import existing_frame_files, refuse_overwrites
    from ..segmenter import ImageSegmenter

    confidence_masks = confidence_masks and _given("confidence_masks")
    category_mask = category_mask or palette
    output, to_file = output
    videos = _planned_videos(input_path, output, to_file, composite.names, alpha, mask_video)
    per_frame = category_mask or confidence_masks
    if not (videos or per_frame):
        raise click.UsageError("nothing to write: ask for an effect (--blur, ...), --alpha, --mask-video, "
                               "--category-mask or --confidence-masks")
    if per_frame and to_file:
        raise click.UsageError("per-frame masks need --output to be a folder, not a video file")
    outputs = VideoOutputs(
        videos=videos, frames_dir=None if to_file else output, stem=input_path.stem,
        category_mask=category_mask, category_preview=palette, confidence_masks=confidence_masks,
        confidence_format=confidence_format, smooth=smooth, keep_audio=keep_audio,
    )
    protected = sio.identities([input_path, composite.backdrop])
    refuse_overwrites([path for _, path in videos], protected)
    if per_frame:
        refuse_overwrites(existing_frame_files(input_path.stem, outputs.frame_masks), protected)
    with sio.open_video(input_path, max_pixels=max_pixels) as reader:
        options = ImageSegmenterOptions(
            model=model, running_mode=RunningMode.VIDEO, output_category_mask=category_mask,
            output_confidence_masks=confidence_masks or bool(videos) or smooth > 0,
            display_names_locale=display_names_locale, device=device, num_threads=threads,
        )
        with ImageSegmenter.create_from_options(pipeline_options(options)) as segmenter:
            outputs = dataclasses.replace(outputs, effect_options=composite.effect_options(segmenter.labels))
            reporter = Reporter(quiet=quiet)
            with progress(reporter, reader.info.frame_count, input_path.name):
                report = run_video(reader, segmenter, outputs, on_frame=lambda done: reporter.advance())
    raise SystemExit(video_summary(report, quiet))


def _given(parameter: str) -> bool:
    """Whether the user typed the option: video ignores mask_options' default of writing confidence."""
    return click.get_current_context().get_parameter_source(parameter) is not ParameterSource.DEFAULT


def _output_target(value: str) -> tuple[Path, bool]:
    """--output as (path, is a video file): a video extension names a file; an existing folder,
    or a name ending in /, a folder. Anything else is refused rather than guessed at."""
    from .. import io as sio

    path = Path(value)
    if path.is_dir() or value.endswith(("/", os.sep)):
        return path, False
    if sio.is_video_path(value):
        return path, True
    raise click.BadParameter(f"{value} is neither a video file ({_video_suffixes()}) nor a folder (an existing "
                             "one, or a name ending in /)", param_hint="'--output' / '-o'")


def _video_file(value):
    """--mask-video: a file with a video extension, never a folder."""
    from .. import io as sio

    if value is None:
        return None
    if sio.is_video_path(value) and not value.endswith(("/", os.sep)):
        return Path(value)
    raise click.BadParameter(f"{value} is not a video file name ({_video_suffixes()})", param_hint="'--mask-video'")


def _video_suffixes() -> str:
    from ..io import VIDEO_EXTENSIONS

    return " ".join(sorted(VIDEO_EXTENSIONS))


def _planned_videos(input_path: Path, output: Path, to_file: bool, names, alpha: bool, mask_video):
    """(name, path) for each video to write (outputs.planned_videos); ``--alpha`` is the cut-out."""
    from ..errors import UsageError
    from ..outputs import MASK_VIDEO, planned_videos

    names = tuple(names) + (("cutout",) if alpha and "cutout" not in names else ())
    try:
        planned = planned_videos(input_path.stem, output, to_file, names, mask_video)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    refuse_unencodable_videos((path, {"cutout": 4, MASK_VIDEO: 1}.get(n, 3)) for n, path in planned)
    return planned
