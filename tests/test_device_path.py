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


@pytest.mark.parametrize("model, classes", [("selfie", (1,)), ("deeplab", tuple(range(1, 21))), ("deeplab", (15, 15, 9))])
@pytest.mark.parametrize("path", ["exact", "device-graph"])
def test_the_subject_alpha_is_the_composites_sum_without_the_masks(model, classes, path, monkeypatch):
    """What composites add up, asked for on its own: the graph sums on the device and sends back
    one mask instead of all of them; the exact path gives the very sum effects.subject_alpha makes."""
    from segtool import effects

    image = load_image("astronaut")
    with _segmenter(model, "exact", monkeypatch, output_category_mask=False) as exact:
        expected = effects.subject_alpha(exact.segment(image).confidence_masks, classes)
    with _segmenter(model, path, monkeypatch, output_confidence_masks=False,
                    output_subject_classes=classes) as subject:
        result = subject.segment(image)
        if path == "device-graph":
            outputs = [o.name for o in subject._device_graph._session._session.get_outputs()]
            assert outputs == ["category", "subject"]
    assert result.confidence_masks is None and result.category_mask is not None
    assert result.subject_alpha.shape == image.shape[:2] and result.subject_alpha.dtype == np.float32
    if path == "exact":
        assert np.array_equal(result.subject_alpha, expected)
    else:
        assert np.abs(result.subject_alpha - expected).max() < 1e-4


@pytest.mark.parametrize("classes", [(), (21,), (-1,), [1], (True,)])
def test_subject_classes_that_do_not_fit_are_refused(classes, monkeypatch):
    from segtool.errors import UsageError

    with pytest.raises(UsageError, match="classes|output_subject_classes"):
        _segmenter("deeplab", "exact", monkeypatch, output_subject_classes=classes)


def test_composites_on_the_device_graph_ask_for_the_subject_alone(tmp_path, model_env):
    """`--blur` without confidence masks: the graph sends back the subject, not DeepLab's 21
    masks, and the files are the ones the masks would have made."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(PARITY_IMAGES[:2]):
        Image.fromarray(load_image(name)).save(folder / f"{i}.png")
    files = {}
    for path, extra in (("exact", []), ("device-graph", []), ("device-graph", ["--confidence-masks"])):
        out = tmp_path / f"{path}{len(extra)}"
        result = run_segtool(["image", folder, "-o", out, "--model", "deeplab", "--category-mask", "--blur",
                              "--cutout", "--no-confidence-masks", *extra, "-b", "2"], dict(model_env, SEGTOOL_PATH=path))
        assert result.returncode == 0, stderr_lines(result)
        files[out.name] = snapshot(out)
    assert files["exact0"] == files["device-graph0"]  # the same bytes: the sum is added in the same order
    for name, content in files["device-graph1"].items():
        if not name.endswith(".npy"):
            assert content == files["exact0"][name]


def test_the_cli_asks_for_the_subject_only_when_every_composite_shares_it():
    from segtool.commands.image import _with_subject
    from segtool.effects import EffectOptions

    base = ImageSegmenterOptions(model="deeplab", output_confidence_masks=True)
    shared = _with_subject(base, ("blur", "cutout"), EffectOptions(), 21, keep_masks=False)
    assert shared.output_subject_classes == tuple(range(1, 21)) and not shared.output_confidence_masks
    kept = _with_subject(base, ("blur",), EffectOptions(classes=(15,)), 21, keep_masks=True)
    assert kept.output_subject_classes == (15,) and kept.output_confidence_masks
    hair = EffectOptions(recolor_classes=(1,))
    assert _with_subject(base, ("blur", "recolor"), hair, 3, keep_masks=False) is base  # two subjects
    assert _with_subject(base, (), EffectOptions(), 21, keep_masks=False) is base  # no composite


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
