"""Shaped like MediaPipe's published legacy selfie_segmentation_test.py (segtool's own code).

Like it: absltest and named parameters, the solution from
``mediapipe.python.solutions.selfie_segmentation``, ``testdata/portrait`` beside this file, read
with OpenCV, the mask drawn over the photo into the temporary folder. (The published file calls
``tempfile`` without importing it, so its two drawing tests fail with NameError under MediaPipe
0.10.21 too; this one imports it.) Beyond it: the docs' ``mp.solutions.drawing_utils`` line and the
masks against MediaPipe 0.10.21's, recorded in ``testdata/expected.npz`` by
tests/test_mediapipe_published.py from tests/fixtures/mediapipe_compat.npz.
"""
import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import cv2
import numpy as np

import mediapipe as mp
from mediapipe.python.solutions import selfie_segmentation as mp_selfie_segmentation

HERE = os.path.dirname(__file__)


class SelfieSegmentationTest(parameterized.TestCase):

    def _draw(self, frame, mask):
        frame = np.minimum(frame, np.stack((mask,) * 3, axis=-1))
        path = os.path.join(tempfile.gettempdir(), self.id().split(".")[-1] + ".png")
        self.assertTrue(cv2.imwrite(path, frame))
        os.remove(path)

    def test_docs_sample_names(self):
        self.assertIs(mp.solutions.selfie_segmentation, mp_selfie_segmentation)
        spec = mp.solutions.drawing_utils.DrawingSpec(color=(0, 255, 0), thickness=1)
        self.assertEqual((spec.color, spec.thickness, spec.circle_radius), ((0, 255, 0), 1, 2))

    def test_invalid_image_shape(self):
        with mp_selfie_segmentation.SelfieSegmentation() as selfie_segmentation:
            with self.assertRaisesRegex(ValueError, "Input image must contain three channel rgb data."):
                selfie_segmentation.process(np.arange(36, dtype=np.uint8).reshape(3, 3, 4))

    def test_blank_image(self):
        with mp_selfie_segmentation.SelfieSegmentation() as selfie_segmentation:
            image = np.full([100, 100, 3], 255, dtype=np.uint8)
            mask = selfie_segmentation.process(image).segmentation_mask
            self.assertLess(np.amax((mask * 255).astype(int)), 1)

    @parameterized.named_parameters(("general", 0), ("landscape", 1))
    def test_segmentation(self, model_selection):
        image = cv2.imread(os.path.join(HERE, "testdata/portrait.png"))
        expected = np.load(os.path.join(HERE, "testdata/expected.npz"))[f"model_selection_{model_selection}"]
        with mp_selfie_segmentation.SelfieSegmentation(model_selection=model_selection) as selfie_segmentation:
            mask = selfie_segmentation.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).segmentation_mask
        self.assertEqual((mask.dtype, mask.shape), (np.float32, image.shape[:2]))
        self.assertLessEqual(float(np.abs(mask - expected).max()), 1e-3)
        self._draw(image.copy(), (mask * 255).astype(int))


if __name__ == "__main__":
    absltest.main()
