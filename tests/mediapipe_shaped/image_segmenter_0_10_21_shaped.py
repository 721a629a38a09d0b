"""Shaped like MediaPipe 0.10.21's published image_segmenter_test.py (segtool's own code).

What makes it that release's: absltest and parameterized; ``Image`` and ``ImageFormat`` from
``mediapipe.python._framework_bindings``; data through ``test_utils.get_test_data_path`` with
``mediapipe/tasks/testdata/vision/...`` paths; a missing model is a RuntimeError; the mode errors
are matched by their words; the live stream checks run in the callback without waiting for it.
tests/test_mediapipe_published.py copies it into a MediaPipe-like tree as image_segmenter_test.py
and runs it with ``mediapipe`` pointed at segtool (absltest main, and pytest collection).
"""
import os
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import cv2
import numpy as np

from mediapipe.python._framework_bindings import image as image_module
from mediapipe.python._framework_bindings import image_frame
from mediapipe.tasks.python.core import base_options as base_options_module
from mediapipe.tasks.python.test import test_utils
from mediapipe.tasks.python.vision import image_segmenter
from mediapipe.tasks.python.vision.core import vision_task_running_mode

Image = image_module.Image
ImageFormat = image_frame.ImageFormat
BaseOptions = base_options_module.BaseOptions
Segmenter = image_segmenter.ImageSegmenter
Options = image_segmenter.ImageSegmenterOptions
MODE = vision_task_running_mode.VisionTaskRunningMode
DATA = "mediapipe/tasks/testdata/vision"
SCALE = 10  # the golden category mask holds category * 10
AGREEMENT = 0.98
VOC = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv"]


def data(name):
    return test_utils.get_test_data_path(os.path.join(DATA, name))


def gray(name):
    return Image(ImageFormat.GRAY8, cv2.imread(data(name), cv2.IMREAD_GRAYSCALE))


def agrees(mask, golden):
    return np.mean(mask.numpy_view().flatten() * SCALE == golden.numpy_view().flatten()) >= AGREEMENT


def soft_iou(mask, expected):
    actual, wanted = mask.numpy_view(), expected.numpy_view() / 255.0
    both = np.sum(actual * wanted)
    return actual.shape == wanted.shape and both / (np.sum(actual ** 2) + np.sum(wanted ** 2) - both) > AGREEMENT


class ImageSegmenterTest(parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.image = Image.create_from_file(data("segmentation_input_rotation0.jpg"))
        self.golden = gray("segmentation_golden_rotation0.png")
        self.model = data("deeplabv3.tflite")

    def options(self, **kwargs):
        return Options(base_options=BaseOptions(model_asset_path=self.model), **kwargs)

    def test_factories(self):
        with Segmenter.create_from_model_path(self.model) as segmenter:
            self.assertIsInstance(segmenter, Segmenter)
        with open(self.model, "rb") as stream:
            base = BaseOptions(model_asset_buffer=stream.read())
        segmenter = Segmenter.create_from_options(Options(base_options=base))
        self.assertIsInstance(segmenter, Segmenter)
        segmenter.close()

    def test_missing_model_is_a_runtime_error(self):
        with self.assertRaisesRegex(RuntimeError, "Unable to open file at /path/to/invalid/model.tflite"):
            Segmenter.create_from_options(
                Options(base_options=BaseOptions(model_asset_path="/path/to/invalid/model.tflite")))

    @parameterized.parameters(("path",), ("bytes",))
    def test_category_mask(self, form):
        if form == "path":
            base = BaseOptions(model_asset_path=self.model)
        else:
            with open(self.model, "rb") as stream:
                base = BaseOptions(model_asset_buffer=stream.read())
        segmenter = Segmenter.create_from_options(
            Options(base_options=base, output_category_mask=True, output_confidence_masks=False))
        category_mask = segmenter.segment(self.image).category_mask
        self.assertEqual(category_mask.numpy_view().dtype, np.uint8)
        self.assertTrue(agrees(category_mask, self.golden))
        segmenter.close()

    def test_confidence_masks(self):
        cat = Image.create_from_file(data("cat.jpg"))
        with Segmenter.create_from_options(self.options(output_confidence_masks=True)) as segmenter:
            masks = segmenter.segment(cat).confidence_masks
        self.assertLen(masks, 21)
        self.assertEqual(masks[8].numpy_view().dtype, np.float32)
        self.assertTrue(soft_iou(masks[8], gray("cat_mask.jpg")))

    @parameterized.parameters((True, False), (False, True))
    def test_labels(self, category, confidence):
        with Segmenter.create_from_options(
                self.options(output_category_mask=category, output_confidence_masks=confidence)) as segmenter:
            self.assertListEqual(segmenter.labels, VOC)

    def test_callback_rules(self):
        with self.assertRaisesRegex(ValueError, r"result callback must be provided"):
            with Segmenter.create_from_options(self.options(running_mode=MODE.LIVE_STREAM)):
                pass
        for mode in (MODE.IMAGE, MODE.VIDEO):
            with self.assertRaisesRegex(ValueError, r"result callback should not be provided"):
                with Segmenter.create_from_options(self.options(running_mode=mode, result_callback=mock.MagicMock())):
                    pass

    @parameterized.parameters(
        (MODE.IMAGE, "segment_for_video", "video"), (MODE.IMAGE, "segment_async", "live stream"),
        (MODE.VIDEO, "segment", "image"), (MODE.VIDEO, "segment_async", "live stream"),
        (MODE.LIVE_STREAM, "segment", "image"), (MODE.LIVE_STREAM, "segment_for_video", "video"))
    def test_method_of_another_mode(self, mode, method, words):
        callback = mock.MagicMock() if mode is MODE.LIVE_STREAM else None
        with Segmenter.create_from_options(self.options(running_mode=mode, result_callback=callback)) as segmenter:
            arguments = (self.image,) if method == "segment" else (self.image, 0)
            with self.assertRaisesRegex(ValueError, rf"not initialized with the {words} mode"):
                getattr(segmenter, method)(*arguments)

    def test_timestamps_must_increase(self):
        with Segmenter.create_from_options(self.options(running_mode=MODE.VIDEO)) as segmenter:
            segmenter.segment_for_video(self.image, 1)
            with self.assertRaisesRegex(ValueError, r"Input timestamp must be monotonically increasing"):
                segmenter.segment_for_video(self.image, 0)
        live = self.options(running_mode=MODE.LIVE_STREAM, result_callback=mock.MagicMock())
        with Segmenter.create_from_options(live) as segmenter:
            segmenter.segment_async(self.image, 100)
            with self.assertRaisesRegex(ValueError, r"Input timestamp must be monotonically increasing"):
                segmenter.segment_async(self.image, 0)

    def test_video(self):
        video = self.options(running_mode=MODE.VIDEO, output_category_mask=True, output_confidence_masks=False)
        with Segmenter.create_from_options(video) as segmenter:
            for timestamp in range(0, 60, 30):
                self.assertTrue(agrees(segmenter.segment_for_video(self.image, timestamp).category_mask, self.golden))

    def test_live_stream(self):
        delivered = []

        def check(result, output_image, timestamp_ms):
            self.assertEqual((output_image.width, output_image.height), (self.golden.width, self.golden.height))
            self.assertTrue(agrees(result.category_mask, self.golden))
            self.assertTrue(not delivered or delivered[-1] < timestamp_ms)
            delivered.append(timestamp_ms)

        live = self.options(running_mode=MODE.LIVE_STREAM, output_category_mask=True, output_confidence_masks=False,
                            result_callback=check)
        with Segmenter.create_from_options(live) as segmenter:
            for timestamp in range(0, 60, 30):
                segmenter.segment_async(self.image, timestamp)
        self.assertNotEmpty(delivered)  # close() delivered the last frame at least; a failed check raised here


if __name__ == "__main__":
    absltest.main()
