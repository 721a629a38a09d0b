"""Execution providers, thread defaults and `segtool info`.

DirectML and CUDA cannot run here: provider selection is tested with faked provider lists, and
the fall-back onnxruntime does silently when a provider's libraries are missing is provoked by
asking the CPU-only build for CUDA.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from segtool import registry, runtime
from segtool.errors import ProviderError
from segtool_process import run_segtool, stderr_lines

CPU, CUDA, DML = "CPUExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider"


@pytest.mark.parametrize("available, expected", [
    ([CPU], [CPU]),
    ([DML, CPU], [DML, CPU]),
    ([CPU, CUDA, "AzureExecutionProvider"], [CUDA, CPU]),
    ([CUDA, DML, CPU], [CUDA, DML, CPU]),
    (["TensorrtExecutionProvider", CPU], [CPU]),
])
def test_auto_prefers_cuda_then_directml_then_cpu(available, expected):
    assert runtime.choose_providers("auto", available) == expected


@pytest.mark.parametrize("device, available, expected", [
    ("cpu", [CUDA, DML, CPU], [CPU]),
    ("cuda", [CUDA, CPU], [CUDA, CPU]),
    ("directml", [DML, CPU], [DML, CPU]),
])
def test_a_named_device_gets_its_provider_with_cpu_as_fallback(device, available, expected):
    assert runtime.choose_providers(device, available) == expected


@pytest.mark.parametrize("device, available, listed", [
    ("directml", [CPU], "available: cpu"),
    ("cuda", [DML, CPU], "available: directml, cpu"),
    ("directml", [CUDA, CPU, "AzureExecutionProvider"], "available: cuda, cpu"),
])
def test_a_missing_device_is_one_line_listing_what_is_there(device, available, listed):
    with pytest.raises(ProviderError) as raised:
        runtime.choose_providers(device, available)
    message = str(raised.value)
    assert "\n" not in message and f"device '{device}' is not available here" in message
    assert listed in message
    assert raised.value.exit_code == 2


def test_unknown_device_is_refused():
    with pytest.raises(ProviderError, match="unknown device 'tpu'"):
        runtime.choose_providers("tpu", [CPU])


def test_missing_device_on_the_command_line_exits_2_with_one_line(tmp_path, model_env):
    picture = tmp_path / "in.png"
    _write_png(picture)
    for args, env in ((["--device", "directml"], model_env), ([], {**model_env, "SEGTOOL_DEVICE": "directml"})):
        result = run_segtool(["image", picture, "-o", tmp_path / "out", *args], env)
        lines = stderr_lines(result)
        assert result.returncode == 2, lines
        assert lines == [f"segtool: device 'directml' is not available here; available: "
                         f"{', '.join(runtime.available_devices())} (pip install onnxruntime-directml, on Windows)"]


def test_cuda_that_fails_to_start_is_an_error_not_a_silent_cpu_run(monkeypatch):
    """onnxruntime drops a provider it cannot load and runs on CPU; asked for by name, that is an error."""
    preloads = []
    monkeypatch.setattr(runtime, "available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: preloads.append(1), raising=False)
    runtime._preload_cuda_libraries.cache_clear()
    model = registry.locate("selfie").path
    with pytest.warns(UserWarning), pytest.raises(ProviderError, match="could not start it"):
        runtime.InferenceSession(model, device="cuda")
    assert preloads == [1]  # the CUDA libraries were preloaded before the session was made
    with pytest.warns(UserWarning):
        session = runtime.InferenceSession(model, device="auto")  # auto may fall back
    assert session.providers == [CPU]
    runtime._preload_cuda_libraries.cache_clear()


def test_cpu_sessions_do_not_preload_cuda(monkeypatch):
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: pytest.fail("preloaded CUDA for a CPU session"),
                        raising=False)
    runtime._preload_cuda_libraries.cache_clear()
    runtime.InferenceSession(registry.locate("selfie").path, device="cpu")


@pytest.mark.parametrize("spin", [True, False])
def test_sessions_run_with_threads_and_spinning_as_asked(spin):
    session = runtime.InferenceSession(registry.locate("selfie").path, device="cpu", num_threads=1, spin=spin)
    out = session.run(np.zeros((2, 256, 256, 3), np.float32))
    assert out.shape == (2, 256, 256, 1) and session.batchable


def test_thread_defaults_share_the_physical_cores():
    cores, cpus = runtime.physical_cores(), runtime.usable_cpus()
    assert 1 <= cores <= cpus
    assert runtime.default_threads() == cores
    for jobs in (1, 2, 3, 64):
        assert runtime.default_threads(jobs) >= 1
        assert runtime.default_threads(jobs) * jobs <= max(cores, jobs)
    assert runtime.default_jobs() >= 2


@pytest.mark.parametrize("text, expected", [
    ("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1), ("400000 100000", 4), ("junk", None),
])
def test_container_cpu_quota_is_read_from_cgroup(tmp_path, text, expected):
    (tmp_path / "cpu.max").write_text(text)
    assert runtime._cgroup_cpu_quota(tmp_path / "cpu.max") == expected
    assert runtime._cgroup_cpu_quota(tmp_path / "absent") is None


def test_info_prints_versions_providers_and_models(model_env):
    result = run_segtool(["info"], model_env)
    text = result.stdout.decode()
    assert result.returncode == 0, stderr_lines(result)
    assert f"onnxruntime  {ort.__version__}" in text
    assert "CPUExecutionProvider" in text and "auto picks   cpu" in text
    assert "threads" in text
    for name in registry.load_manifest():
        assert f"model        {name}" in text
    assert "selfie.onnx" in text  # bundled models show where they are


def test_prelu_rewrite_is_bit_exact():
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from segtool.convert.fast_graph import decompose_prelu

    slope = np.array([-1.5, 0.0, 0.25, 1.7], np.float32).reshape(1, 4, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(slope, "slope")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).normal(size=(1, 4, 8, 8)).astype(np.float32) * 100
    x[0, :, 0, :3] = [0.0, -0.0, 1e-40]  # zeros and a denormal
    before = _run(model, x)
    assert decompose_prelu(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    assert np.array_equal(_run(model, x), before)
    assert np.array_equal(before, np.where(x > 0, x, x * slope))


def test_blocked_prelu_rewrite_is_bit_exact():
    """The NCHWc-friendly form (PRelu after a Conv, a residual Add, a W/H-swapped branch)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from segtool.convert.fast_graph import decompose_prelu

    rng = np.random.default_rng(1)
    c = 8
    weights = {
        "w1": rng.normal(size=(c, 4, 3, 3)), "b1": rng.normal(size=c),
        "w2": rng.normal(size=(c, c, 1, 1)), "b2": rng.normal(size=c),
        "w3": rng.normal(size=(c, c, 1, 1)), "b3": rng.normal(size=c),
        "a1": rng.uniform(-1.6, 1.7, size=(1, c, 1, 1)), "a2": rng.uniform(-1.6, 1.7, size=(1, c, 1, 1)),
        "a3": rng.uniform(-1.6, 1.7, size=(1, c, 1, 1)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c1", "a1"], ["p1"]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c2", "p1"], ["s2"]),  # residual: must not fuse into the Conv
        helper.make_node("PRelu", ["s2", "a2"], ["p2"]),
        helper.make_node("Transpose", ["p2"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Transpose", ["t"], ["u"], perm=[0, 1, 3, 2]),
        helper.make_node("Conv", ["u", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "u"], ["s3"]),
        helper.make_node("PRelu", ["s3", "a3"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, c, 16, 16])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(1, 4, 16, 16)).astype(np.float32) * 10
    before = _run(model, x)
    assert decompose_prelu(model) == 3
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "PRelu" not in ops and ops.count("BatchNormalization") == 6 and ops.count("Clip") == 2
    assert np.array_equal(_run(model, x), before)


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=[CPU])
    return session.run(None, {"x": x})[0]


def _write_png(path):
    from PIL import Image

    Image.fromarray(np.full((32, 48, 3), 120, np.uint8)).save(path)


def test_freed_memory_is_kept_for_reuse_unless_turned_off(monkeypatch):
    import platform

    keep = runtime.keep_freed_memory.__wrapped__  # uncached: the cached call already ran
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep() is True
    monkeypatch.setenv("SEGTOOL_KEEP_FREED_MEMORY", "0")
    assert keep() is False
