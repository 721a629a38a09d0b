"""The local engine in batches: the unit of work split at the inference call.

job.load (plan, settle, read, prepare) runs on threads; the main thread gathers loaded inputs
into batches and makes one job.infer call each (segmenter.run_prepared); job.finish (masks,
files, report) runs on the threads again. Each input still fails alone: an undecodable file
never enters a batch, and a batch whose inference fails is run again one input at a time.
The files and reports equal those of batch size 1, which is the same three calls.

The main thread admits inputs in order (output clashes are decided there), keeps the next batch
loading while it runs the current one, and hands each finished batch back to the pool to be
written. Where the segmenter gains from two inference calls at once (CUDA: one call's copies
leave the GPU idle that the other fills), batches run on ``lanes`` threads of their own, and the
main thread goes on admitting meanwhile. At most ``lanes + 1`` batches are held decoded and a
bounded number written ahead of the reports, so memory stays flat however many inputs there are.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
                target=job.FILES, lanes: int = 1) -> None:
    runner = _BatchRunner(segmenter, outputs, on_item, claim, jobs, batch_size, target, lanes)
    try:
        runner.run(items)
    finally:
        # Ctrl-C, SIGTERM or a stop: start nothing new, and let the items being written finish
        # (their files are written atomically) before the caller tidies up. Inference calls in
        # flight hand their inputs to the pool, so they end first.
        if runner.lanes_pool is not None:
            runner.lanes_pool.shutdown(wait=True, cancel_futures=True)
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
    lanes: int = 1  # inference calls in flight at once; with 1 the main thread makes them
    unrun: deque = field(default_factory=deque)  # admitted, loading or loaded, not yet inferred
    inferring: set = field(default_factory=set)  # inference calls in flight on the lanes
    unreported: deque = field(default_factory=deque)  # every admitted slot, in input order
    last_write: dict = field(default_factory=dict)  # input path -> its latest write job in flight
    stopped: bool = False

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="segtool-image")
        self.lanes_pool = (ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="segtool-infer")
                           if self.lanes > 1 else None)

    def run(self, items) -> None:
        held = (2 + self.lanes) * self.batch_size + 2 * self.jobs
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
        inference = self._infer([each for _, each in loaded])
        for index, (slot, each) in enumerate(loaded):
            previous = self.last_write.get(each.item.path)
            slot.report = self._finish_after(inference, index, previous, each)
            self.last_write[each.item.path] = slot.report
            slot.load = None  # the decoded image now lives only in the write job

    def _infer(self, loaded: list) -> Future:
        """The batch's inference call: made here, or on a free lane while this thread goes on."""
        if self.lanes_pool is None:
            inference: Future = Future()
            try:
                inference.set_result(job.infer(self.segmenter, loaded))
            except BaseException as exc:  # raised to the main thread when the batch is reported
                inference.set_exception(exc)
            return inference
        while len(self.inferring) >= self.lanes:
            self.inferring = wait(self.inferring, return_when=FIRST_COMPLETED).not_done
        inference = self.lanes_pool.submit(job.infer, self.segmenter, loaded)
        self.inferring.add(inference)
        return inference

    def _finish_after(self, inference: Future, index: int, previous: Optional[Future], loaded: job.Loaded) -> Future:
        """The input's report: its write job, started on the pool once its batch is inferred.

        The same input listed twice writes the same files: the second write starts once the
        first is done, never beside it (two threads never write one temporary file), and waits
        for it without holding a pool thread (lanes may finish batches out of order)."""
        report: Future = Future()

        def write(output) -> None:
            try:
                writing = self.pool.submit(job.finish, loaded, output, self.segmenter, self.outputs, self.target)
            except BaseException as exc:  # the pool was shut down by a stop
                report.set_exception(exc)
                return
            writing.add_done_callback(lambda written: _pass_on(written, report))

        def inferred(done: Future) -> None:
            try:
                output = done.result()[index]
            except BaseException as exc:  # the call itself failed: raised where the input is reported
                report.set_exception(exc)
                return
            if previous is None:
                write(output)
            else:
                previous.add_done_callback(lambda _: write(output))

        inference.add_done_callback(inferred)
        return report

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


def _pass_on(done: Future, report: Future) -> None:
    if done.cancelled():
        report.cancel()
    elif done.exception() is not None:
        report.set_exception(done.exception())
    else:
        report.set_result(done.result())
