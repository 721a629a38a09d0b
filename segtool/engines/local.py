"""The local engine: every input through job.process_image, in order or on threads.

Knows nothing of Click: the CLI builds an ImageOutputs and a segmenter, then calls run_images.
Reports go to ``on_item`` in input order as they finish; nothing is kept per input, so memory
stays flat however many inputs stream in.
"""
from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Optional

from .. import io as sio
from ..io.writers import remove_stale_partials
from ..job import FILES, process_image
from ..outputs import Claims, ImageOutputs, ItemReport
from ..runtime import usable_cpus
from .inflight import forget_finished, opencv_threads, settled

OnItem = Callable[[ItemReport], None]


def run_images(items: Iterable[sio.InputItem], segmenter, outputs: ImageOutputs,
               on_item: OnItem = lambda report: None, *, jobs: int = 1, batch_size: int = 1,
               target=FILES) -> None:
    """Process every input, going on past failures; each report goes to ``on_item`` in input order.

    ``jobs`` inputs are processed at once on threads (decoding, onnxruntime and encoding release
    the GIL, so one input's decode overlaps another's inference and a third's encode); at most
    ``2 * jobs`` are in flight, so memory stays flat however many inputs there are.

    ``batch_size`` > 1: inputs are loaded on ``jobs`` threads, gathered into batches for one
    inference call each, and finished and written on the same threads (engines/batched.py);
    the files and reports are those of batch size 1.

    Stops early only when the output storage fails (full or read-only disk): the rest could
    not be written either. Two inputs that would write the same output file (``a.jpg`` and
    ``a.png``) are not both run: the second fails instead of overwriting the first's masks.
    Temporaries that killed runs left beside the outputs of this run are swept at the end.
    ``target``: where results go, job.FILES or dataset shards (datasets/target.py).
    """
    claims = Claims(outputs.protected)
    folders: set = set()

    def claim(item: sio.InputItem) -> Optional[ItemReport]:
        plan = target.plan(item, outputs)
        folders.update(p.parent for p in plan.values() if not sio.is_remote(p))
        return claims.claim(item, plan)

    # Inputs in flight share the cores; OpenCV's pool is shared out among them the same way.
    with opencv_threads(max(1, usable_cpus() // max(1, jobs))) if jobs > 1 else contextlib.nullcontext():
        if batch_size > 1:
            from .batched import run_batched

            run_batched(items, segmenter, outputs, on_item, claim, jobs=max(1, jobs), batch_size=batch_size,
                        target=target, lanes=segmenter.concurrent_runs)
        elif jobs <= 1:
            _run_in_order(items, segmenter, outputs, on_item, claim, target)
        else:
            _run_concurrently(items, segmenter, outputs, on_item, claim, jobs, target)
    remove_stale_partials(folders)


def _run_in_order(items, segmenter, outputs: ImageOutputs, on_item: OnItem, claim, target) -> None:
    for item in items:
        report = claim(item) or process_image(item, segmenter, outputs, target)
        on_item(report)
        if report.stops_batch:
            return


def _run_concurrently(items, segmenter, outputs: ImageOutputs, on_item: OnItem, claim, jobs: int, target) -> None:
    latest: dict = {}  # input path -> its last job, while that job is in flight
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="segtool-image")
    try:
        for item in items:
            pending.append(_submit(pool, item, segmenter, outputs, claim, latest, target))
            while len(pending) >= 2 * jobs or (pending and pending[0].done()):
                if _report(pending.popleft().result(), on_item, latest):
                    return _finish_after_stop(pending, on_item)
        while pending:
            if _report(pending.popleft().result(), on_item, latest):
                return _finish_after_stop(pending, on_item)
    finally:
        # Ctrl-C, SIGTERM or a stop: start nothing new, and let the items being written finish
        # (their files are written atomically) before the caller tidies up.
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool, item: sio.InputItem, segmenter, outputs: ImageOutputs, claim, latest: dict, target) -> Future:
    clash = claim(item)  # decided here, in input order
    if clash is not None:
        return settled(clash)
    # The same input listed twice writes the same files: the second waits for the first, so
    # two threads never write one temporary file. Waiting cannot deadlock: the pool starts jobs
    # in submission order, so whatever a job waits for has already started.
    previous = latest.get(item.path)
    future = pool.submit(_process_after, previous, item, segmenter, outputs, target)
    latest[item.path] = future
    return future


def _process_after(previous: Optional[Future], item, segmenter, outputs, target) -> ItemReport:
    if previous is not None:
        wait([previous])
    return process_image(item, segmenter, outputs, target)


def _report(report: ItemReport, on_item: OnItem, latest: dict) -> bool:
    on_item(report)
    forget_finished(latest, report.input)
    return report.stops_batch


def _finish_after_stop(pending: deque, on_item: OnItem) -> None:
    """Report the inputs already in flight when the storage failed, minus repeats of that failure.

    Those that still succeeded wrote whole files and are counted as done; those that failed on
    the same full or read-only disk add nothing to the line already printed: they count as
    not tried, as they would have been one at a time.
    """
    for future in pending:
        future.cancel()
    for future in pending:
        if not future.cancelled():
            report = future.result()
            if not report.stops_batch:
                on_item(report)
