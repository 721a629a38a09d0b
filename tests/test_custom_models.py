"""Users' own models, through the real CLI and API: TFLite files with and without metadata, their
bytes, ONNX files, `segtool models add`, the conversion cache, and files that are no model.

The model with metadata is built here (tests/tflite_metadata.py) from ../shared/models/deeplab_v3.tflite:
labels, localized label files for fr, de and ja, normalization and MediaPipe's softmax activation.
Its masks are compared with MediaPipe 0.10.21's own on the same bytes (tests/fixtures/mediapipe_custom,
recorded by scripts/make_reference_masks.py --only custom).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segtool import ImageSegmenter, ImageSegmenterOptions
from segtool.errors import ModelError
from segtool_process import model_env, run_segtool, segtool_command, stderr_lines  # noqa: F401 (fixture)
from tflite_metadata import VOC_DE, VOC_FR, VOC_JA, VOC_LABELS, custom_deeplab

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SEGTOOL_SHARED_MODELS", ROOT.parent / "shared" / "models"))
FIXTURES = ROOT / "tests" / "fixtures" / "mediapipe_custom"

pytest.importorskip("tf2onnx", reason="converting TFLite files needs the convert extra")
skimage_data = pytest.importorskip("skimage.data")


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One user model folder for the module, so each TFLite file is converted once."""
    folder = tmp_path_factory.mktemp("user-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGTOOL_MODELS_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def custom_tflite(tmp_path_factory, cache) -> Path:
    pytest.importorskip("flatbuffers")
    path = tmp_path_factory.mktemp("custom") / "my_segmenter.tflite"
    path.write_bytes(custom_deeplab(SHARED if (SHARED / "deeplab_v3.tflite").is_file() else shared("x")))
    return path


@pytest.fixture(scope="module")
def bare_tflite(tmp_path_factory, cache) -> Path:
    """A model without metadata (the legacy square selfie network)."""
    path = tmp_path_factory.mktemp("bare") / "selfie_legacy.tflite"
    path.write_bytes(shared("selfie_segmentation.tflite").read_bytes())
    return path


@pytest.fixture
def env(model_env, cache) -> dict:
    return {**model_env, "SEGTOOL_MODELS_DIR": str(cache)}


def photo(tmp_path, name="chelsea") -> Path:
    import imageio.v3 as iio

    path = tmp_path / f"{name}.png"
    iio.imwrite(path, getattr(skimage_data, name)())
    return path


def one_line_error(result, *names) -> str:
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


# ---- the model with metadata: labels, locales, masks --------------------------------------------

@pytest.mark.parametrize("locale, expected", [("en", VOC_LABELS), ("fr", VOC_FR), ("de", VOC_DE), ("ja", VOC_JA),
                                              ("fr_CA", VOC_FR), ("pt", VOC_LABELS)])
def test_labels_and_display_names_come_from_the_metadata(custom_tflite, locale, expected):
    options = ImageSegmenterOptions(model=custom_tflite, display_names_locale=locale)
    with ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.labels == expected
        assert (segmenter.spec.mean, segmenter.spec.std, segmenter.spec.activation) == (127.5, 127.5, "softmax")


def test_every_form_of_the_model_gives_the_same_masks(custom_tflite):
    image = skimage_data.chelsea()
    forms = [ImageSegmenter.create_from_model_path(custom_tflite),
             ImageSegmenter.create_from_model_path(str(custom_tflite)),
             ImageSegmenter.create_from_options(ImageSegmenterOptions(model=str(custom_tflite))),
             ImageSegmenter.create_from_options(ImageSegmenterOptions(model_buffer=custom_tflite.read_bytes())),
             ImageSegmenter.create_from_model_buffer(custom_tflite.read_bytes())]
    masks = []
    for segmenter in forms:
        with segmenter:
            assert segmenter.labels == VOC_LABELS
            masks.append(segmenter.segment(image).confidence_masks)
    assert masks[0].shape == (21, *image.shape[:2])
    for other in masks[1:]:
        assert np.array_equal(other, masks[0])


def test_model_path_means_a_path_not_a_name():
    with pytest.raises(ModelError, match="selfie: no such model file"):
        ImageSegmenter.create_from_model_path("selfie")


CASES = sorted(p.relative_to(FIXTURES).as_posix()[:-4] for p in FIXTURES.glob("*/*.npz"))


def load_image(name: str) -> np.ndarray:
    if name == "grace_hopper":
        cbook = pytest.importorskip("matplotlib.cbook")
        from PIL import Image
        return np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return getattr(skimage_data, name)()


@pytest.fixture(scope="module")
def custom_models(tmp_path_factory, cache) -> dict:
    import tflite_metadata

    folder = tmp_path_factory.mktemp("fixture-models")
    made = {}
    for name in ("custom_deeplab", "custom_selfie"):
        made[name] = folder / f"{name}.tflite"
        made[name].write_bytes(getattr(tflite_metadata, name)(SHARED))
    return made


@pytest.mark.parametrize("case", CASES)
def test_masks_equal_mediapipes_own(custom_models, case):
    """The same bytes through MediaPipe 0.10.21 (recorded) and segtool. A one-channel model keeps
    segtool's convention: masks (1 - p, p), categories 1 = its label; MediaPipe: p, and 0 = its label."""
    model, image_name = case.split("/")
    fixture = dict(np.load(FIXTURES / f"{case}.npz"))
    image = np.ascontiguousarray(load_image(image_name))
    if hashlib.sha256(image.tobytes()).hexdigest() != str(fixture["image_sha256"]):
        pytest.skip(f"{image_name}: this environment decodes the image differently from the fixture's")
    options = ImageSegmenterOptions(model=custom_models[model], output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(image)
        one_channel = segmenter.spec.output_channels == 1
        labels = segmenter.labels[1:] if one_channel else segmenter.labels
    assert list(labels) == list(fixture["labels"])  # MediaPipe's labels, read from the same bytes
    channels = fixture["confidence_channels"] + (1 if one_channel else 0)
    expected_category = (fixture["category_mask"] == 0) if one_channel else fixture["category_mask"]
    agreement = float((result.category_mask == expected_category).mean())
    difference = np.abs(result.confidence_masks[channels] - fixture["confidence_masks"].astype(np.float32))
    assert agreement >= 0.999, agreement
    # the fixture keeps float16 (rounding <= 2.5e-4 in 0.5..1); the rest is TFLite vs onnxruntime
    assert float(difference.max()) <= 1e-3, float(difference.max())


# ---- the CLI ----------------------------------------------------------------------------------

def test_cli_runs_a_tflite_file_with_its_localized_names(tmp_path, env, custom_tflite):
    image = photo(tmp_path)
    out = tmp_path / "out"
    result = run_segtool(["image", image, "--model", custom_tflite, "--category-mask", "--locale", "de",
                          "--json", "-o", out], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.decode().splitlines()[0])
    assert "Katze" in report["categories"] and "Hintergrund" in report["categories"]
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model=custom_tflite,
                                                                  output_category_mask=True)) as segmenter:
        expected = segmenter.segment(skimage_data.chelsea()).category_mask
    import imageio.v3 as iio
    assert np.array_equal(iio.imread(out / "chelsea.category.png"), expected)


def test_a_model_without_metadata_names_the_missing_fact_then_runs_with_a_facts_file(tmp_path, env, bare_tflite):
    image = photo(tmp_path, "astronaut")
    result = run_segtool(["image", image, "--model", bare_tflite, "-o", tmp_path / "a"], env)
    assert result.returncode == 1
    line = one_line_error(result, bare_tflite, "normalization", f"{bare_tflite}.json")
    facts = Path(f"{bare_tflite}.json")
    facts.write_text(json.dumps({"normalization": {"mean": 0, "std": 255}, "labels": ["person"]}))
    try:
        # two first uses at once: both finish, one conversion is kept, nothing half-written
        runs = [subprocess.Popen(segtool_command() + ["image", str(image), "--model", str(bare_tflite), "--json",
                                                      "-o", str(tmp_path / f"out{i}")], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        facts.unlink()
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
        assert json.loads(stdout.decode().splitlines()[0])["categories"]["person"] > 0.2
    sha = hashlib.sha256(bare_tflite.read_bytes()).hexdigest()
    converted = env["SEGTOOL_MODELS_DIR"] + "/converted"
    assert sorted(p.name for p in Path(converted).iterdir() if sha in p.name) == [f"{sha}.json", f"{sha}.onnx"]
    assert not [p for p in Path(converted).iterdir() if ".part-" in p.name or p.name.startswith(".converting-")]
    masks = np.load(tmp_path / "out0" / "astronaut.confidence.npy")
    assert masks.shape == (2, 512, 512) and np.allclose(masks.sum(axis=0), 1, atol=1e-5)
    assert "normalization" in line


def test_only_the_first_use_needs_the_convert_extra(tmp_path, env, custom_tflite, bare_tflite):
    """Without tf2onnx and TensorFlow: a cached model runs, a new one is a one-line error."""
    image = photo(tmp_path)
    blocked = ("import sys; sys.modules.update(tf2onnx=None, tensorflow=None, onnx=None); "
               "from segtool.cli import main; sys.argv[0] = 'segtool'; main()")
    with ImageSegmenter.create_from_model_path(custom_tflite):
        pass  # converted and cached (if not already)
    ok = subprocess.run([sys.executable, "-c", blocked, "image", str(image), "--model", str(custom_tflite),
                         "-o", str(tmp_path / "ok")], env=env, capture_output=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    new = tmp_path / "new.tflite"
    new.write_bytes(bare_tflite.read_bytes() + b"\0")  # other bytes: not in the cache
    Path(f"{new}.json").write_text(json.dumps({"normalization": {"mean": 0, "std": 255}}))
    missing = subprocess.run([sys.executable, "-c", blocked, "image", str(image), "--model", str(new),
                              "-o", str(tmp_path / "no")], env=env, capture_output=True, timeout=300)
    assert missing.returncode == 1
    one_line_error(missing, new, "pip install 'segtool[convert]'")


def test_video_runs_a_custom_model(tmp_path, env, custom_tflite):
    from clips import make_clip

    clip = make_clip(tmp_path / "talk.mp4", frames=6, audio=False)
    result = run_segtool(["video", clip, "--model", custom_tflite, "--category-mask", "-o", f"{tmp_path / 'v'}/"], env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "v").glob("*.category.png"))) == 6


def test_webcam_runs_a_custom_model(tmp_path, env, custom_tflite):
    from clips import make_clip

    clip = make_clip(tmp_path / "talk.mp4", frames=10, audio=False)
    result = run_segtool(["webcam", "--source", clip, "--model", custom_tflite, "--blur",
                          "--output", tmp_path / "live.mp4"], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "live.mp4").stat().st_size > 0


# ---- models add, list, info, remove; unknown names -------------------------------------------------

def test_models_add_keeps_a_model_under_a_name(tmp_path, env, custom_tflite):
    kept = tmp_path / "moved.tflite"
    kept.write_bytes(custom_tflite.read_bytes())
    added = run_segtool(["models", "add", "voc", kept], env)
    assert added.returncode == 0, added.stderr
    assert "21 categories" in added.stdout.decode()
    kept.unlink()  # a copy is kept: the original may go
    listing = run_segtool(["models", "list"], env).stdout.decode()
    assert any(line.strip("│ ").startswith("voc ") and "added" in line for line in listing.splitlines()), listing
    info = run_segtool(["models", "info", "voc", "--locale", "fr"], env).stdout.decode()
    assert "chat" in info and "127.5" in info
    image = photo(tmp_path)
    result = run_segtool(["image", image, "--model", "voc", "--json", "-o", tmp_path / "out"], env)
    assert result.returncode == 0, result.stderr
    assert "cat" in json.loads(result.stdout.decode().splitlines()[0])["categories"]
    again = run_segtool(["models", "add", "voc", custom_tflite], env)
    assert again.returncode == 2 and "--force" in one_line_error(again, "voc")
    builtin = run_segtool(["models", "add", "selfie", custom_tflite], env)
    assert builtin.returncode == 2
    removed = run_segtool(["models", "remove", "voc"], env)
    assert removed.returncode == 0, removed.stderr
    gone = run_segtool(["image", image, "--model", "voc", "-o", tmp_path / "gone"], env)
    assert gone.returncode == 2 and b"unknown model 'voc'" in gone.stderr


def test_an_unknown_model_name_lists_the_names(tmp_path, env):
    result = run_segtool(["image", photo(tmp_path), "--model", "nope", "-o", tmp_path], env)
    assert result.returncode == 2
    error = stderr_lines(result)[-1]
    assert "unknown model 'nope'" in error and "selfie" in error and "deeplab" in error and ".tflite" in error


# ---- ONNX files -----------------------------------------------------------------------------------

def bundled_onnx(name: str) -> Path:
    from segtool import registry

    path = registry.bundled_dir() / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not converted")
    return path


def test_segtools_own_onnx_files_run_by_path_with_the_manifests_facts(tmp_path, env):
    image = photo(tmp_path)
    by_path = run_segtool(["image", image, "--model", bundled_onnx("deeplab"), "--json", "-o", tmp_path / "p"], env)
    by_name = run_segtool(["image", image, "--model", "deeplab", "--json", "-o", tmp_path / "n"], env)
    assert by_path.returncode == 0 and by_name.returncode == 0, by_path.stderr
    assert np.array_equal(np.load(tmp_path / "p" / "chelsea.confidence.npy"),
                          np.load(tmp_path / "n" / "chelsea.confidence.npy"))
    assert "cat" in json.loads(by_path.stdout.decode().splitlines()[0])["categories"]


def test_an_onnx_file_takes_its_facts_from_a_facts_file_or_its_metadata_props(tmp_path, env):
    onnx = pytest.importorskip("onnx")
    model = tmp_path / "voc.onnx"
    copy = onnx.load(str(bundled_onnx("deeplab")))
    copy.doc_string = "a user's own model"  # other bytes: not segtool's own file
    onnx.save(copy, str(model))
    image = photo(tmp_path)
    refused = run_segtool(["image", image, "--model", model, "-o", tmp_path / "x"], env)
    assert refused.returncode == 1
    one_line_error(refused, model, "normalization", "voc.onnx.json")

    Path(f"{model}.json").write_text(json.dumps({"normalization": {"mean": 127.5, "std": 127.5},
                                                 "activation": "softmax", "labels": list(VOC_LABELS)}))
    ok = run_segtool(["image", image, "--model", model, "-o", tmp_path / "sidecar"], env)
    assert ok.returncode == 0, ok.stderr
    builtin = run_segtool(["image", image, "--model", "deeplab", "-o", tmp_path / "builtin"], env)
    assert builtin.returncode == 0, builtin.stderr
    expected = np.load(tmp_path / "builtin" / "chelsea.confidence.npy")
    assert np.array_equal(np.load(tmp_path / "sidecar" / "chelsea.confidence.npy"), expected)

    with_props = onnx.load(str(model))
    for key, value in {"normalization": {"mean": 127.5, "std": 127.5}, "activation": "softmax",
                       "labels": list(VOC_LABELS), "localized_labels": {"fr": list(VOC_FR)}}.items():
        entry = with_props.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    props = tmp_path / "props.onnx"
    onnx.save(with_props, str(props))
    options = ImageSegmenterOptions(model=props, display_names_locale="fr")
    with ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.labels == VOC_FR
        assert np.array_equal(segmenter.segment(skimage_data.chelsea()).confidence_masks, expected)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model_buffer=props.read_bytes())) as segmenter:
        assert segmenter.labels == VOC_LABELS


# ---- files that are no segmentation model ----------------------------------------------------------

def classifier_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ReduceMean", ["image"], ["scores"], axes=[1, 2], keepdims=0)],
                              "classifier", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 224, 224, 3])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def bad_file(kind: str, folder: Path) -> Path:
    deeplab = shared("deeplab_v3.tflite").read_bytes()
    if kind == "classifier":
        return classifier_onnx(folder / "classifier.onnx")
    if kind == "channels_first":
        onnx = pytest.importorskip("onnx")
        from onnx import TensorProto, helper
        graph = helper.make_graph([helper.make_node("Identity", ["image"], ["mask"])], "nchw",
                                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                                  [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 3, 64, 64])])
        path = folder / "nchw.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        return path
    contents = {
        "empty": ("empty.tflite", b""),
        "jpeg": ("photo.tflite", _jpeg_bytes()),
        "random": ("random.tflite", np.random.default_rng(1).bytes(4096)),
        "random_onnx": ("random.onnx", np.random.default_rng(2).bytes(4096)),
        "truncated": ("truncated.tflite", deeplab[: len(deeplab) // 2]),
        "truncated_onnx": ("truncated.onnx", bundled_onnx("selfie").read_bytes()[:100_000]),
        "html": ("download.tflite", b"<!DOCTYPE html><html>quota exceeded</html>"),
    }
    name, data = contents[kind]
    path = folder / name
    path.write_bytes(data)
    return path


def _jpeg_bytes() -> bytes:
    import cv2
    return cv2.imencode(".jpg", skimage_data.chelsea())[1].tobytes()


@pytest.mark.parametrize("kind", ["empty", "jpeg", "random", "random_onnx", "truncated", "truncated_onnx", "html",
                                  "classifier", "channels_first"])
def test_files_that_are_no_segmenter_are_one_line_errors(tmp_path, env, kind):
    model = bad_file(kind, tmp_path)
    result = run_segtool(["image", photo(tmp_path), "--model", model, "-o", tmp_path / "out"], env)
    assert result.returncode == 1
    one_line_error(result, model.name)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    with pytest.raises(ModelError, match="model_buffer"):
        ImageSegmenter.create_from_options(ImageSegmenterOptions(model_buffer=model.read_bytes()))


def test_facts_files_are_checked(tmp_path, bare_tflite, cache):
    model = tmp_path / "m.tflite"
    model.write_bytes(bare_tflite.read_bytes())
    facts = Path(f"{model}.json")
    for content, message in [("{", "cannot read"), ('{"normalisation": {}}', "unknown key 'normalisation'"),
                             ('{"normalization": {"mean": 0}}', "'normalization' must be"),
                             ('{"normalization": {"mean": 0, "std": 0}}', "std is 0"),
                             ('{"normalization": {"mean": 0, "std": 255}, "labels": ["a", "b", "c"]}',
                              "3 labels for 1 output channel"),
                             ('{"normalization": {"mean": 0, "std": 255}, "activation": "softmax"}', "softmax")]:
        facts.write_text(content)
        with pytest.raises(ModelError, match=message):
            ImageSegmenter.create_from_model_path(model)
