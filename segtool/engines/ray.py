"""The Ray engine: a driver here, and actors on a Ray cluster that run the local engine.

The driver (this module, in the `segtool` process) claims each input's outputs (two inputs
that would write one file: the second fails) and settles it with outputs.settle, the same call
the unit of work makes, so that done inputs (--skip-existing, from one listing per output
prefix) and refused ones never travel. The rest becomes a Ray dataset of inputs (their names
only: each actor reads its own inputs from shared storage, nothing decoded travels through
Ray), mapped by a pool of actors that each load the model once and run engines.local over
their share, in batches of --batch-size. Inputs go out in chunks of CHUNK (one Ray Data job
each) and reports come back as a stream: the driver holds one chunk of inputs' names and 16
bytes a claim (outputs.Claims), never a list of all inputs or a result per input.

Fault tolerance is Ray's: a dead actor is restarted and its batch retried (Ray Data's actor
pools retry by default); every output is written atomically or uploaded whole, so a retried
input rewrites whole files and no reader ever sees half of one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
import tempfile
from dataclasses import replace
from typing import Callable, Iterable, Iterator, Optional

from ..errors import ClusterError, SegtoolError
from ..options import ImageSegmenterOptions
from ..job import FILES
from ..outputs import Claims, ImageOutputs, InputSet, ItemReport

# Settings a worker must see as the driver does: where models are installed.
FORWARDED_ENV = ("SEGTOOL_BUNDLED_DIR", "SEGTOOL_MODELS_DIR")
MAX_BATCH = 8  # inputs per Ray task: small enough that a retried batch redoes little
# Inputs per Ray Data job: the driver holds one chunk's names (about 2 KB each), and each job
# starts its actors anew (a model load each, negligible against thousands of inputs).
CHUNK = 4096
PER_ACTOR = 256  # ... and at least this many inputs per actor, so that starting them stays a small share
# Inputs per Ray task when writing dataset shards: one shard each (an actor has no end-of-job hook).
DATASET_TASK = 512
ACTORS_START_S = 600  # how long a dataset job waits for its actors to start (a model load each)


def run_on_ray(items: Iterable, options: ImageSegmenterOptions, outputs: ImageOutputs,
               on_item: Callable[[ItemReport], None], *, jobs: Optional[int] = None,
               batch_size: Optional[int] = None, address: Optional[str] = None) -> None:
    """Process every input on the Ray cluster; each report goes to ``on_item`` as it arrives.

    ``jobs``: actors (default: as many as the cluster's CPUs, or GPUs for --device cuda, hold);
    ``options.num_threads``: onnxruntime threads per actor, and the CPUs each asks Ray for;
    ``batch_size``: images per inference call in each actor (default: the device's, as locally).
    """
    ray = _import_ray()
    with _ray_notes_aside() as notes:
        try:
            _connect(ray, address)
            # Actors get no list of the run's inputs: the driver has settled against it already.
            for_actors = replace(outputs, protected=InputSet())
            # A chunk is one Ray Data job, whose actors start anew: big clusters get bigger chunks.
            gpus = 1 if options.device == "cuda" else 0
            chunk = max(CHUNK, PER_ACTOR * (jobs or _actors_that_fit(ray, options.num_threads or 1, gpus)))
            for todo in _to_run(items, outputs, on_item, _settling_target(outputs, options), chunk):
                if _run(ray, todo, options, for_actors, on_item, jobs, batch_size):
                    break  # the output storage is full or read-only: the rest would fail too
        except ClusterError as exc:
            notes.keep = True
            raise ClusterError(f"{exc}{notes.hint()}") from exc
        finally:
            ray.shutdown()


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ClusterError("--engine ray needs Ray Data: pip install 'segtool[ray]'") from exc
    return ray


class _Notes:
    def __init__(self, path: str):
        self.path = path
        self.keep = False

    def hint(self) -> str:
        with open(self.path, errors="replace") as stream:
            refused = "InvalidAuthToken" in stream.read()
        if refused:
            return (" (the cluster refused this token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                    "to the cluster's, see `ray get-auth-token`)")
        return f" (Ray's own messages: {self.path})"


@contextlib.contextmanager
def _ray_notes_aside() -> Iterator[_Notes]:
    """Send what Ray's C++ core writes to file descriptor 2 into a file; keep sys.stderr real.

    The core logs notes straight to the descriptor (an actor with restarts, a worker that died
    and was replaced): lines that would sit among segtool's one line per failed input. The
    file is removed after a run that went well and named in the error of one that did not.
    """
    sys.stderr.flush()
    fd, path = tempfile.mkstemp(prefix="segtool-ray-", suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    previous = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=previous.encoding,
                           errors=previous.errors)
    notes = _Notes(path)
    try:
        yield notes
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        ours, sys.stderr = sys.stderr, previous  # swapped before closing: a progress bar's
        ours.close()                              # refresh thread may be writing to stderr
        if not notes.keep:
            os.unlink(path)


def _connect(ray, address: Optional[str]) -> None:
    """Connect as Ray's own tools do: --ray-address, else RAY_ADDRESS, else a cluster that
    `ray start` started on this machine, else a new local instance."""
    where = address or os.environ.get("RAY_ADDRESS") or "this machine"
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 runtime_env={"env_vars": env} if env else None)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError, ...
        raise ClusterError(f"cannot connect to Ray at {where}: {_gist(exc)}") from exc
    _quiet(ray)


def _quiet(ray) -> None:
    """Keep stdout and stderr for segtool's own lines: no Ray Data progress bars, INFO lines,
    or the driver's copies of cluster events ("(raylet) A worker died ...").

    Those go to the notes file instead (fd 2, see _ray_notes_aside); Ray Data's own log file
    in the session folder (logs/ray-data/) still gets everything.
    """
    from ray._private import worker

    if hasattr(worker, "print_to_stdstream"):  # Ray prints cluster events to sys.stdout
        notes = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
        worker.print_to_stdstream = lambda data, ignore_prefix: worker.print_worker_logs(
            data, notes, ignore_prefix)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # segtool draws its own, on a terminal only
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):  # the console; its files are other handlers
            handler.setLevel(logging.ERROR)


def _settling_target(outputs: ImageOutputs, options: ImageSegmenterOptions):
    """What the driver settles by: each input's files, or the dataset shards' index (it writes none)."""
    if not outputs.dataset:
        return FILES
    from ..datasets.target import Shards

    return Shards(outputs, str(options.model), writing=False)


def _to_run(items: Iterable, outputs: ImageOutputs, on_item, target, chunk: int) -> Iterator[list[bytes]]:
    """The inputs that need work, pickled, ``chunk`` at a time (the driver holds one chunk, never
    the whole list); clashes, done and refused inputs are reported here, by the calls the local
    engine makes."""
    todo, claims = [], Claims(outputs.protected)
    for item in items:
        plan = target.plan(item, outputs)
        settled = claims.claim(item, plan) or target.settle(item, plan, outputs)
        if settled is not None:
            on_item(settled)
            continue
        todo.append(pickle.dumps(item))
        if len(todo) >= chunk:
            yield todo
            todo = []
    if todo:
        yield todo


def _run(ray, todo: list[bytes], options: ImageSegmenterOptions, outputs: ImageOutputs,
         on_item, jobs: Optional[int], batch_size: Optional[int]) -> bool:
    """One Ray Data job over ``todo``; True when the output storage stopped it."""
    threads = options.num_threads or 1
    gpus = 1 if options.device == "cuda" else 0
    fit = _actors_that_fit(ray, threads, gpus)
    actors = jobs or fit
    # Inputs per Ray task: at least one inference batch; small enough that a retry redoes little.
    batch = max(batch_size or 1, min(MAX_BATCH, len(todo) // (4 * actors)), 1)
    context = ray.data.DataContext.get_current()
    waited = context.wait_for_min_actors_s  # the caller's setting comes back after this job
    if outputs.dataset:
        # An actor finishes its shard at the end of each task, so tasks are larger and few. They
        # are handed out once every actor is up, one at a time per actor: otherwise the first
        # actor up queues them all while the others start, and does the whole job alone.
        batch = max(batch, min(DATASET_TASK, -(-len(todo) // actors)))
        context.wait_for_min_actors_s = ACTORS_START_S
    try:
        # One block per task: a Ray task returns its rows when its block is done, so blocks of a
        # task each keep reports (and the progress bar) flowing, and a retry redoes one task.
        dataset = ray.data.from_items([{"item": item} for item in todo],
                                      override_num_blocks=-(-len(todo) // batch))
        reports = dataset.map_batches(
            SegmentBatch, fn_constructor_args=(options, outputs, batch_size, os.getcwd()),
            batch_size=batch, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=min(actors, fit), max_size=actors,
                                               max_tasks_in_flight_per_actor=1 if outputs.dataset else None),
            num_cpus=threads, num_gpus=gpus or None,
        )
        return _stream_reports(reports, on_item)
    finally:
        context.wait_for_min_actors_s = waited


def _stream_reports(reports, on_item) -> bool:
    """Each report to ``on_item`` as its task finishes; True when the output storage stopped the job."""
    try:
        for row in reports.iter_rows():
            report = pickle.loads(row["report"])
            on_item(report)
            if report.stops_batch:
                return True
    except SegtoolError:
        raise
    except Exception as exc:  # RayTaskError, RayActorError, ...: the job itself failed
        raise ClusterError(f"the Ray job failed: {_gist(exc)}") from exc
    return False


def _actors_that_fit(ray, threads: int, gpus: int) -> int:
    """How many actors the cluster's live nodes hold: CPUs over threads each, or GPUs.

    None is a ClusterError, not a job that waits for ever for a node that is not there.
    """
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if gpus:
        fit = sum(int(node.get("GPU", 0)) for node in nodes if node.get("CPU", 0) >= threads)
        need = f"a GPU and {threads} CPU(s) (--device cuda, --threads)"
    else:
        fit = sum(int(node.get("CPU", 0) // threads) for node in nodes)
        need = f"{threads} CPU(s) (--threads)"
    if fit < 1:
        raise ClusterError(f"no node of the Ray cluster has {need} for an actor")
    return fit


class SegmentBatch:
    """A Ray Data actor: the model loaded once, then the local engine over each batch of inputs."""

    def __init__(self, options: ImageSegmenterOptions, outputs: ImageOutputs, batch_size: Optional[int],
                 cwd: str):
        from ..segmenter import ImageSegmenter

        # Relative input and output names mean what they meant where segtool was started
        # (Ray starts workers in a folder of its own); on a node without that folder they
        # fail as missing files, each naming its input.
        with contextlib.suppress(OSError):
            os.chdir(cwd)
        self._segmenter = ImageSegmenter.create_from_options(options)
        self._outputs = outputs
        self._batch_size = batch_size or self._segmenter.default_batch_size
        self._target = _writing_target(outputs, options)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from .local import run_images

        reports: list[ItemReport] = []
        run_images((pickle.loads(item) for item in batch["item"]), self._segmenter, self._outputs,
                   reports.append, batch_size=self._batch_size, target=self._target)
        if self._target is not FILES:
            self._target.flush()  # the task's records are in a complete shard before it reports them
        return {"report": np.array([pickle.dumps(report) for report in reports], dtype=object)}


def _writing_target(outputs: ImageOutputs, options: ImageSegmenterOptions):
    if not outputs.dataset:
        return FILES
    from ..datasets.target import Shards

    return Shards(replace(outputs, skip_existing=False), str(options.model))  # the driver settled them


def _gist(exc: BaseException) -> str:
    # Ray's errors are many lines (a remote traceback); the reason is the last one.
    text = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return text[-1] if text else type(exc).__name__
