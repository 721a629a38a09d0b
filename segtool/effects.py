"""Composites from an image and its confidence masks: the same code for images and video frames."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from .errors import UsageError


@dataclass(frozen=True)
class EffectOptions:
    """``classes``: category indices that count as the subject (default: all but background 0)."""

    classes: Optional[tuple[int, ...]] = None
    blur_strength: float = 1.0


def subject_alpha(confidence_masks: np.ndarray, classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-pixel probability that the pixel belongs to the subject, float32 (H, W) in [0, 1]."""
    count = confidence_masks.shape[0]
    chosen = list(classes) if classes is not None else list(range(1, count))
    if not chosen or any(not 0 <= c < count for c in chosen):
        raise UsageError(f"classes {chosen} do not fit a model with {count} categories")
    if len(chosen) == 1:
        return confidence_masks[chosen[0]]
    return np.clip(confidence_masks[chosen].sum(axis=0), 0.0, 1.0)


def blur_background(image: np.ndarray, alpha: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Subject sharp, background Gaussian-blurred; the subject's colours do not bleed outwards.

    The blur is a normalised convolution of the background alone (the subject weighted out),
    computed at reduced resolution because a wide Gaussian is mostly low frequencies anyway.
    """
    height, width = alpha.shape
    sigma = max(1.0, 0.012 * max(height, width) * strength)
    scale = min(1.0, 8.0 / sigma)
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    background_weight = 1.0 - alpha
    small_image = cv2.resize(image.astype(np.float32) * background_weight[:, :, None], small_size,
                             interpolation=cv2.INTER_AREA)
    small_weight = cv2.resize(background_weight, small_size, interpolation=cv2.INTER_AREA)
    small_sigma = sigma * scale
    blurred = cv2.GaussianBlur(small_image, (0, 0), small_sigma)
    weight = cv2.GaussianBlur(small_weight, (0, 0), small_sigma)
    background = blurred / np.maximum(weight, 1e-3)[:, :, None]
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return blend(image, background, alpha)


def blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[:, :, None]
    out = foreground.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


COMPOSITES = {"blur": lambda image, alpha, options: blur_background(image, alpha, options.blur_strength)}


def composite(name: str, image: np.ndarray, confidence_masks: np.ndarray, options: EffectOptions) -> np.ndarray:
    if name not in COMPOSITES:
        raise UsageError(f"unknown composite '{name}': choose one of {', '.join(COMPOSITES)}")
    alpha = subject_alpha(confidence_masks, options.classes)
    return COMPOSITES[name](image, alpha, options)
