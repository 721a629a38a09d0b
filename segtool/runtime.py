"""onnxruntime sessions and the choice of execution provider."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnxruntime as ort

from .errors import ModelError, ProviderError

# Order matters: `auto` takes the first one onnxruntime offers.
DEVICE_PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def choose_providers(device: str = "auto", available: Optional[Sequence[str]] = None) -> list[str]:
    """Providers for a session, best first; CPU always closes the list as the fallback."""
    available = list(available_providers() if available is None else available)
    if device == "auto":
        wanted = [p for p in DEVICE_PROVIDERS.values() if p in available]
    elif device in DEVICE_PROVIDERS:
        provider = DEVICE_PROVIDERS[device]
        if provider not in available:
            offered = ", ".join(n for n, p in DEVICE_PROVIDERS.items() if p in available)
            hint = " (pip install 'segtool[gpu]' for CUDA)" if device == "cuda" else ""
            raise ProviderError(f"device '{device}' is not available here; available: {offered}{hint}")
        wanted = [provider]
    else:
        raise ProviderError(f"unknown device '{device}': choose auto, cpu, cuda or directml")
    if DEVICE_PROVIDERS["cpu"] not in wanted:
        wanted.append(DEVICE_PROVIDERS["cpu"])
    return wanted


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class InferenceSession:
    """One ONNX model loaded for inference; takes and returns NHWC float32 batches."""

    def __init__(self, model_path: Path, *, device: str = "auto", num_threads: Optional[int] = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = choose_providers(device)
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"{model_path}: onnxruntime cannot load this model ({_first_line(exc)})") from exc
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
        return self._session.run([self._output_name], {self._input_name: batch})[0]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
