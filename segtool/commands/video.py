"""`segtool video`: segment a video file into composite, alpha or mask videos, or per-frame masks."""
from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .options import composite_options, mask_options, model_options
from .report import Reporter, progress

# --smooth alone: MediaPipe's pose landmarker smooths its segmentation mask with this ratio
DEFAULT_SMOOTH = 0.7


def smooth_option(function):
    return click.option(
        "--smooth", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, is_flag=False,
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
@mask_options
@composite_options
@click.option("--alpha", is_flag=True,
              help="The subject on a transparent background: VP9 .webm (default) or ProRes 4444 .mov.")
@click.option("--mask-video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the subject mask as a grey video (white = subject).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="A video file (.mp4 .mov .webm .mkv .avi) for one output, or a folder.")
@smooth_option
@max_pixels_option
@click.option("--audio/--no-audio", "keep_audio", default=True, show_default=True,
              help="Copy the input's audio into composite videos (re-encoded where the container needs it).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def video(input_path, model, device, threads, display_names_locale, category_mask, confidence_masks,
          confidence_format, composite, alpha, mask_video, output, smooth, max_pixels, keep_audio, quiet):
    """Segment every frame of a video (MediaPipe's VIDEO running mode).

    \b
    segtool video talk.mp4 --blur -o talk.blur.mp4          H.264, same fps, size, frames, audio
    segtool video talk.mp4 --alpha -o talk.alpha.webm       subject with transparency
    segtool video talk.mp4 --category-mask -o masks/        masks/talk.000001.category.png, ...
    segtool video talk.mp4 --blur --mask-video mask.mp4 -o out/

    With a folder as --output, videos are named <stem>.<effect>.mp4 (<stem>.cutout.webm for
    --alpha). Per-frame files are <stem>.<frame>.category.png and <stem>.<frame>.confidence.npy
    (or .exr), frames counted from 1; per-frame confidence masks are written only when
    --confidence-masks is given, since they add up fast.
    """
    from .. import io as sio
    from ..options import ImageSegmenterOptions, RunningMode
    from ..segmenter import ImageSegmenter
    from ..video import VideoOutputs, pipeline_options, run_video

    refuse_image_format(composite)
    confidence_masks = confidence_masks and _given("confidence_masks")
    videos = _planned_videos(input_path, output, composite.names, alpha, mask_video)
    per_frame = category_mask or confidence_masks
    if not (videos or per_frame):
        raise click.UsageError("nothing to write: ask for an effect (--blur, ...), --alpha, --mask-video, "
                               "--category-mask or --confidence-masks")
    if per_frame and sio.is_video_path(output):
        raise click.UsageError("per-frame masks need --output to be a folder, not a video file")
    with sio.open_video(input_path, max_pixels=max_pixels) as reader:
        options = ImageSegmenterOptions(
            model=model, running_mode=RunningMode.VIDEO, output_category_mask=category_mask,
            output_confidence_masks=confidence_masks or bool(videos) or smooth > 0,
            display_names_locale=display_names_locale, device=device, num_threads=threads,
        )
        with ImageSegmenter.create_from_options(pipeline_options(options)) as segmenter:
            outputs = VideoOutputs(
                videos=videos, frames_dir=None if sio.is_video_path(output) else output,
                stem=input_path.stem, category_mask=category_mask, confidence_masks=confidence_masks,
                confidence_format=confidence_format, effect_options=composite.effect_options(segmenter.labels),
                smooth=smooth, keep_audio=keep_audio,
            )
            reporter = Reporter(quiet=quiet)
            with progress(reporter, reader.info.frame_count, input_path.name):
                report = run_video(reader, segmenter, outputs, on_frame=lambda done: reporter.advance())
    raise SystemExit(_summary(report, quiet))


def refuse_image_format(composite) -> None:
    if composite.format:
        raise click.UsageError("--composite-format is for images; a video's format comes from --output's extension")


def _given(parameter: str) -> bool:
    """Whether the user typed the option: video ignores mask_options' default of writing confidence."""
    return click.get_current_context().get_parameter_source(parameter) is not ParameterSource.DEFAULT


def _planned_videos(input_path: Path, output: Path, names, alpha: bool, mask_video):
    """(name, path) for each video to write; ``--alpha`` is the cut-out composite."""
    from .. import io as sio
    from ..video import MASK_VIDEO

    names = tuple(names) + (("cutout",) if alpha and "cutout" not in names else ())
    if sio.is_video_path(output):
        if len(names) != 1:
            raise click.UsageError(f"--output {output} is one video file but {len(names) or 'no'} video "
                                   f"effects were asked for; give a folder for several")
        planned = ((names[0], output),)
    else:
        planned = tuple((n, output / f"{input_path.stem}.{n}{'.webm' if n == 'cutout' else '.mp4'}") for n in names)
    if mask_video is not None:
        planned += ((MASK_VIDEO, mask_video),)
    for _, path in planned:
        if path.exists() and path.resolve() == input_path.resolve():
            raise click.UsageError(f"{path}: the output would overwrite the input")
    return planned


def _summary(report, quiet: bool) -> int:
    """Print how it went on stderr; the exit status (1 when the input ended early)."""
    if not quiet:
        for note in report.notes:
            click.echo(f"segtool: note: {note}", err=True)
        written = ", ".join(map(str, report.outputs))
        if report.frame_files:
            written += (", " if written else "") + f"{report.frame_files} mask files"
        click.echo(f"segtool: {report.input}: {report.frames} frames at {float(report.fps):g} fps in "
                   f"{report.seconds:.1f} s ({report.speed:.1f} frames/s) -> {written or 'nothing'}", err=True)
    if report.problem:
        click.echo(f"segtool: {report.problem}", err=True)
        return 1
    return 0
