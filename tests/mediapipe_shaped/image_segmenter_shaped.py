"""A test written the way MediaPipe's published image segmenter tests are, for segtool's alias.

It imports only ``mediapipe.*`` paths (the 0.10.21 ones and the newer ``vision.core.image``),
finds its data through ``test_utils.get_test_data_path`` under $TEST_SRCDIR, and checks what those
tests check: the factories, model path and bytes, category and confidence masks against goldens,
labels, mode and callback errors, timestamps, the video and live stream modes. Run by
tests/test_mediapipe_compat.py after ``segtool.mediapipe.install_as_mediapipe()``; not collected
by pytest itself. Data (made by that test): deeplabv3.tflite, cat.png, cat_golden.png (category x 10).
"""
import os
import threading
import unittest

import cv2
import numpy as np

from mediapipe.python._framework_bindings import image as image_module
from mediapipe.python._framework_bindings import image_frame
from mediapipe.tasks.python.core import base_options as base_options_module
from mediapipe.tasks.python.test import test_utils
from mediapipe.tasks.python.vision import image_segmenter
from mediapipe.tasks.python.vision.core import image as core_image
from mediapipe.tasks.python.vision.core import vision_task_running_mode

Image = image_module.Image
ImageFormat = image_frame.ImageFormat
Options = image_segmenter.ImageSegmenterOptions
Segmenter = image_segmenter.ImageSegmenter
Base = base_options_module.BaseOptions
MODE = vision_task_running_mode.VisionTaskRunningMode
DATA = "mediapipe/tasks/testdata/vision"
SCALE = 10  # golden category masks store category * 10
AGREEMENT = 0.98


def data_path(name):
    return test_utils.get_test_data_path(os.path.join(DATA, name))


def agrees(mask, golden):
    if not mask:
        raise ValueError("no mask")
    return np.mean(mask.numpy_view().astype(np.int32) * SCALE == golden.numpy_view()) >= AGREEMENT


def soft_iou(a, b):
    both = np.sum(a * b)
    return both / (np.sum(a * a) + np.sum(b * b) - both)


class ShapedImageSegmenterTest(unittest.TestCase):

    def setUp(self):
        self.image = Image.create_from_file(data_path("cat.png"))
        self.golden = Image(ImageFormat.GRAY8, cv2.imread(data_path("cat_golden.png"), cv2.IMREAD_GRAYSCALE))
        self.model = data_path("deeplabv3.tflite")

    def opts(self, **kwargs):
        return Options(base_options=Base(model_asset_path=self.model), **kwargs)

    def test_factories_and_model_forms(self):
        with Segmenter.create_from_model_path(self.model) as segmenter:
            self.assertIsInstance(segmenter, Segmenter)
        with open(self.model, "rb") as stream:
            by_bytes = Segmenter.create_from_options(Options(base_options=Base(model_asset_buffer=stream.read())))
        self.assertIsInstance(by_bytes, Segmenter)
        by_bytes.close()

    def test_invalid_model_path(self):
        for error in (RuntimeError, FileNotFoundError):
            with self.assertRaisesRegex(error, "Unable to open file at /path/to/invalid/model.tflite"):
                Segmenter.create_from_options(
                    Options(base_options=Base(model_asset_path="/path/to/invalid/model.tflite")))

    def test_category_mask_from_path_and_bytes(self):
        with open(self.model, "rb") as stream:
            content = stream.read()
        for base in (Base(model_asset_path=self.model), Base(model_asset_buffer=content)):
            with self.subTest(base=type(base.model_asset_buffer)):
                segmenter = Segmenter.create_from_options(
                    Options(base_options=base, output_category_mask=True, output_confidence_masks=False))
                result = segmenter.segment(self.image)
                self.assertIsNone(result.confidence_masks)
                self.assertEqual(result.category_mask.numpy_view().dtype, np.uint8)
                self.assertTrue(agrees(result.category_mask, self.golden))
                segmenter.close()

    def test_confidence_masks(self):
        with Segmenter.create_from_options(self.opts()) as segmenter:
            result = segmenter.segment(self.image)
        self.assertEqual(len(result.confidence_masks), 21)
        self.assertIsNone(result.category_mask)
        cat = (self.golden.numpy_view() == 8 * SCALE).astype(np.float32)
        self.assertGreater(soft_iou(result.confidence_masks[8].numpy_view(), cat), 0.9)

    def test_labels(self):
        for category, confidence in ((True, False), (False, True)):
            with Segmenter.create_from_options(
                    self.opts(output_category_mask=category, output_confidence_masks=confidence)) as segmenter:
                self.assertEqual(len(segmenter.labels), 21)
                self.assertListEqual(segmenter.labels[:2], ["background", "aeroplane"])

    def test_callback_rules(self):
        with self.assertRaisesRegex(ValueError, "result callback must be provided"):
            Segmenter.create_from_options(self.opts(running_mode=MODE.LIVE_STREAM))
        for mode in (MODE.IMAGE, MODE.VIDEO):
            with self.assertRaisesRegex(ValueError, "result callback should not be provided"):
                Segmenter.create_from_options(self.opts(running_mode=mode, result_callback=lambda *a: None))

    def test_wrong_methods(self):
        callback = lambda *a: None  # noqa: E731
        cases = [(MODE.IMAGE, None, "segment_for_video", "video"), (MODE.IMAGE, None, "segment_async", "live stream"),
                 (MODE.VIDEO, None, "segment", "image"), (MODE.VIDEO, None, "segment_async", "live stream"),
                 (MODE.LIVE_STREAM, callback, "segment", "image"),
                 (MODE.LIVE_STREAM, callback, "segment_for_video", "video")]
        for mode, cb, method, words in cases:
            with Segmenter.create_from_options(self.opts(running_mode=mode, result_callback=cb)) as segmenter:
                args = (self.image,) if method == "segment" else (self.image, 0)
                with self.assertRaisesRegex(ValueError, f"not initialized with the {words} mode"):
                    getattr(segmenter, method)(*args)

    def test_timestamps(self):
        with Segmenter.create_from_options(self.opts(running_mode=MODE.VIDEO)) as segmenter:
            segmenter.segment_for_video(self.image, 1)
            with self.assertRaisesRegex(ValueError, "Input timestamp must be monotonically increasing"):
                segmenter.segment_for_video(self.image, 0)
        with Segmenter.create_from_options(
                self.opts(running_mode=MODE.LIVE_STREAM, result_callback=lambda *a: None)) as segmenter:
            segmenter.segment_async(self.image, 100)
            with self.assertRaisesRegex(ValueError, "Input timestamp must be monotonically increasing"):
                segmenter.segment_async(self.image, 0)

    def test_video(self):
        with Segmenter.create_from_options(self.opts(running_mode=MODE.VIDEO, output_category_mask=True,
                                                     output_confidence_masks=False)) as segmenter:
            for timestamp in range(0, 300, 30):
                self.assertTrue(agrees(segmenter.segment_for_video(self.image, timestamp).category_mask, self.golden))

    def test_live_stream(self):
        seen, problems, done = [], [], threading.Event()

        def check(result, output_image, timestamp_ms):
            try:
                self.assertIsInstance(output_image, core_image.Image)
                self.assertEqual((output_image.width, output_image.height), (self.golden.width, self.golden.height))
                self.assertTrue(agrees(result.category_mask, self.golden))
                self.assertTrue(not seen or seen[-1] < timestamp_ms)
                seen.append(timestamp_ms)
            except AssertionError as exc:
                problems.append(exc)
            finally:
                done.set()

        live = self.opts(running_mode=MODE.LIVE_STREAM, output_category_mask=True, output_confidence_masks=False,
                         result_callback=check)
        with Segmenter.create_from_options(live) as segmenter:
            for timestamp in range(0, 300, 30):
                segmenter.segment_async(self.image, timestamp)
                done.wait(3)
                done.clear()
        if problems:
            raise problems[0]
        self.assertEqual(seen, list(range(0, 300, 30)))


if __name__ == "__main__":
    unittest.main()
