"""run_images in batches: decode and prepare on threads, one inference call per batch, finish and
write on the same threads, reports in input order.

The unit of work is still one input: each is read, prepared, finished and written on its own and
fails alone (an undecodable file never enters a batch; a batch whose inference fails is run
again one input at a time, so only the input that cannot be run fails). The files and reports
equal those of process_image: the same stages (segmenter.prepare / run_prepared / finish, which
make up segment()), the same writers.

The main thread admits inputs in order (output clashes are decided there), keeps the next batch
decoding while it runs the current one, and hands each finished batch back to the pool to be
written. At most two batches are held decoded and a bounded number written ahead of the
reports, so memory stays flat however many inputs there are.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Optional

from . import io as sio
from .errors import SegtoolError
from .pipeline import (ImageOutputs, ItemReport, _clash, decided_before_work, done_report,
                       failed_report, load_input, planned_outputs, write_outputs)


@dataclass
class _Loaded:
    """An input read and prepared, waiting for its batch's inference."""

    item: sio.InputItem
    plan: dict
    image: object
    prepared: object
    started: float
    facts: Optional[sio.ImageFacts] = None  # what its composites keep of the photo's metadata


@dataclass
class _Slot:
    """One input's place in the report order: ``report`` resolves to its ItemReport."""

    item: sio.InputItem
    load: Optional[Future] = None  # -> _Loaded, or an ItemReport (skipped, unreadable)
    report: Optional[Future] = None


def run_batched(items, segmenter, outputs: ImageOutputs, on_item, *, jobs: int, batch_size: int
                ) -> list[ItemReport]:
    runner = _BatchRunner(segmenter, outputs, on_item, jobs, batch_size)
    try:
        return runner.run(items)
    finally:
        # Ctrl-C, SIGTERM or a stop: start nothing new, and let the items being written finish
        # (their files are written atomically) before the caller tidies up.
        runner.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _BatchRunner:
    segmenter: object
    outputs: ImageOutputs
    on_item: object
    jobs: int
    batch_size: int
    reports: list = field(default_factory=list)
    unrun: deque = field(default_factory=deque)  # admitted, loading or loaded, not yet inferred
    unreported: deque = field(default_factory=deque)  # every admitted slot, in input order
    claimed: dict = field(default_factory=dict)
    last_write: dict = field(default_factory=dict)  # input path -> its latest write job
    stopped: bool = False

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="segtool-image")

    def run(self, items) -> list[ItemReport]:
        for item in items:
            self._admit(item)
            if len(self.unrun) >= 2 * self.batch_size:  # the next batch decodes while this one runs
                self._run_batch()
            self._report_ready(limit=3 * self.batch_size + 2 * self.jobs)
            if self.stopped:
                return self._finish_after_stop()
        while self.unrun and not self.stopped:
            self._run_batch()
            self._report_ready(limit=3 * self.batch_size + 2 * self.jobs)
        self._report_ready(limit=0)
        return self._finish_after_stop() if self.stopped else self.reports

    # ---- admission and loading (input order decided here) -------------------------------

    def _admit(self, item: sio.InputItem) -> None:
        slot = _Slot(item)
        clash = _clash(item, self.outputs, self.claimed)
        if clash is not None:
            slot.report = _done(clash)
        else:
            slot.load = self.pool.submit(self._load, item)
            self.unrun.append(slot)
        self.unreported.append(slot)

    def _load(self, item: sio.InputItem):
        started = time.perf_counter()
        plan = planned_outputs(item, self.outputs)
        decided = decided_before_work(item, plan, self.outputs)
        if decided is not None:
            return decided
        try:
            image, facts = load_input(item, self.outputs)
            return _Loaded(item, plan, image, self.segmenter.prepare(image), started, facts)
        except (SegtoolError, MemoryError) as exc:
            return failed_report(item, exc, started)

    # ---- one inference call per batch ------------------------------------------------------

    def _run_batch(self) -> None:
        batch = [self.unrun.popleft() for _ in range(min(self.batch_size, len(self.unrun)))]
        loaded = []
        for slot in batch:
            result = slot.load.result()
            if isinstance(result, ItemReport):
                slot.report = _done(result)
            else:
                loaded.append((slot, result))
        for (slot, item), output in zip(loaded, self._infer([item.prepared for _, item in loaded])):
            if isinstance(output, BaseException):
                slot.report = _done(failed_report(item.item, _naming(output, item.item), item.started))
            else:
                previous = self.last_write.get(item.item.path)
                slot.report = self.pool.submit(self._write, previous, item, output)
                self.last_write[item.item.path] = slot.report
            slot.load = None  # the decoded image now lives only in the write job

    def _infer(self, prepared: list) -> list:
        """Outputs in order; where the batch cannot be run, each input alone (its error, if any)."""
        if not prepared:
            return []
        try:
            return self.segmenter.run_prepared(prepared)
        except (SegtoolError, MemoryError) as exc:
            if len(prepared) == 1:
                return [exc]
            return [self._infer_one(p) for p in prepared]

    def _infer_one(self, prepared):
        try:
            return self.segmenter.run_prepared([prepared])[0]
        except (SegtoolError, MemoryError) as exc:
            return exc

    def _write(self, previous: Optional[Future], loaded: _Loaded, output) -> ItemReport:
        # The same input listed twice writes the same files: the second waits for the first, so
        # two threads never write one temporary file. Write jobs start in submission order, so
        # the one waited for is already running.
        if previous is not None:
            wait([previous])
        try:
            result = self.segmenter.finish(output, loaded.prepared)
            write_outputs(loaded.plan, loaded.image, result, self.segmenter.labels, self.outputs, loaded.facts)
        except (SegtoolError, MemoryError) as exc:
            return failed_report(loaded.item, exc, loaded.started)
        return done_report(loaded.item, loaded.plan, result, self.segmenter.labels, self.outputs, loaded.started)

    # ---- reports, in input order ------------------------------------------------------------

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
        self.reports.append(report)
        self.stopped = self.stopped or report.stops_batch

    def _finish_after_stop(self) -> list[ItemReport]:
        """The output storage failed: inputs not yet run count as not tried; those being written
        are reported if they still succeeded (failures on the same full disk add nothing)."""
        for slot in self.unrun:
            slot.load.cancel()
        for slot in self.unreported:
            if slot.report is not None and not slot.report.cancelled():
                report = slot.report.result()
                if not report.stops_batch:
                    self._report(report)
        return self.reports


def _naming(exc: BaseException, item: sio.InputItem) -> BaseException:
    """An inference error names no input; its report line must (MemoryError's line already does)."""
    if isinstance(exc, SegtoolError) and not str(exc).startswith(str(item.path)):
        return type(exc)(f"{item.path}: {exc}")
    return exc


def _done(report: ItemReport) -> Future:
    future: Future = Future()
    future.set_result(report)
    return future
