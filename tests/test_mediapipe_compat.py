"""segtool.mediapipe: MediaPipe's image segmenter API, as MediaPipe 0.10.21 documents and behaves.

Behaviour (types, messages, conventions) was read off MediaPipe 0.10.21 itself, run side by side;
the masks are checked against tests/fixtures/mediapipe_compat.npz, which MediaPipe recorded
(scripts/make_mediapipe_compat_fixture.py), and the existing per-model fixtures.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import segtool.mediapipe as mp
from segtool.mediapipe import model_files
from segtool.mediapipe.tasks.python import vision
from segtool.mediapipe.tasks.python.components.containers import rect

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mediapipe_compat.npz"
# MediaPipe's own model files, as MediaPipe users hold them (../shared/models, or $SEGTOOL_SHARED_MODELS)
SHARED = Path(os.environ.get("SEGTOOL_SHARED_MODELS", ROOT.parent / "shared" / "models"))
SELFIE = str(SHARED / "selfie_segmenter.tflite")
DEEPLAB = str(SHARED / "deeplab_v3.tflite")
pytestmark = pytest.mark.skipif(not Path(DEEPLAB).is_file() or not Path(SELFIE).is_file(),
                                reason=f"MediaPipe's TFLite files are not in {SHARED} on this machine")
BaseOptions = mp.tasks.BaseOptions
Mode = vision.RunningMode


@pytest.fixture(scope="module")
def reference() -> dict:
    return dict(np.load(FIXTURE))


@pytest.fixture(scope="module")
def cat_image(reference) -> mp.Image:
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=reference["cat"])


def options(model=SELFIE, **kwargs) -> vision.ImageSegmenterOptions:
    return vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model), **kwargs)


# ---- import paths -----------------------------------------------------------------------------

DEEP_MODULES = [
    "tasks", "tasks.python", "tasks.python.vision", "tasks.python.vision.image_segmenter",
    "tasks.python.core", "tasks.python.core.base_options", "tasks.python.vision.core",
    "tasks.python.vision.core.vision_task_running_mode", "tasks.python.vision.core.image_processing_options",
    "tasks.python.vision.core.image", "tasks.python.components.containers.rect", "tasks.python.test.test_utils",
    "python", "python._framework_bindings.image", "python._framework_bindings.image_frame",
    "python.solutions.selfie_segmentation", "solutions.selfie_segmentation",
]


@pytest.mark.parametrize("name", DEEP_MODULES)
def test_every_module_path_mediapipe_code_imports_exists(name):
    importlib.import_module(f"segtool.mediapipe.{name}")


def test_names_are_one_and_the_same_object_whichever_path_gives_them():
    from segtool.mediapipe.python._framework_bindings import image, image_frame
    from segtool.mediapipe.tasks.python.vision import image_segmenter
    from segtool.mediapipe.tasks.python.vision.core import image as core_image
    from segtool.mediapipe.tasks.python.vision.core import vision_task_running_mode

    assert mp.Image is image.Image is core_image.Image is mp.python.Image
    assert mp.ImageFormat is image_frame.ImageFormat is core_image.ImageFormat
    assert mp.tasks.vision.ImageSegmenter is vision.ImageSegmenter is image_segmenter.ImageSegmenter
    assert vision.RunningMode is vision_task_running_mode.VisionTaskRunningMode
    assert mp.tasks.python.BaseOptions is BaseOptions
    assert mp.solutions.selfie_segmentation.SelfieSegmentation is \
        importlib.import_module("segtool.mediapipe.solutions.selfie_segmentation").SelfieSegmentation


ALIAS_SCRIPT = """
import sys
import segtool.mediapipe
{install}
import mediapipe as mp
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.components.containers import rect
from mediapipe.tasks.python.core import base_options
from mediapipe.tasks.python.test import test_utils
from mediapipe.python._framework_bindings import image_frame
import mediapipe.tasks.python.vision.image_segmenter as image_segmenter
import mediapipe.tasks.python.vision.core.vision_task_running_mode as running_mode
import mediapipe.solutions.selfie_segmentation
from mediapipe.python.solutions import selfie_segmentation
assert mp is segtool.mediapipe
assert image_segmenter is sys.modules["segtool.mediapipe.tasks.python.vision.image_segmenter"]
assert vision.ImageSegmenter is segtool.mediapipe.tasks.python.vision.ImageSegmenter
assert mp.tasks.vision.RunningMode is running_mode.VisionTaskRunningMode
assert image_frame.ImageFormat is mp.ImageFormat
assert image_segmenter.__spec__.name == "segtool.mediapipe.tasks.python.vision.image_segmenter"
try:
    import mediapipe.tasks.python.audio
except ModuleNotFoundError as exc:
    assert exc.name == "mediapipe.tasks.python.audio", exc.name
else:
    raise AssertionError("a task segtool lacks imported")
segmenter = vision.ImageSegmenter.create_from_model_path({model!r})
assert isinstance(segmenter, image_segmenter.ImageSegmenter) and segmenter.labels == ["selfie"]
segmenter.close()
print("aliased")
"""


@pytest.mark.parametrize("install", ["segtool.mediapipe.install_as_mediapipe()",
                                     "sys.modules['mediapipe'] = segtool.mediapipe"])
def test_the_alias_makes_mediapipe_imports_load_segtool(install):
    script = ALIAS_SCRIPT.format(install=install, model=SELFIE)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aliased"


def test_the_alias_refuses_when_the_real_mediapipe_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", type(sys)("mediapipe"))
    with pytest.raises(ImportError, match="already imported"):
        mp.install_as_mediapipe()


# ---- mp.Image -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, data, view_shape", [
    (mp.ImageFormat.SRGB, np.zeros((4, 5, 3), np.uint8), (4, 5, 3)),
    (mp.ImageFormat.SRGBA, np.zeros((4, 5, 4), np.uint8), (4, 5, 4)),
    (mp.ImageFormat.GRAY8, np.zeros((4, 5), np.uint8), (4, 5)),
    (mp.ImageFormat.GRAY8, np.zeros((4, 5, 1), np.uint8), (4, 5)),
    (mp.ImageFormat.GRAY16, np.zeros((4, 5), np.uint16), (4, 5)),
    (mp.ImageFormat.SRGB48, np.zeros((4, 5, 3), np.uint16), (4, 5, 3)),
    (mp.ImageFormat.VEC32F1, np.zeros((4, 5), np.float32), (4, 5)),
    (mp.ImageFormat.VEC32F2, np.zeros((4, 5, 2), np.float32), (4, 5, 2)),
])
def test_image_formats_and_their_read_only_views(fmt, data, view_shape):
    image = mp.Image(image_format=fmt, data=data)
    view = image.numpy_view()
    assert (image.image_format, image.width, image.height) == (fmt, 5, 4)
    assert view.shape == view_shape and view.dtype == data.dtype and image.channels == (view.shape + (1,))[2]
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1


def test_image_copies_its_data_and_indexes_as_mediapipe():
    data = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    image = mp.Image(mp.ImageFormat.SRGB, data[:, ::1])
    data[0, 0, 0] = 99
    assert image.numpy_view()[0, 0, 0] == 0
    assert (image[0, 1, 2], image[1, 3, 0]) == (5, 21)
    assert image.step == 12 and image.is_contiguous() and not image.uses_gpu()
    with pytest.raises(IndexError, match="Invalid index dimension: 2"):
        image[0, 1]
    # a non-contiguous view (MediaPipe refuses it) is copied
    assert mp.Image(mp.ImageFormat.SRGB, data[:, ::2]).numpy_view().shape == (2, 2, 3)


@pytest.mark.parametrize("fmt, data, error, words", [
    (mp.ImageFormat.SRGB, np.zeros((2, 2, 3), np.float32), RuntimeError, "float image data should be"),
    (mp.ImageFormat.VEC32F1, np.zeros((2, 2), np.uint8), RuntimeError, "uint8 image data should be one of"),
    (mp.ImageFormat.SRGB, np.zeros((2, 2, 3), np.int64), TypeError, "uint8, uint16 or float32"),
    (mp.ImageFormat.SRGB, np.zeros((2, 2, 4), np.uint8), ValueError, r"SRGB needs \(H, W, 3\)"),
    (mp.ImageFormat.GRAY8, np.zeros((2, 2, 3), np.uint8), ValueError, "GRAY8 needs"),
    (99, np.zeros((2, 2, 3), np.uint8), TypeError, "image_format must be an ImageFormat"),
])
def test_image_refuses_data_its_format_cannot_hold(fmt, data, error, words):
    with pytest.raises(error, match=words):
        mp.Image(fmt, data)


def test_create_from_file_reads_as_mediapipe_does(tmp_path):
    gray = np.full((5, 7), 128, np.uint8)
    rgba = np.dstack([np.full((5, 7, 3), 9, np.uint8), np.full((5, 7), 77, np.uint8)])
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((5, 7, 3), 1000, np.uint16))
    assert mp.Image.create_from_file(str(tmp_path / "gray.png")).image_format is mp.ImageFormat.GRAY8
    read = mp.Image.create_from_file(tmp_path / "rgba.png")
    assert read.image_format is mp.ImageFormat.SRGBA and read.numpy_view()[0, 0].tolist() == [9, 9, 9, 77]
    deep = mp.Image.create_from_file(str(tmp_path / "deep.png"))  # 16-bit files read as 8-bit, as MediaPipe
    assert deep.image_format is mp.ImageFormat.SRGB and deep.numpy_view()[0, 0, 0] == 1000 >> 8
    (tmp_path / "text.png").write_text("not an image")
    for bad in ("missing.png", "text.png"):
        with pytest.raises(RuntimeError, match=f"Image decoding failed: .*{bad}"):
            mp.Image.create_from_file(str(tmp_path / bad))


def test_create_from_file_keeps_pixels_as_stored_where_read_image_turns_them(tmp_path):
    from PIL import Image as PILImage

    from segtool import read_image

    path = tmp_path / "turned.jpg"
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored 90 degrees anticlockwise
    PILImage.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path, exif=exif.tobytes())
    stored = mp.Image.create_from_file(str(path))
    assert (stored.height, stored.width) == (4, 6)  # as MediaPipe reads it: EXIF ignored
    assert read_image(path).shape[:2] == (6, 4)  # segtool's own reader shows it upright


# ---- factories and models -------------------------------------------------------------------------

def test_every_factory_and_both_model_forms(cat_image):
    segmenters = [
        vision.ImageSegmenter.create_from_model_path(DEEPLAB),
        vision.ImageSegmenter.create_from_options(options(DEEPLAB)),
        vision.ImageSegmenter.create_from_options(options(Path(DEEPLAB))),
        vision.ImageSegmenter.create_from_options(
            vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_buffer=Path(DEEPLAB).read_bytes()))),
        vision.ImageSegmenter.create_from_options(
            vision.ImageSegmenterOptions(
                base_options=BaseOptions(model_asset_buffer=bytearray(Path(DEEPLAB).read_bytes())))),
    ]
    masks = []
    for segmenter in segmenters:
        with segmenter:
            assert isinstance(segmenter, vision.ImageSegmenter) and len(segmenter.labels) == 21
            masks.append(segmenter.segment(cat_image).confidence_masks[8].numpy_view())
    for other in masks[1:]:
        np.testing.assert_array_equal(other, masks[0])


def test_missing_models_fail_with_mediapipes_errors(tmp_path):
    missing = "/path/to/invalid/model.tflite"
    for error in (RuntimeError, FileNotFoundError):  # 0.10.21 raised the first, later releases the second
        with pytest.raises(error, match=f"^Unable to open file at {missing}$"):
            vision.ImageSegmenter.create_from_options(options(missing))
    relative = "no-such-model.tflite"
    with pytest.raises(FileNotFoundError, match=f"Unable to open file at {os.path.abspath(relative)}"):
        vision.ImageSegmenter.create_from_model_path(relative)
    with pytest.raises(FileNotFoundError, match="it is a directory"):
        vision.ImageSegmenter.create_from_model_path(str(tmp_path))
    for nothing in (BaseOptions(), BaseOptions(model_asset_path=""), BaseOptions(model_asset_buffer=b"")):
        with pytest.raises(ValueError, match="^ExternalFile must specify at least one of 'file_content', 'file_name'"):
            vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(base_options=nothing))
    not_a_model = tmp_path / "photo.tflite"
    not_a_model.write_bytes(b"\x89PNG not a model at all")
    with pytest.raises(ValueError, match="photo.tflite"):
        vision.ImageSegmenter.create_from_model_path(str(not_a_model))
    with pytest.raises(ValueError):
        vision.ImageSegmenter.create_from_options(
            vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_buffer=b"hello")))


def test_options_are_mediapipes_dataclasses():
    with pytest.raises(TypeError, match="base_options"):
        vision.ImageSegmenterOptions()
    made = vision.ImageSegmenterOptions(BaseOptions(SELFIE))
    assert (made.running_mode, made.output_confidence_masks, made.output_category_mask, made.result_callback,
            made.display_names_locale) == (Mode.IMAGE, True, False, None, "en")
    made.output_category_mask = True  # MediaPipe's options are mutable; so are these
    assert BaseOptions.Delegate.CPU == 0 and BaseOptions.Delegate.GPU == 1
    assert [m.name for m in Mode] == ["IMAGE", "VIDEO", "LIVE_STREAM"] and Mode.VIDEO.value == "VIDEO"


def test_delegate_gpu_maps_to_cuda_then_directml(monkeypatch):
    assert model_files.device_for(None) == model_files.device_for(BaseOptions.Delegate.CPU) == "cpu"
    monkeypatch.setattr(model_files, "available_devices", lambda: ["cuda", "directml", "cpu"])
    assert model_files.device_for(BaseOptions.Delegate.GPU) == "cuda"
    monkeypatch.setattr(model_files, "available_devices", lambda: ["directml", "cpu"])
    assert model_files.device_for(BaseOptions.Delegate.GPU) == "directml"
    monkeypatch.setattr(model_files, "available_devices", lambda: ["cpu"])
    with pytest.raises(RuntimeError, match="no GPU provider"):
        model_files.device_for(BaseOptions.Delegate.GPU)


# ---- running modes, callbacks, timestamps -----------------------------------------------------------

def test_callbacks_are_required_exactly_in_live_stream():
    with pytest.raises(ValueError, match="^The vision task is in live stream mode, a user-defined result callback "
                                         "must be provided.$"):
        vision.ImageSegmenter.create_from_options(options(running_mode=Mode.LIVE_STREAM))
    for mode in (Mode.IMAGE, Mode.VIDEO):
        with pytest.raises(ValueError, match="^The vision task is in image or video mode, a user-defined result "
                                             "callback should not be provided.$"):
            vision.ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=print))
    with pytest.raises(ValueError, match="At least one of CONFIDENCE_MASK"):
        vision.ImageSegmenter.create_from_options(options(output_confidence_masks=False))


CALLS = {
    "segment": lambda s, image: s.segment(image),
    "segment_for_video": lambda s, image: s.segment_for_video(image, 0),
    "segment_async": lambda s, image: s.segment_async(image, 0),
}
MODE_WORDS = {"segment": "image", "segment_for_video": "video", "segment_async": "live stream"}
OWN_METHOD = {Mode.IMAGE: "segment", Mode.VIDEO: "segment_for_video", Mode.LIVE_STREAM: "segment_async"}


@pytest.mark.parametrize("mode", list(Mode))
def test_each_mode_refuses_the_other_modes_methods(mode, cat_image):
    callback = (lambda *args: None) if mode is Mode.LIVE_STREAM else None
    with vision.ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=callback)) as segmenter:
        for method, call in CALLS.items():
            if method == OWN_METHOD[mode]:
                continue
            message = f"^Task is not initialized with the {MODE_WORDS[method]} mode. Current running mode:{mode.name}$"
            with pytest.raises(ValueError, match=message):
                call(segmenter, cat_image)


@pytest.mark.parametrize("mode", [Mode.VIDEO, Mode.LIVE_STREAM])
def test_timestamps_must_increase(mode, cat_image):
    callback = (lambda *args: None) if mode is Mode.LIVE_STREAM else None
    with vision.ImageSegmenter.create_from_options(options(running_mode=mode, result_callback=callback)) as segmenter:
        call = getattr(segmenter, OWN_METHOD[mode])
        call(cat_image, 100)
        for stale in (100, 0, -5):
            with pytest.raises(ValueError, match="^Input timestamp must be monotonically increasing.$"):
                call(cat_image, stale)
        call(cat_image, np.int64(101))  # a refused frame does not move the clock
        with pytest.raises(TypeError, match="timestamp_ms must be an int"):
            call(cat_image, 102.5)


def test_video_mode_gives_the_image_modes_masks(cat_image):
    video_options = options(running_mode=Mode.VIDEO, output_category_mask=True)
    with vision.ImageSegmenter.create_from_options(options(output_category_mask=True)) as still, \
            vision.ImageSegmenter.create_from_options(video_options) as video:
        expected = still.segment(cat_image)
        for timestamp in range(0, 90, 30):
            got = video.segment_for_video(cat_image, timestamp)
            np.testing.assert_array_equal(got.category_mask.numpy_view(), expected.category_mask.numpy_view())
            np.testing.assert_array_equal(got.confidence_masks[0].numpy_view(),
                                          expected.confidence_masks[0].numpy_view())


def test_live_stream_delivers_result_image_and_timestamp(cat_image):
    delivered, threads = [], set()

    def callback(result, output_image, timestamp_ms):
        threads.add(threading.current_thread() is threading.main_thread())
        delivered.append((result, output_image, timestamp_ms))

    with vision.ImageSegmenter.create_from_options(
            options(running_mode=Mode.LIVE_STREAM, output_category_mask=True, result_callback=callback)) as segmenter:
        for timestamp in range(0, 300, 30):
            segmenter.segment_async(cat_image, timestamp)
    with vision.ImageSegmenter.create_from_options(options(output_category_mask=True)) as still:
        expected = still.segment(cat_image).category_mask.numpy_view()
    stamps = [timestamp for _, _, timestamp in delivered]
    # newer frames may replace waiting ones; the last one arrives
    assert stamps == sorted(set(stamps)) and stamps[-1] == 270
    assert threads == {False}
    for result, output_image, timestamp in delivered:
        assert isinstance(result, vision.ImageSegmenterResult) and type(timestamp) is int
        assert output_image is cat_image
        assert len(result.confidence_masks) == 1
        np.testing.assert_array_equal(result.category_mask.numpy_view(), expected)


def test_an_exception_in_the_callback_reaches_the_caller(cat_image):
    def callback(result, output_image, timestamp_ms):
        raise KeyError("callback broke")

    live = options(running_mode=Mode.LIVE_STREAM, result_callback=callback)
    segmenter = vision.ImageSegmenter.create_from_options(live)
    segmenter.segment_async(cat_image, 1)
    with pytest.raises(KeyError, match="callback broke"):
        segmenter.close()


# ---- outputs, model by model ---------------------------------------------------------------------

def test_labels_are_a_list_as_mediapipe_has_them():
    with vision.ImageSegmenter.create_from_model_path(DEEPLAB) as deeplab, \
            vision.ImageSegmenter.create_from_model_path(SELFIE) as selfie:
        assert type(deeplab.labels) is list and deeplab.labels[:3] == ["background", "aeroplane", "bicycle"]
        assert len(deeplab.labels) == 21 and deeplab.labels[15] == "person"
        assert selfie.labels == ["selfie"]
        deeplab.labels.append("mutating the copy")
        assert len(deeplab.labels) == 21


@pytest.mark.parametrize("model, path", [("selfie", SELFIE), ("deeplab", DEEPLAB)])
@pytest.mark.parametrize("rotation", [0, 90, 270])
def test_masks_equal_mediapipes_own_upright_and_rotated(model, path, rotation, reference, cat_image):
    """The selfie model: ONE confidence mask (the person) and categories 0 = person, 255 =
    background; rotated inputs in MediaPipe's layout (the rotated view's masks resized to the input)."""
    with vision.ImageSegmenter.create_from_options(options(path, output_category_mask=True)) as segmenter:
        result = segmenter.segment(cat_image, vision.ImageProcessingOptions(rotation_degrees=rotation))
    channel = 0 if model == "selfie" else 8
    key = f"{model}_cat_rot{rotation}"
    category = result.category_mask.numpy_view()
    confidence = result.confidence_masks[channel].numpy_view()
    assert len(result.confidence_masks) == int(reference[f"{model}_cat_masks"])
    assert result.category_mask.image_format is mp.ImageFormat.GRAY8 and category.dtype == np.uint8
    assert result.confidence_masks[0].image_format is mp.ImageFormat.VEC32F1 and confidence.dtype == np.float32
    assert category.shape == confidence.shape == reference["cat"].shape[:2]
    assert (category == reference[f"{key}_category"]).mean() >= 0.999
    # the fixture holds float16 (rounding under 2.5e-4)
    assert np.abs(confidence - reference[f"{key}_confidence"].astype(np.float32)).max() <= 1e-3
    if model == "selfie":
        assert set(np.unique(category)) <= {0, 255}
        assert ((category == 0) == (confidence > 0.5)).mean() > 0.99


def test_rotations_must_be_right_angles_and_regions_are_refused(cat_image):
    with vision.ImageSegmenter.create_from_model_path(SELFIE) as segmenter:
        with pytest.raises(ValueError, match="^Expected rotation to be a multiple of 90°.$"):
            segmenter.segment(cat_image, vision.ImageProcessingOptions(rotation_degrees=45))
        with pytest.raises(ValueError, match="^This task doesn't support region-of-interest.$"):
            segmenter.segment(cat_image, vision.ImageProcessingOptions(region_of_interest=rect.Rect(0, 0, 1, 1)))
        full = segmenter.segment(cat_image, vision.ImageProcessingOptions(rotation_degrees=-270))
        turned = segmenter.segment(cat_image, vision.ImageProcessingOptions(rotation_degrees=90))
        np.testing.assert_array_equal(full.confidence_masks[0].numpy_view(), turned.confidence_masks[0].numpy_view())


def test_alpha_is_ignored_and_arrays_must_be_wrapped(reference, cat_image):
    rgba = np.dstack([reference["cat"], np.zeros(reference["cat"].shape[:2], np.uint8)])
    with vision.ImageSegmenter.create_from_model_path(SELFIE) as segmenter:
        opaque = segmenter.segment(cat_image).confidence_masks[0].numpy_view()
        clear = segmenter.segment(mp.Image(mp.ImageFormat.SRGBA, rgba)).confidence_masks[0].numpy_view()
        np.testing.assert_array_equal(opaque, clear)  # MediaPipe reads RGB and drops alpha
        with pytest.raises(ValueError, match=r"wrap arrays with mp.Image\(image_format="):
            segmenter.segment(reference["cat"])


def test_segment_batch_equals_one_call_per_image(reference, cat_image):
    other = mp.Image(mp.ImageFormat.SRGB, reference["small_person"])
    with vision.ImageSegmenter.create_from_options(options(DEEPLAB, output_category_mask=True)) as segmenter:
        batch = segmenter.segment_batch([cat_image, other])
        for image, result in zip([cat_image, other], batch):
            alone = segmenter.segment(image)
            np.testing.assert_array_equal(result.category_mask.numpy_view(), alone.category_mask.numpy_view())


def test_close_is_final_and_idempotent(cat_image):
    segmenter = vision.ImageSegmenter.create_from_model_path(SELFIE)
    segmenter.close()
    segmenter.close()
    with pytest.raises(ValueError, match="^Task runner is currently not running.$"):
        segmenter.segment(cat_image)
    assert segmenter.labels == ["selfie"]
    with vision.ImageSegmenter.create_from_options(options(running_mode=Mode.VIDEO)) as video:
        pass
    with pytest.raises(ValueError, match="^Task runner is currently not running.$"):
        video.segment_for_video(cat_image, 0)


def test_test_utils_finds_data_as_mediapipes_does(tmp_path, monkeypatch):
    from segtool.mediapipe.tasks.python.test import test_utils

    data = tmp_path / "mediapipe" / "tasks" / "testdata" / "vision"
    data.mkdir(parents=True)
    (data / "model.tflite").write_bytes(b"x")
    monkeypatch.setenv("TEST_SRCDIR", str(tmp_path))
    assert test_utils.get_test_data_path("mediapipe/tasks/testdata/vision/model.tflite") == str(data / "model.tflite")
    assert test_utils.get_test_data_path("model.tflite") == str(data / "model.tflite")
    with pytest.raises(ValueError, match="No absent.tflite in test directory"):
        test_utils.get_test_data_path("absent.tflite")


def test_test_utils_also_looks_where_the_0_10_21_wheel_does(tmp_path, monkeypatch):
    from segtool.mediapipe.tasks.python.test import test_utils

    wheel_root = tmp_path / "root"
    data = wheel_root / "mediapipe" / "tasks" / "testdata" / "vision"
    data.mkdir(parents=True)
    (data / "cat.jpg").write_bytes(b"x")
    monkeypatch.delenv("TEST_SRCDIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(test_utils, "WHEEL_BUILD_ROOT", str(wheel_root))
    assert test_utils.get_test_data_path("mediapipe/tasks/testdata/vision/cat.jpg") == str(data / "cat.jpg")


# ---- mp.solutions.drawing_utils (the legacy samples' first line) ---------------------------------

def test_drawing_utils_draws_visible_landmarks_and_their_connections():
    from types import SimpleNamespace as Point

    drawing = mp.solutions.drawing_utils
    landmarks = Point(landmark=[Point(x=0.25, y=0.5, visibility=None, presence=None),
                                Point(x=0.75, y=0.5, visibility=0.9, presence=None),
                                Point(x=0.5, y=0.1, visibility=0.2, presence=None),  # hidden: not drawn
                                Point(x=1.5, y=0.5, visibility=None, presence=None)])  # outside: not drawn
    image = np.zeros((40, 80, 3), np.uint8)
    drawing.draw_landmarks(image, landmarks, [(0, 1), (1, 2)], drawing.DrawingSpec(color=(0, 0, 255), circle_radius=1),
                           drawing.DrawingSpec(color=(0, 255, 0), thickness=1))
    assert tuple(image[20, 40]) == (0, 255, 0)  # the line between the two visible points
    assert tuple(image[20, 20]) == (0, 0, 255) and tuple(image[20, 60]) == (0, 0, 255)
    assert not image[:10].any()  # nothing at the hidden point nor towards it
    with pytest.raises(ValueError, match="Landmark index is out of range"):
        drawing.draw_landmarks(image, landmarks, [(0, 9)])
    with pytest.raises(ValueError, match="three channel bgr"):
        drawing.draw_landmarks(np.zeros((4, 4, 4), np.uint8), landmarks)


# ---- create_from_file decodes JPEG as MediaPipe does (stb_image) ---------------------------------

@pytest.mark.parametrize("name", ["colour", "gray"])
def test_create_from_file_gives_mediapipes_own_jpeg_pixels(name, tmp_path, monkeypatch):
    """tests/fixtures/mediapipe/jpeg_decode.npz: two JPEG files and MediaPipe 0.10.21's pixels for
    them. With libstb (the mediapipe-compat extra) they are the very same; without it segtool's
    own decoder is within a few levels."""
    recorded = np.load(ROOT / "tests" / "fixtures" / "mediapipe" / "jpeg_decode.npz")
    path = tmp_path / f"{name}.jpg"
    path.write_bytes(recorded[f"{name}_jpeg"].tobytes())
    expected = recorded[f"{name}_mediapipe"]
    pytest.importorskip("libstb")
    image = mp.Image.create_from_file(str(path))
    assert image.image_format is (mp.ImageFormat.SRGB if name == "colour" else mp.ImageFormat.GRAY8)
    np.testing.assert_array_equal(image.numpy_view(), expected)
    monkeypatch.setitem(sys.modules, "libstb", None)  # not installed: segtool's own decoder
    own = mp.Image.create_from_file(str(path)).numpy_view()
    assert own.shape == expected.shape and np.abs(own.astype(int) - expected).max() <= 4


def test_create_from_file_gives_a_gif_its_alpha_as_mediapipe(tmp_path):
    """MediaPipe (stb_image) reads a GIF as SRGBA, opaque where the GIF has no transparency."""
    pytest.importorskip("libstb")
    from PIL import Image as PILImage

    rgb = np.random.default_rng(3).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).convert("P").save(tmp_path / "x.gif")
    image = mp.Image.create_from_file(str(tmp_path / "x.gif"))
    assert image.image_format is mp.ImageFormat.SRGBA
    pixels = image.numpy_view()
    assert (pixels[:, :, 3] == 255).all()
    np.testing.assert_array_equal(pixels[:, :, :3], np.asarray(PILImage.open(tmp_path / "x.gif").convert("RGB")))
