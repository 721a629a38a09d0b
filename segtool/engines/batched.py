"""The local engine in batches: the unit of work split at the inference call.

job.load (plan, settle, read, prepare) runs on threads; the main thread gathers loaded inputs
into batches and makes one job.infer call each (segmenter.run_prepared); job.finish (masks,
files, report) runs on the threads again. Each input still fails alone: an undecodable file
never enters a batch, and a batch whose inference fails is run again one input at a time.
The files and reports equal those of batch size 1, which is the same three calls.

The main thread admits inputs in order (output clashes are decided there), keeps the next batch
loading while it runs the current one, and hands each finished batch back to the pool to be
written. At most two batches are held decoded and a bounded number written ahead of the
reports, so memory stays flat however many inputs there are.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Optional

from .. import io as sio
from .. import job
from ..outputs import ImageOutputs, ItemReport
from .inflight import forget_finished, settled


@dataclass
class _Slot:
    """One input's place in the report order: ``report`` resolves to its ItemReport."""

    item: sio.InputItem
    load: Optional[Future] = None  # -> job.Loaded, or an ItemReport (skipped, refused, unreadable)
    report: Optional[Future] = None


def run_batched(items, segmenter, outputs: ImageOutputs, on_item, claim, *, jobs: int, batch_size: int,
                target=job.FILES) -> None:
    runner = _BatchRunner(segmenter, outputs, on_item, claim, jobs, batch_size, target)
    try:
        runner.run(items)
    finally:
        # Ctrl-C, SIGTERM or a stop: start nothing new, and let the items being written finish
        # (their files are written atomically) before the caller tidies up.
        runner.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _BatchRunner:
    segmenter: object
    outputs: ImageOutputs
    on_item: object
    claim: object  # item -> a clash report, or None once its outputs are claimed for it
    jobs: int
    batch_size: int
    target: object  # job.FILES, or dataset shards
    unrun: deque = field(default_factory=deque)  # admitted, loading or loaded, not yet inferred
    unreported: deque = field(default_factory=deque)  # every admitted slot, in input order
    last_write: dict = field(default_factory=dict)  # input path -> its latest write job in flight
    stopped: bool = False

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="segtool-image")

    def run(self, items) -> None:
        held = 3 * self.batch_size + 2 * self.jobs
        for item in items:
            self._admit(item)
            if len(self.unrun) >= 2 * self.batch_size:  # the next batch loads while this one runs
                self._run_batch()
            self._report_ready(limit=held)
            if self.stopped:
                return self._finish_after_stop()
        while self.unrun and not self.stopped:
            self._run_batch()
            self._report_ready(limit=held)
        self._report_ready(limit=0)
        if self.stopped:
            self._finish_after_stop()

    def _admit(self, item: sio.InputItem) -> None:
        slot = _Slot(item)
        clash = self.claim(item)
        if clash is not None:
            slot.report = settled(clash)
        else:
            slot.load = self.pool.submit(job.load, item, self.segmenter, self.outputs, self.target)
            self.unrun.append(slot)
        self.unreported.append(slot)

    def _run_batch(self) -> None:
        batch = [self.unrun.popleft() for _ in range(min(self.batch_size, len(self.unrun)))]
        loaded = []
        for slot in batch:
            result = slot.load.result()
            if isinstance(result, ItemReport):
                slot.report = settled(result)
            else:
                loaded.append((slot, result))
        for (slot, each), output in zip(loaded, job.infer(self.segmenter, [each for _, each in loaded])):
            previous = self.last_write.get(each.item.path)
            slot.report = self.pool.submit(self._finish, previous, each, output)
            self.last_write[each.item.path] = slot.report
            slot.load = None  # the decoded image now lives only in the write job

    def _finish(self, previous: Optional[Future], loaded: job.Loaded, output) -> ItemReport:
        # The same input listed twice writes the same files: the second waits for the first, so
        # two threads never write one temporary file. Write jobs start in submission order, so
        # the one waited for is already running.
        if previous is not None:
            wait([previous])
        return job.finish(loaded, output, self.segmenter, self.outputs, self.target)

    def _report_ready(self, limit: int) -> None:
        """Report every finished input at the front; wait while more than ``limit`` are held."""
        while self.unreported and not self.stopped:
            slot = self.unreported[0]
            if slot.report is None:  # not run yet: only running its batch can finish it
                if len(self.unreported) <= limit:
                    return
                self._run_batch()
                continue
            if not slot.report.done() and len(self.unreported) <= limit:
                return
            self.unreported.popleft()
            self._report(slot.report.result())

    def _report(self, report: ItemReport) -> None:
        self.on_item(report)
        forget_finished(self.last_write, report.input)
        self.stopped = self.stopped or report.stops_batch

    def _finish_after_stop(self) -> None:
        """The output storage failed: inputs not yet run count as not tried; those being written
        are reported if they still succeeded (failures on the same full disk add nothing)."""
        for slot in self.unrun:
            slot.load.cancel()
        for slot in self.unreported:
            if slot.report is not None and not slot.report.cancelled():
                report = slot.report.result()
                if not report.stops_batch:
                    self.on_item(report)
