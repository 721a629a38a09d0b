"""What the local engines share about work in flight: reports settled without work, and the
map from an input to its last job, which must hold only jobs not yet reported."""
from __future__ import annotations

from concurrent.futures import Future


def settled(report) -> Future:
    """A report decided without work, as a finished job."""
    future: Future = Future()
    future.set_result(report)
    return future


def forget_finished(latest: dict, path) -> None:
    """Drop ``path``'s entry once its last job is done: ``latest`` holds only jobs in flight."""
    future = latest.get(path)
    if future is not None and future.done():
        del latest[path]
