"""Shaped like the newest published image_segmenter_test.py (segtool's own code).

What the newer releases changed, and this checks: ``Image`` and ``ImageFormat`` come from
``mediapipe.tasks.python.vision.core.image``; a missing model is a FileNotFoundError; masks are
tested for truth (``if not mask``) before use; mode errors are any ValueError; the live stream
test waits up to 3 s for each callback (``threading.Event``) and re-raises what failed in it.
tests/test_mediapipe_published.py runs it as image_segmenter_newest_test.py through the alias.
"""
import os
import threading
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import cv2
import numpy as np

from mediapipe.tasks.python.core import base_options as base_options_module
from mediapipe.tasks.python.test import test_utils
from mediapipe.tasks.python.vision import image_segmenter
from mediapipe.tasks.python.vision.core import image as image_module
from mediapipe.tasks.python.vision.core import vision_task_running_mode

ImageSegmenterResult = image_segmenter.ImageSegmenterResult
Image = image_module.Image
ImageFormat = image_module.ImageFormat
BaseOptions = base_options_module.BaseOptions
Segmenter = image_segmenter.ImageSegmenter
Options = image_segmenter.ImageSegmenterOptions
MODE = vision_task_running_mode.VisionTaskRunningMode
DATA = "mediapipe/tasks/testdata/vision"
SCALE = 10
AGREEMENT = 0.98


def data(name):
    return test_utils.get_test_data_path(os.path.join(DATA, name))


def gray(name):
    return Image(ImageFormat.GRAY8, cv2.imread(data(name), cv2.IMREAD_GRAYSCALE))


def agrees(mask, golden):
    if not mask:
        raise ValueError("no mask to compare")
    return np.mean(mask.numpy_view().flatten() * SCALE == golden.numpy_view().flatten()) >= AGREEMENT


def soft_iou(mask, expected):
    if not mask:
        raise ValueError("no mask to compare")
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

    def test_missing_model_is_file_not_found(self):
        with self.assertRaisesRegex(FileNotFoundError, "Unable to open file at /path/to/invalid/model.tflite"):
            segmenter = Segmenter.create_from_options(
                Options(base_options=BaseOptions(model_asset_path="/path/to/invalid/model.tflite")))
            segmenter.close()

    def test_masks_are_true_and_match(self):
        with open(self.model, "rb") as stream:
            base = BaseOptions(model_asset_buffer=stream.read())
        with Segmenter.create_from_options(
                Options(base_options=base, output_category_mask=True, output_confidence_masks=False)) as segmenter:
            result = segmenter.segment(self.image)
        self.assertIsNone(result.confidence_masks)
        self.assertTrue(agrees(result.category_mask, self.golden))
        cat = Image.create_from_file(data("cat.jpg"))
        with Segmenter.create_from_options(self.options()) as segmenter:
            masks = segmenter.segment(cat).confidence_masks
        self.assertLen(masks, 21)
        self.assertTrue(soft_iou(masks[8], gray("cat_mask.jpg")))

    @parameterized.parameters(
        (MODE.IMAGE, "segment_for_video"), (MODE.IMAGE, "segment_async"), (MODE.VIDEO, "segment"),
        (MODE.VIDEO, "segment_async"), (MODE.LIVE_STREAM, "segment"), (MODE.LIVE_STREAM, "segment_for_video"))
    def test_method_of_another_mode(self, mode, method):
        callback = mock.MagicMock() if mode is MODE.LIVE_STREAM else None
        with Segmenter.create_from_options(self.options(running_mode=mode, result_callback=callback)) as segmenter:
            with self.assertRaises(ValueError):
                getattr(segmenter, method)(*((self.image,) if method == "segment" else (self.image, 0)))

    def test_out_of_order_video_timestamp(self):
        with Segmenter.create_from_options(self.options(running_mode=MODE.VIDEO)) as segmenter:
            segmenter.segment_for_video(self.image, 1)
            with self.assertRaises(ValueError):
                segmenter.segment_for_video(self.image, 0)

    @parameterized.parameters((True,), (False,))
    def test_live_stream_waiting_for_each_callback(self, category):
        test_image = self.image if category else Image.create_from_file(data("cat.jpg"))
        cat_mask = gray("cat_mask.jpg")
        event, failure, delivered = threading.Event(), [], []

        def check(result: ImageSegmenterResult, output_image: Image, timestamp_ms: int):
            try:
                self.assertEqual((output_image.width, output_image.height), (test_image.width, test_image.height))
                if category:
                    self.assertTrue(agrees(result.category_mask, self.golden))
                else:
                    self.assertLen(result.confidence_masks, 21)
                    self.assertTrue(soft_iou(result.confidence_masks[8], cat_mask))
                self.assertTrue(not delivered or delivered[-1] < timestamp_ms)
                delivered.append(timestamp_ms)
            except AssertionError as exc:
                failure.append(exc)
            finally:
                event.set()

        live = self.options(running_mode=MODE.LIVE_STREAM, output_category_mask=category,
                            output_confidence_masks=not category, result_callback=check)
        with Segmenter.create_from_options(live) as segmenter:
            for timestamp in range(0, 90, 30):
                segmenter.segment_async(test_image, timestamp)
                self.assertTrue(event.wait(3), f"no callback within 3 s for frame {timestamp}")
                if failure:
                    raise failure[0]
                event.clear()
        self.assertEqual(delivered, [0, 30, 60])


if __name__ == "__main__":
    absltest.main()
