"""How commands talk: errors and summaries on stderr, --json lines on stdout, a progress bar on a terminal."""
from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterator, Optional

import click


def item_json(report) -> str:
    return json.dumps({
        "input": str(report.input),
        "ok": report.ok,
        "skipped": report.skipped,
        "error": report.error,
        "outputs": [str(p) for p in report.outputs],
        "categories": report.categories,
        "seconds": round(report.seconds, 4),
    }, ensure_ascii=False)


class Reporter:
    """Prints each finished item as asked and keeps the failures for the closing summary."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False, verbose: bool = False):
        self.as_json = as_json
        self.quiet = quiet
        self.verbose = verbose
        self.failures: list = []
        self.done = 0
        self.skipped = 0
        self.advance = lambda: None

    def __call__(self, report) -> None:
        if report.error:
            self.failures.append(report)
            click.echo(f"segtool: {report.error}", err=True)
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
            skipped = f", {self.skipped} skipped" if self.skipped else ""
            click.echo(f"segtool: {self.done} done{skipped}, {len(self.failures)} failed", err=True)
            for report in self.failures[:20] if len(self.failures) > 1 else []:
                click.echo(f"  failed: {report.input}", err=True)
        return 1 if self.failures else 0


@contextlib.contextmanager
def progress(reporter: Reporter, total: Optional[int], description: str) -> Iterator[None]:
    """A rich progress bar on stderr, only when stderr is a terminal and not --quiet."""
    if reporter.quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.speed:.1f}/s" if total else ""), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        reporter.advance = lambda: bar.advance(task)
        yield
