"""`segtool webcam`: segment a live feed (camera, file or lavfi graph) into a window, device or file."""
from __future__ import annotations

import contextlib
import signal
import sys

import click

from .options import model_options, refuse_unencodable_videos, stream_composite_options
from .report import live_summary
from .video import max_pixels_option, smooth_option


@click.command()
@click.option("--source", "-s", default=None, metavar="DEVICE|FILE|FORMAT:INPUT",
              help="Any ffmpeg input: /dev/video0 (the default on Linux), talk.mp4 (played in real time), "
                   "'lavfi:testsrc2=size=640x360:rate=30', 'avfoundation:0', 'dshow:video=NAME', a URL. "
                   "A file that exists wins over FORMAT:INPUT (in:1.mp4 is a file).")
@click.option("--output", "-o", default=None, metavar="FILE|/dev/videoN",
              help="A video file (.mp4 .mkv .webm .mov), or a v4l2loopback device to use as a camera in calls.")
@click.option("--preview/--no-preview", default=None,
              help="Show a window (needs ffplay and a display). Default: on when there is no --output.")
@model_options
@stream_composite_options
@smooth_option
@max_pixels_option
@click.option("--quiet", "-q", is_flag=True, help="No status line or summary.")
def webcam(source, output, preview, model, device, threads, display_names_locale, composite, smooth,
           max_pixels, quiet):
    """Segment a live feed (MediaPipe's LIVE_STREAM mode); Ctrl-C stops and finishes the output.

    \b
    segtool webcam --blur                                   preview window
    segtool webcam --blur --output /dev/video10             virtual camera (v4l2loopback)
    segtool webcam --source talk.mp4 --blur --output out.mp4

    Frames are segmented as they arrive; when inference falls behind, the newest frame wins and
    older ones are dropped. A status line reports frames per second and the latency from capture
    to output. The preview uses ffplay, because OpenCV's headless build has no windows.

    Ctrl-C ends the run normally (exit 0); SIGTERM, SIGHUP (a closed terminal) and SIGQUIT
    finish the output file the same way and exit 143, 129 and 131. Either way the file is whole
    and playable.
    """
    from .. import io as sio
    from ..cli import Terminated
    from ..options import ImageSegmenterOptions
    from ..engines.stream import LiveOutputs, SignalHold, open_live_sinks, run_live
    from ..registry import resolve

    name = _one_effect(composite)
    preview = output is None if preview is None else preview
    if not (output or preview):
        raise click.UsageError("nowhere to send frames: give --output or --preview")
    if output:
        refuse_unencodable_videos([(output, 4 if name == "cutout" else 3)])
    options = ImageSegmenterOptions(model=model, display_names_locale=display_names_locale,
                                    device=device, num_threads=threads)
    outputs = LiveOutputs(composite=name, smooth=smooth,
                          effect_options=composite.effect_options(resolve(model).spec.labels_for(display_names_locale)))
    stops = (KeyboardInterrupt, Terminated)
    # started once the run has stopped and never released: from then on the process only
    # finishes its outputs and exits, and a further Ctrl-C must not cut that short
    hold = SignalHold(stops)
    with sio.open_live(source, max_pixels=max_pixels) as reader, contextlib.ExitStack() as stack:
        sinks = open_live_sinks(stack, reader.info, outputs, output=output, preview=preview)
        status_line = _StatusLine(quiet)
        final = run_live(reader, options, outputs, sinks, on_status=status_line, stop_on=stops)
        hold.start()
        status_line.close()
    live_summary(reader.label, final, output, quiet)
    # Only the exit is left. Python resets the handlers it set to SIG_DFL as it finalizes, so a
    # Ctrl-C then would kill the process without its exit status; ignored ones stay ignored.
    for number in SignalHold.SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    terminated = [stop for stop in (final.stopped_by, *hold.held) if isinstance(stop, Terminated)]
    if terminated:
        raise terminated[0]  # the output is finished; the exit status still says which signal (143 SIGTERM, ...)


def _say(text: str, **options) -> None:
    """A line on stderr, unless the terminal is gone (SIGHUP closed it): the run still finishes
    its file and exits with the signal's status (the CLI then points stderr at /dev/null)."""
    with contextlib.suppress(OSError):
        click.echo(text, err=True, **options)


def _one_effect(composite) -> str:
    names = composite.names
    if len(names) != 1:
        raise click.UsageError(f"a live feed takes one effect, not {len(names) or 'none'}: "
                               "--blur, or another composite option")
    return names[0]


class _StatusLine:
    """Frames per second and latency on one line that refreshes in place, on a terminal only."""

    def __init__(self, quiet: bool):
        self._live = not quiet and sys.stderr.isatty()
        self._shown = False

    def __call__(self, status) -> None:
        if self._live:
            _say(f"\r{status.fps:5.1f} fps  latency {status.latency_ms:4.0f} ms  "
                 f"dropped {status.dropped}  {status.seconds:4.0f} s ", nl=False)
            self._shown = True

    def close(self) -> None:
        if self._shown:
            _say("")
