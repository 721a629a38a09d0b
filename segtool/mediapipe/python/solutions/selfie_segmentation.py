"""The legacy ``mp.solutions.selfie_segmentation`` (MediaPipe removed it in 0.10.31), on segtool.

``SelfieSegmentation(model_selection=0|1).process(rgb)`` returns an object whose
``segmentation_mask`` is float32 (H, W): the person probability at the image's size, as MediaPipe
0.10.21's solution computes it with its own two models (converted to ONNX and shipped as
``legacy_selfie`` and ``legacy_selfie_landscape``): a stretch to the model's input with black
beyond the edges (the solution graph's BORDER_ZERO), the network, and a bilinear resize back.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segtool import registry
from segtool.postprocess import postprocess
from segtool.preprocess import image_to_tensor, validate_image
from segtool.runtime import InferenceSession

MODELS = {0: "legacy_selfie", 1: "legacy_selfie_landscape"}  # model_selection -> manifest name
CLOSED = "_graph is None in SelfieSegmentation"


class SolutionOutputs(NamedTuple):
    segmentation_mask: np.ndarray


class SelfieSegmentation:
    """Person segmentation of RGB images: ``model_selection`` 0 is the general (square) model,
    1 the landscape one (faster, for video calls). Use as a context manager or call ``close()``."""

    def __init__(self, model_selection: int = 0):
        if model_selection not in MODELS:
            raise ValueError(f"model_selection must be 0 (general) or 1 (landscape), not {model_selection!r}")
        model = registry.locate(MODELS[model_selection])
        registry.verify(model)
        self._spec = model.spec
        self._session = InferenceSession(model.path, device="cpu")

    def process(self, image: np.ndarray) -> SolutionOutputs:
        """``image``: RGB (H, W, 3), uint8 (or what segtool's segmenter accepts in that shape)."""
        if self._session is None:
            raise ValueError(CLOSED)
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError("Input image must contain three channel rgb data.")
        rgb = _rgb8(validate_image(array))
        spec = self._spec
        tensor = image_to_tensor(rgb, spec.input_size, mean=spec.mean, std=spec.std, border="zero")
        raw = self._session.run(tensor[None])[0]
        masks, _ = postprocess(raw, activation=spec.activation, image_size=rgb.shape[:2])
        return SolutionOutputs(segmentation_mask=masks[-1])

    def close(self) -> None:
        """Release the model; closing twice is fine (MediaPipe raised)."""
        self._session = None

    def __enter__(self) -> "SelfieSegmentation":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _rgb8(array: np.ndarray) -> np.ndarray:
    from segtool.io import to_rgb8

    return to_rgb8(array)
