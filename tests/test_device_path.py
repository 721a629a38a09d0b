"""The device graph (segtool.gpu_graph), run here with onnxruntime's CPU provider.

CUDA picks it automatically; on this machine SEGTOOL_PATH=device-graph forces it, so CI checks
the very graph a GPU runs against the exact path: category agreement >= 99.99% of pixels and
confidences within 1e-3 on the parity images, every model (hair included when installed).
Which path runs, and why, is a choice tested on provider lists.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segtool import ImageProcessingOptions, ImageSegmenter, ImageSegmenterOptions
from segtool.errors import ProviderError
from segtool.runtime import choose_path, default_batch_size
from segtool_process import needs_model, run_segtool, snapshot, stderr_lines
from test_parity import load_image

MODELS = ("selfie", "selfie_landscape", "deeplab", "hair")
PARITY_IMAGES = ("astronaut", "coffee", "chelsea", "grace_hopper")
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]
CPU = ["CPUExecutionProvider"]


def _segmenter(model, path, monkeypatch, **options):
    needs_model(model)
    monkeypatch.setenv("SEGTOOL_PATH", path)
    options.setdefault("output_category_mask", True)
    return ImageSegmenter.create_from_options(ImageSegmenterOptions(model=model, device="cpu", **options))


@pytest.mark.parametrize("model", MODELS)
def test_device_graph_agrees_with_the_exact_path(model, monkeypatch):
    images = [load_image(name) for name in PARITY_IMAGES]
    images.append(np.ascontiguousarray(images[0][::3, ::2]))  # a non-square size that needs both resamplings
    images.append(np.ascontiguousarray(np.roll(images[1], 97, axis=1)))  # coffee's size again: one call for two
    with _segmenter(model, "exact", monkeypatch) as exact:
        expected = exact.segment_batch(images)
    with _segmenter(model, "device-graph", monkeypatch) as graph:
        assert graph.path.device_graph
        got = graph.segment_batch(images)
        alone = [graph.segment(image) for image in images[:2]]
    for image, want, have in zip(images, expected, got):
        assert have.category_mask.shape == image.shape[:2] and have.category_mask.dtype == np.uint8
        assert have.confidence_masks.shape == want.confidence_masks.shape
        assert have.confidence_masks.dtype == np.float32
        assert np.mean(have.category_mask == want.category_mask) >= 0.9999
        assert np.abs(have.confidence_masks - want.confidence_masks).max() <= 1e-3
    for one, batched in zip(alone, got):  # a batch of one size-group equals single calls
        assert np.array_equal(one.category_mask, batched.category_mask)
        assert np.allclose(one.confidence_masks, batched.confidence_masks, atol=1e-6)


@pytest.mark.parametrize("confidence, category", [(False, True), (True, False)])
def test_the_graph_computes_only_what_was_asked(confidence, category, monkeypatch):
    image = load_image("astronaut")
    with _segmenter("deeplab", "device-graph", monkeypatch, output_confidence_masks=confidence,
                    output_category_mask=category) as graph:
        outputs = [o.name for o in graph._device_graph._session._session.get_outputs()]
        result = graph.segment(image)
    assert outputs == (["confidence"] if confidence else []) + (["category"] if category else [])
    assert (result.confidence_masks is not None) == confidence
    assert (result.category_mask is not None) == category


def test_rotated_images_take_the_exact_path(monkeypatch):
    image = load_image("coffee")
    turn = ImageProcessingOptions(rotation_degrees=90)
    with _segmenter("selfie", "exact", monkeypatch) as exact:
        expected = exact.segment(image, turn)
    with _segmenter("selfie", "device-graph", monkeypatch) as graph:
        got = graph.segment(image, turn)
    assert np.array_equal(expected.category_mask, got.category_mask)
    assert np.array_equal(expected.confidence_masks, got.confidence_masks)


# ---- which path, and why ----------------------------------------------------------------------

def test_cuda_picks_the_device_graph_and_the_cpu_keeps_the_exact_path(monkeypatch):
    monkeypatch.delenv("SEGTOOL_PATH", raising=False)
    on_cuda = choose_path(CUDA, graph_buildable=True)
    assert on_cuda.device_graph and "GPU" in on_cuda.reason
    on_cpu = choose_path(CPU, graph_buildable=True)
    assert on_cpu.name == "exact" and "exact" in on_cpu.reason and "CUDA only" in on_cpu.reason
    assert choose_path(["DmlExecutionProvider", *CPU], graph_buildable=True).name == "exact"
    no_onnx = choose_path(CUDA, graph_buildable=False)
    assert no_onnx.name == "exact" and "pip install onnx" in no_onnx.reason
    assert choose_path(CUDA, image_mode=False, graph_buildable=True).name == "exact"
    assert default_batch_size(on_cuda, CUDA) == 16 and default_batch_size(on_cpu, CPU) == 1


def test_segtool_path_overrides_the_choice(monkeypatch):
    monkeypatch.setenv("SEGTOOL_PATH", "exact")
    assert choose_path(CUDA, graph_buildable=True).name == "exact"
    monkeypatch.setenv("SEGTOOL_PATH", "device-graph")
    assert choose_path(CPU, graph_buildable=True).device_graph
    with pytest.raises(ProviderError, match="onnx"):
        choose_path(CPU, graph_buildable=False)
    monkeypatch.setenv("SEGTOOL_PATH", "fast")
    with pytest.raises(ProviderError, match="SEGTOOL_PATH=fast"):
        choose_path(CPU)


def test_info_and_verbose_say_which_path_runs(tmp_path, model_env):
    model_env.pop("SEGTOOL_PATH", None)
    info = run_segtool(["info"], model_env).stdout.decode()
    assert "auto path    exact: CPU runs MediaPipe's exact CPU computation" in info
    assert "batch size   1 per inference call" in info
    picture = tmp_path / "a.png"
    Image.fromarray(load_image("astronaut")).save(picture)
    plain = run_segtool(["image", picture, "-o", tmp_path / "out", "-v"], model_env)
    assert not any(" path: " in line for line in stderr_lines(plain))  # the CPU's routine choice: -v as before
    forced = run_segtool(["image", picture, "-o", tmp_path / "out", "-v"], dict(model_env, SEGTOOL_PATH="exact"))
    assert any("CPUExecutionProvider, exact path: asked for (SEGTOOL_PATH=exact)" in line and "batch size 1" in line
               for line in stderr_lines(forced)), stderr_lines(forced)


def test_cli_on_the_device_graph_in_batches(tmp_path, model_env):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(PARITY_IMAGES[:3]):
        Image.fromarray(load_image(name)).save(folder / f"{i}.png")
    (folder / "1b.jpg").write_bytes(b"not a picture")
    runs = {}
    for path in ("exact", "device-graph"):
        env = dict(model_env, SEGTOOL_PATH=path)
        result = run_segtool(["image", folder, "-o", tmp_path / path, "--category-mask", "--no-confidence-masks",
                              "-b", "3", "-j", "2", "--json", "-v"], env)
        assert result.returncode == 1, stderr_lines(result)
        assert any(f"{path} path" in line for line in stderr_lines(result))
        runs[path] = (snapshot(tmp_path / path), [json.loads(line)["ok"] for line in result.stdout.splitlines()])
    (exact_files, exact_ok), (graph_files, graph_ok) = runs["exact"], runs["device-graph"]
    assert exact_ok == graph_ok == [True, True, False, True]
    assert sorted(exact_files) == sorted(graph_files) == [f"{i}.category.png" for i in range(3)]
    for name in exact_files:
        a, b = (np.asarray(Image.open(tmp_path / p / name)) for p in ("exact", "device-graph"))
        assert np.mean(a == b) >= 0.9999
