"""onnxruntime sessions, the choice of execution provider, and how many threads to use."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import onnxruntime as ort

from .errors import ModelError, ProviderError, first_line

# Order matters: `auto` takes the first one onnxruntime offers.
DEVICE_PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_INSTALL_HINTS = {
    "cuda": " (needs an NVIDIA GPU and onnxruntime-gpu in place of onnxruntime)",
    "directml": " (pip install onnxruntime-directml, on Windows)",
}


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def available_devices(available: Optional[Sequence[str]] = None) -> list[str]:
    """The --device names onnxruntime can serve here, best first."""
    available = available_providers() if available is None else available
    return [name for name, provider in DEVICE_PROVIDERS.items() if provider in available]


# TF32 convolutions (CUDA's default on Ampere and later) move confidences by up to 5e-2:
# masks must match the CPU's and MediaPipe's, so CUDA runs in full float32.
PROVIDER_OPTIONS = {"CUDAExecutionProvider": {"use_tf32": "0"}}


def _with_options(provider: str):
    return (provider, PROVIDER_OPTIONS[provider]) if provider in PROVIDER_OPTIONS else provider


def choose_providers(device: str = "auto", available: Optional[Sequence[str]] = None) -> list[str]:
    """Providers for a session, best first; CPU always closes the list as the fallback."""
    available = list(available_providers() if available is None else available)
    if device == "auto":
        wanted = [p for p in DEVICE_PROVIDERS.values() if p in available]
    elif device in DEVICE_PROVIDERS:
        if DEVICE_PROVIDERS[device] not in available:
            raise ProviderError(f"device '{device}' is not available here; available: "
                                f"{', '.join(available_devices(available))}{_INSTALL_HINTS.get(device, '')}")
        wanted = [DEVICE_PROVIDERS[device]]
    else:
        raise ProviderError(f"unknown device '{device}': choose auto, cpu, cuda or directml")
    if DEVICE_PROVIDERS["cpu"] not in wanted:
        wanted.append(DEVICE_PROVIDERS["cpu"])
    return wanted


# ---- which computation runs around the network ---------------------------------------------

PATH_ENV = "SEGTOOL_PATH"
PATHS = ("auto", "exact", "device-graph")
DEFAULT_CUDA_BATCH = 16  # images per inference call on CUDA: past 8-16 the H200's selfie rate flattens


@dataclass(frozen=True)
class ExecutionPath:
    """``exact``: MediaPipe's CPU computation around the network (preprocess.py, postprocess.py).

    ``device-graph``: normalisation, upsampling and the argmax inside one ONNX graph with the
    network (segtool.gpu_graph), run by the session's provider. ``reason`` says why, for a person.
    """

    name: str
    reason: str
    routine: bool = False  # the CPU's own exact path, chosen by auto: nothing a user needs told

    @property
    def device_graph(self) -> bool:
        return self.name == "device-graph"


def choose_path(providers: Sequence[str], *, image_mode: bool = True, requested: Optional[str] = None,
                graph_buildable: Optional[bool] = None) -> ExecutionPath:
    """The path for a session on ``providers``: the device graph on CUDA, the exact path elsewhere.

    ``requested`` (default: $SEGTOOL_PATH, else auto) forces one; VIDEO and LIVE_STREAM keep the
    exact path (the hair network's feedback channel is computed there).
    """
    requested = requested or os.environ.get(PATH_ENV, "auto") or "auto"
    if requested not in PATHS:
        raise ProviderError(f"{PATH_ENV}={requested}: choose one of {', '.join(PATHS)}")
    if requested == "exact":
        return ExecutionPath("exact", f"asked for ({PATH_ENV}=exact)")
    if not image_mode:
        return ExecutionPath("exact", "video and live streams run the exact path")
    if requested == "auto" and providers[0] != DEVICE_PROVIDERS["cuda"]:
        return ExecutionPath("exact", f"{_short(providers[0])} runs MediaPipe's exact CPU computation "
                                      "(the device graph is picked for CUDA only)",
                             routine=providers[0] == DEVICE_PROVIDERS["cpu"])
    # Only a run that may take the device graph imports onnx to see whether it is there: the
    # import costs 0.3-0.6 s, which the CPU path must not pay (the device graph needs it anyway).
    if graph_buildable is None:
        from .gpu_graph import onnx_available

        graph_buildable = onnx_available()
    if requested == "device-graph":
        if not graph_buildable:
            raise ProviderError(f"{PATH_ENV}=device-graph needs the onnx package (pip install onnx)")
        return ExecutionPath("device-graph", f"asked for ({PATH_ENV}=device-graph)")
    if not graph_buildable:
        return ExecutionPath("exact", "CUDA, but the onnx package that builds the device graph is missing "
                                      "(pip install onnx, or segtool[gpu])")
    return ExecutionPath("device-graph", "CUDA: normalisation, upsampling and argmax run on the GPU with the network")


def _short(provider: str) -> str:
    return provider.replace("ExecutionProvider", "")


def default_batch_size(path: ExecutionPath, providers: Sequence[str]) -> int:
    """Images per inference call in `segtool image`: batches pay on CUDA, not on CPU (BENCHMARKS.md)."""
    return DEFAULT_CUDA_BATCH if providers[0] == DEVICE_PROVIDERS["cuda"] else 1


def concurrent_runs(providers: Sequence[str]) -> int:
    """Inference calls `segtool image` keeps in flight at once. On CUDA one call's copies and the
    nodes onnxruntime places on the CPU leave the GPU idle, and a second call fills it (H200:
    hair 392 -> 712 images/s, BENCHMARKS.md). Elsewhere one: the CPU provider already uses every
    core, and DirectML's Run may not be called from two threads at once."""
    return 2 if providers[0] == DEVICE_PROVIDERS["cuda"] else 1


# ---- threads --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container's CPU quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota) if quota else count)


def _cgroup_cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> Optional[int]:
    # cgroup v2 "max 100000" (no limit) or "150000 100000" (1.5 CPUs); rounded up.
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores among the usable CPUs: SMT siblings share one core's arithmetic units."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology / "physical_package_id").read_text().strip() + ":" +
                      (topology / "core_id").read_text().strip())
        except OSError:
            cores.add(str(cpu))  # no topology (not Linux, or hidden): count logical CPUs
    return max(1, min(len(cores), usable_cpus()))


def default_threads(jobs: int = 1) -> int:
    """onnxruntime intra-op threads: the physical cores shared out among ``jobs`` concurrent runs.

    One run at a time (the API, video) gets every core, as onnxruntime itself would choose:
    measured on 2 idle cores, 2 spinning threads beat 1 on every model (selfie 1.2 vs 1.8 ms,
    hair 11.5 vs 15.5, DeepLab 8.0 vs 10.3). `segtool image` keeps several images in flight,
    and each inference then does best on its own core.
    """
    return max(1, physical_cores() // max(1, jobs))


def default_jobs() -> int:
    """Images in flight in `segtool image`: one per CPU, at least 2 so decode/encode overlap inference."""
    return max(2, usable_cpus())


# ---- memory ---------------------------------------------------------------------------------

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse instead of handing them back to the system.

    Each image allocates and frees arrays of megabytes (tensor, masks, composites). By default
    glibc maps those afresh and unmaps them on free, so every call pays a page fault per 4 KiB
    touched: on the 2-core VM of BENCHMARKS.md that was half of hair's segment() (8 of 16 ms
    for the 4 MB input tensor) and 12% of `segtool image`'s throughput. Blocks up to 32 MiB
    (glibc's ceiling) now come from the heap, whose free top is kept up to 1 GiB. The process
    keeps its peak memory instead of returning it between images. glibc only; no-op elsewhere,
    or with SEGTOOL_KEEP_FREED_MEMORY=0.
    """
    if os.environ.get("SEGTOOL_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False


# ---- sessions -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* wheels before the first CUDA session (onnxruntime-gpu >= 1.21).

    Without it the CUDA provider finds those libraries only through LD_LIBRARY_PATH; a provider
    that fails to load makes onnxruntime fall back to CPU silently, which InferenceSession
    turns into an error when CUDA was asked for.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


class InferenceSession:
    """One ONNX model loaded for inference; takes and returns NHWC float32 batches.

    ``spin``: let onnxruntime's idle threads busy-wait for the next run. That shaves a little
    latency off back-to-back runs, but steals CPU from threads decoding and encoding beside it.
    """

    def __init__(self, model_path: Union[Path, bytes], *, device: str = "auto", num_threads: Optional[int] = None,
                 spin: bool = True, name: Optional[str] = None):
        providers = choose_providers(device)
        keep_freed_memory()  # per-image arrays get reused instead of page-faulted in every call
        if DEVICE_PROVIDERS["cuda"] in providers:
            _preload_cuda_libraries()
        try:
            threads = num_threads or default_threads()
            source = model_path if isinstance(model_path, bytes) else str(model_path)
            self._session = ort.InferenceSession(source, _session_options(threads, spin),
                                                 providers=[_with_options(p) for p in providers])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{name or model_path}: onnxruntime cannot load this model ({first_line(exc)})") from exc
        _check_provider_started(device, self._session.get_providers())
        first_input = self._session.get_inputs()[0]
        self._input_name = first_input.name
        self._output_name = self._session.get_outputs()[0].name
        self.input_shape = tuple(first_input.shape)

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    @property
    def batchable(self) -> bool:
        return not isinstance(self.input_shape[0], int) or self.input_shape[0] != 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._run([self._output_name], {self._input_name: batch}, len(batch))[0]

    def run_all(self, feeds: dict) -> dict:
        """Every output by name, for graphs of several inputs and outputs (the device graph)."""
        names = [output.name for output in self._session.get_outputs()]
        return dict(zip(names, self._run(names, feeds, len(next(iter(feeds.values()))))))

    def _run(self, names: list, feeds: dict, images: int) -> list:
        try:
            return self._session.run(names, feeds)
        except MemoryError:
            raise
        except Exception as exc:  # onnxruntime's untyped errors: mostly a failed allocation on the device
            hint = "; a smaller --batch-size needs less device memory" if images > 1 else ""
            raise ProviderError(f"{self.providers[0]} could not run {images} image(s): {first_line(exc)}{hint}") from exc


def _session_options(num_threads: int, spin: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1  # these graphs are chains: nothing runs side by side
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _check_provider_started(device: str, active: Sequence[str]) -> None:
    """onnxruntime drops a provider whose libraries fail to load; asked for by name, that is an error."""
    wanted = DEVICE_PROVIDERS.get(device)
    if device not in ("auto", "cpu") and wanted not in active:
        raise ProviderError(f"device '{device}': onnxruntime offers {wanted} but could not start it "
                            f"(its libraries failed to load; `segtool info` lists what is installed)")
