"""How every command reports: errors and summaries on stderr, --json lines on stdout, a progress
bar on a terminal, and one exit-status rule (exit_status)."""
from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterator, Optional

import click


def item_json(report) -> str:
    """One JSON line; file names that are not valid UTF-8 come out as \\udcXX escapes.

    Python's json.loads turns those back into the surrogates os.fsencode maps to the original
    bytes, so such a name still opens; written raw they would crash a UTF-8 stdout.
    """
    fields = {
        "input": str(report.input),
        "ok": report.ok,
        "skipped": report.skipped,
        "error": report.error,
        "outputs": [str(p) for p in report.outputs],
        "categories": report.categories,
        "seconds": round(report.seconds, 4),
    }
    text = json.dumps(fields, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(fields)
    return text


class Reporter:
    """Prints each finished item as asked and counts them for the closing summary; it keeps the
    first LISTED failures to name there, and nothing else per input (memory stays flat)."""

    LISTED = 20

    def __init__(self, *, as_json: bool = False, quiet: bool = False, verbose: bool = False):
        self.as_json = as_json
        self.quiet = quiet
        self.verbose = verbose
        self.failures: list = []  # the first LISTED
        self.failed = 0
        self.done = 0
        self.skipped = 0
        self.total: Optional[int] = None  # set by progress(); lets the summary count what was never tried
        self.stopped_by = None  # the report that stopped the batch (full or read-only output disk)
        self.advance = lambda: None

    def __call__(self, report) -> None:
        if report.error:
            self.failed += 1
            if len(self.failures) < self.LISTED:
                self.failures.append(report)
            click.echo(f"segtool: {report.error}", err=True)
            if getattr(report, "stops_batch", False):
                self.stopped_by = report
        elif report.skipped:
            self.skipped += 1
        else:
            self.done += 1
        if self.as_json:
            click.echo(item_json(report))
        elif self.verbose and report.ok:
            click.echo(f"{report.input}: {', '.join(map(str, report.outputs))} ({report.seconds * 1000:.0f} ms)",
                       err=True)
        self.advance()

    def summary(self) -> int:
        """Print the closing summary; return the exit code (1 when any input failed)."""
        if not self.quiet:
            click.echo(f"segtool: {self._counts()}", err=True)
            listed = self.failures if self.failed > 1 else []
            for report in listed:
                click.echo(f"  failed: {report.input}", err=True)
            if self.failed > len(listed) > 0:
                click.echo(f"  ... and {self.failed - len(listed)} more", err=True)
        return exit_status(failed=bool(self.failed))

    def _counts(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        text = f"{self.done} done{skipped}, {self.failed} failed"
        if self.stopped_by is not None:
            seen = self.done + self.skipped + self.failed
            untried = f"{self.total - seen} not tried" if self.total is not None else "the rest not tried"
            text += f"; stopped early, {untried} (output storage full or read-only)"
        return text


def exit_status(*, failed: bool) -> int:
    """0 when everything asked for was done; 1 when an input failed or ended early. (2, usage, and
    128+N, a signal, are decided before or around a command, in cli.py.)"""
    return 1 if failed else 0


def video_summary(report, quiet: bool) -> int:
    """`segtool video`: notes and one line on how it went, on stderr; the exit status."""
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
    return exit_status(failed=bool(report.problem))


def live_summary(label: str, final, output, quiet: bool) -> None:
    """`segtool webcam`: one line on how the live run went, on stderr (unless SIGHUP closed the
    terminal: the run still finished its file)."""
    if quiet:
        return
    with contextlib.suppress(OSError):
        click.echo(f"segtool: {label}: {final.frames_in} frames in, {final.frames_out} out, "
                   f"{final.dropped} dropped; {final.fps:.1f} fps, latency {final.latency_ms:.0f} ms"
                   + (f" -> {output}" if output else ""), err=True)


@contextlib.contextmanager
def progress(reporter: Reporter, total: Optional[int], description: str) -> Iterator[None]:
    """A rich progress bar on stderr, only when stderr is a terminal and not --quiet."""
    reporter.total = total
    if reporter.quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        # task.speed is None until rich has measured one: "{task.speed:.1f}" would crash then.
        def render(self, task):
            return Text(f"{task.speed:.1f}/s" if task.speed else "")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        reporter.advance = lambda: bar.advance(task)
        yield
        # A video's frame count is estimated from its duration; end on the count actually done.
        bar.update(task, total=bar.tasks[0].completed)
        bar.refresh()
