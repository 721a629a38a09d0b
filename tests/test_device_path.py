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


def _old_graph(built: bytes) -> bytes:
    """``built`` as the graph was before p alone came back: (1 - p, p) made on the device (Sub, Concat)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(built)
    for node in model.graph.node:
        node.output[:] = ["old_p" if name == "confidence" else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.asarray([1], np.float32), "old_one"))
    model.graph.node.extend([helper.make_node("Sub", ["old_one", "old_p"], ["old_background"]),
                             helper.make_node("Concat", ["old_background", "old_p"], ["confidence"], axis=1)])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2
    return model.SerializeToString()


@pytest.mark.parametrize("model", ("selfie", "selfie_landscape"))
def test_one_channel_models_download_p_alone(model):
    """The device sends back p alone (half the bytes); DeviceGraph.run makes (1 - p, p) on the host,
    bit for bit what the graph's Sub and Concat made on the device before."""
    import onnx

    from segtool import gpu_graph, registry
    from segtool.preprocess import resample_to_model
    from segtool.runtime import InferenceSession

    needs_model(model)
    resolved, wanted = registry.locate(model), gpu_graph.GraphOutputs(confidence=True, category=True)
    built = gpu_graph.build(resolved.path, resolved.spec, wanted)
    declared = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
                for o in onnx.load_from_string(built).graph.output}
    assert declared == {"confidence": ["batch", 1, "H", "W"], "category": ["batch", "H", "W"]}

    image = load_image("coffee")
    images = [image, np.ascontiguousarray(np.roll(image, 97, axis=1))]
    pixels = [resample_to_model(i, resolved.spec.input_size, input_channels=resolved.spec.input_channels)
              for i in images]
    size = image.shape[:2]
    session = InferenceSession(built, device="cpu", num_threads=1)
    graph = gpu_graph.DeviceGraph(session, wanted)
    raw = session.run_all({"segtool_pixels": np.stack(pixels), "segtool_size": np.asarray(size, np.int64)})
    assert raw["confidence"].shape == (2, 1, *size) and raw["confidence"].dtype == np.float32
    old = InferenceSession(_old_graph(built), device="cpu", num_threads=1).run_all(
        {"segtool_pixels": np.stack(pixels), "segtool_size": np.asarray(size, np.int64)})
    assert old["confidence"].shape == (2, 2, *size)

    got = graph.run(pixels, size)
    assert len(got) == 2
    for i, (masks, category) in enumerate(got):
        assert masks.shape == (2, *size) and masks.dtype == np.float32 and masks.flags.c_contiguous
        assert np.array_equal(masks[1], raw["confidence"][i, 0])
        assert np.array_equal(masks[0], np.float32(1) - masks[1])  # bit for bit, as the device's Sub
        assert np.array_equal(masks, old["confidence"][i])
        assert np.array_equal(category, old["category"][i])
        assert not np.shares_memory(masks, raw["confidence"])
    assert not np.shares_memory(got[0][0], got[1][0])  # one image's masks do not keep the batch's alive
    alone, = graph.run(pixels[:1], size)  # a batch of one: the same masks
    assert np.array_equal(alone[0], got[0][0])


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
