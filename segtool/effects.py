"""Composites from an image and its confidence masks: one module for images, video frames and webcam.

``render(name, image, confidence_masks, options)`` is the whole interface: RGB uint8 (H, W, 3) and
float32 (C, H, W) masks in, a picture out (RGBA for the cut-out, grey uint8 for the alpha mask).
The mask is refined here (segtool/refine.py), for pictures only; mask files are written from the
segmenter's result and stay MediaPipe-exact.

Speed matters (a 1080p video frame has ~30 ms for everything): full-size work is done by OpenCV
kernels in 8-bit where the result is 8-bit anyway, and anything wide (the blur, the guided
filter's windows) at reduced size, where it costs little and loses nothing, its result being smooth.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from .errors import UsageError
from .postprocess import subject_classes, subject_probability
from .refine import Halvings, estimate_foreground, halve, refine_alpha

Color = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class Backdrop:
    """What ``replace`` puts behind the subject: a solid RGB colour, or an RGB uint8 picture scaled
    to cover the frame (centred, cropped, never stretched)."""

    color: Color = (255, 255, 255)
    picture: Optional[np.ndarray] = None

    def covering(self, height: int, width: int) -> np.ndarray:
        """RGB uint8 (height, width, 3); the same array for every frame of one size."""
        return _covering(self, height, width)


@dataclass(frozen=True)
class EffectOptions:
    """How composites are made; built once (by the CLI or an API caller) and reused for every frame.

    ``classes``: category indices that count as the subject (None: all but background, index 0).
    ``recolor_classes``: the categories ``recolor`` tints (None: ``classes``); the CLI sets the
    hair class. ``blur_strength`` scales the blur radius (1.0 is 1.2 % of the longer side).
    ``backdrop`` is for ``replace``, ``hair_color`` (RGB) for ``recolor``. ``refine`` turns the
    edge refinement on, and with it the foreground colour estimate of ``replace`` and ``cutout``.
    """

    classes: Optional[tuple[int, ...]] = None
    recolor_classes: Optional[tuple[int, ...]] = None
    blur_strength: float = 1.0
    backdrop: Optional[Backdrop] = None
    hair_color: Optional[Color] = None
    refine: bool = True

    def classes_for(self, name: str) -> Optional[tuple[int, ...]]:
        if name == "recolor" and self.recolor_classes is not None:
            return self.recolor_classes
        return self.classes


def render(name: str, image: np.ndarray, confidence_masks: Optional[np.ndarray], options: EffectOptions,
           subject: Optional[np.ndarray] = None) -> np.ndarray:
    """The composite ``name`` (one of COMPOSITES) of one RGB uint8 image or video frame.

    ``subject``: the subject alpha already added up from the masks of ``options.classes_for(name)``
    (SegmentationResult.subject_alpha); then ``confidence_masks`` is not read and may be None.
    """
    make = _COMPOSITES.get(name)
    if make is None:
        raise UsageError(f"unknown composite '{name}': choose one of {', '.join(COMPOSITES)}")
    halvings = Halvings(image)  # the refinement and the blur both shrink the frame: once
    alpha = composite_alpha(image, confidence_masks, options, name, halvings, subject)
    if options.refine and name in _NEW_BACKGROUND:
        # On a new background the old one must not show through the edge: the subject's own colours.
        image = estimate_foreground(image, alpha, halvings=halvings)
        halvings = Halvings(image)
    return make(image, alpha, options, halvings)


def composite_alpha(image: np.ndarray, confidence_masks: Optional[np.ndarray], options: EffectOptions,
                    name: str = "cutout", halvings: Optional[Halvings] = None,
                    subject: Optional[np.ndarray] = None) -> np.ndarray:
    """The subject alpha, float32 (H, W), that composite ``name`` uses: refined unless options.refine is off."""
    alpha = subject if subject is not None else subject_alpha(confidence_masks, options.classes_for(name))
    return refine_alpha(alpha, image, halvings=halvings) if options.refine else alpha


def subject_alpha(confidence_masks: np.ndarray, classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-pixel probability that the pixel belongs to the subject, float32 (H, W) in [0, 1]."""
    return subject_probability(confidence_masks, subject_classes(confidence_masks.shape[0], classes))


# ---- the composites -------------------------------------------------------------------------

def blur_background(image: np.ndarray, alpha: np.ndarray, strength: float = 1.0,
                    halvings: Optional[Halvings] = None) -> np.ndarray:
    """Subject sharp, background Gaussian-blurred; the subject's colours do not bleed outwards.

    A plain blur smears the subject into the background around it, a visible halo. This is a
    normalised convolution of the background alone: pixels are weighted by how surely they are
    background, so the blurred background next to the subject is made of background only.
    """
    height, width = alpha.shape
    sigma = max(1.0, 0.012 * max(height, width) * strength)
    weight = cv2.convertScaleAbs(alpha, alpha=255.0)  # the alpha at the 8-bit precision of the blend
    factor = _blur_factor(min(sigma, 0.012 * max(height, width)))
    # Shrinking by area already blurs by a box of ``factor`` pixels (variance factor^2 / 12).
    small_sigma = np.sqrt(max(sigma ** 2 - factor ** 2 / 12, 0.25)) / factor
    shrunk = (halvings or Halvings(image))(factor)
    background = _background_blurred(shrunk, halve(weight, factor), small_sigma)
    # The blurred background is smooth: bilinear upsampling of it loses nothing that shows.
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return _blend8(image, background, weight, out=background)


def _blur_factor(sigma: float, least_sigma: float = 2.0) -> int:
    """The largest power of two that leaves a Gaussian of ``sigma`` at least ``least_sigma`` px.

    A wide Gaussian is all low frequencies: blurred at 1/8 size (its sigma still 2 px or more
    there) and upsampled, it matches the full-size blur to within a level or two at a fraction
    of the cost (tests/test_blur_speed_look.py measures how close). The factor follows the
    default strength's sigma, not a stronger one: coarser grids would blur the background's
    weights around the subject, which shows.
    """
    factor = 1
    while sigma / (factor * 2) >= least_sigma:
        factor *= 2
    return factor


def _background_blurred(colour: np.ndarray, subject: np.ndarray, sigma: float) -> np.ndarray:
    """The normalised convolution of the background, uint8: sum(w * colour) / sum(w), w = (1 - alpha)^2.

    Squared, so that edge pixels, half subject, carry little of the subject's colour outwards.
    Deep inside the subject no background is near; a trace of every pixel (``_FILL``) fills in
    there (unseen wherever alpha is 1) instead of a division by nothing. Colour times weight and
    the weight are blurred together, as one premultiplied 4-channel image; the kernel reaches
    3 sigma (what lies beyond is 0.3 % of its weight, and the result is normalised anyway).
    """
    weight = _BACKGROUND_WEIGHT[subject]
    premultiplied = cv2.cvtColor(colour, cv2.COLOR_RGB2RGBA).astype(np.float32)
    premultiplied[:, :, 3] = 1.0
    premultiplied *= weight[:, :, None]
    reach = 2 * int(np.ceil(3 * sigma)) + 1
    red, green, blue, total = cv2.split(cv2.GaussianBlur(premultiplied, (reach, reach), sigma))
    return cv2.convertScaleAbs(cv2.merge([cv2.divide(red, total), cv2.divide(green, total),
                                          cv2.divide(blue, total)]))


_FILL = 1e-3
# The background weight (1 - alpha)^2 + fill for each 8-bit alpha.
_BACKGROUND_WEIGHT = np.square(1.0 - np.arange(256, dtype=np.float32) / np.float32(255)) + np.float32(_FILL)


def replace_background(image: np.ndarray, alpha: np.ndarray, backdrop: Backdrop) -> np.ndarray:
    height, width = alpha.shape
    return blend(image, backdrop.covering(height, width), alpha)


def cut_out(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA uint8, straight alpha: ``image``'s colours (render gives it the estimated foreground's)."""
    return cv2.merge([image, alpha_mask(alpha)])


def alpha_mask(alpha: np.ndarray) -> np.ndarray:
    """uint8 (H, W): alpha to 8 bits, rounded; the cut-out's alpha channel is this same array."""
    return cv2.convertScaleAbs(alpha, alpha=255.0)


def recolor(image: np.ndarray, alpha: np.ndarray, color: Color) -> np.ndarray:
    """Tint the masked region toward ``color``, keeping each pixel's lightness (its shading).

    In CIELAB, L (lightness) is kept and the chroma (a, b) becomes the target's, scaled down in
    pixels darker than the target, as a dye shows less in shadow (which also keeps dark hair in
    the RGB gamut). The result depends on L alone, so it is one 256-entry table per colour.
    """
    rows, cols = _support(alpha)
    if rows.start == rows.stop:
        return image.copy()
    region = image[rows, cols]
    lightness = cv2.extractChannel(cv2.cvtColor(region, cv2.COLOR_RGB2LAB), 0)
    # Three 1-channel lookups, merged, cost half of one 3-channel lookup.
    tinted = cv2.merge([cv2.LUT(lightness, table) for table in _tint_table(tuple(int(c) for c in color))])
    recoloured = blend(tinted, region, alpha[rows, cols])
    if recoloured.shape == image.shape:
        return recoloured
    out = image.copy()
    out[rows, cols] = recoloured
    return out


@functools.lru_cache(maxsize=16)
def _tint_table(color: Color) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three (256,) uint8 tables: the tinted R, G and B for each 8-bit Lab lightness.

    The chroma is also capped to what RGB can show at that lightness along the target's hue;
    past it, clipping would change the lightness that the recolouring promises to keep.
    """
    target = cv2.cvtColor(np.float32([[color]]) / 255.0, cv2.COLOR_RGB2LAB)[0, 0]
    lightness = np.arange(256, dtype=np.float32) * (100.0 / 255.0)
    shade = np.clip(lightness / max(float(target[0]), 1.0), 0.0, 1.0)
    scales = np.linspace(0.0, 1.0, 65, dtype=np.float32)
    trial = np.empty((256, scales.size, 3), np.float32)
    trial[:, :, 0] = lightness[:, None]
    trial[:, :, 1:] = scales[None, :, None] * target[1:]
    # OpenCV clips out-of-gamut results silently: a colour is inside if it survives a round trip.
    round_trip = cv2.cvtColor(cv2.cvtColor(trial, cv2.COLOR_LAB2RGB), cv2.COLOR_RGB2LAB)
    inside = np.abs(round_trip - trial).max(axis=2) < 0.5
    # The largest scale before the first one that leaves the gamut (grey, scale 0, is inside).
    last_inside = np.where(inside.all(axis=1), scales.size - 1, np.argmin(inside, axis=1) - 1)
    reach = scales[np.maximum(last_inside, 0)]
    lab = np.stack([lightness, *(np.minimum(shade, reach)[None] * target[1:, None])], axis=1)
    rgb = cv2.cvtColor(lab[:, None, :].astype(np.float32), cv2.COLOR_LAB2RGB)[:, 0]
    return tuple(np.ascontiguousarray(channel) for channel in np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).T)


def blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """foreground * alpha + background * (1 - alpha) as uint8: exact where alpha rounds to 0 or 1.

    In 8-bit integer arithmetic, alpha taken to 1/255 as the picture's own precision is: within
    one level of the float blend, at less than half the cost of cv2.blendLinear.
    """
    return _blend8(foreground, background, cv2.convertScaleAbs(alpha, alpha=255.0))


def _blend8(foreground: np.ndarray, background: np.ndarray, weight: np.ndarray,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """``blend`` with alpha as uint8 ``weight`` (255 = 1), into ``out`` (default: a copy of the
    background; it may be the background itself).

    A refined edge leaves few pixels of partial weight: the foreground is copied where the weight
    is 255, and only those few are blended (gathered, blended, put back: 3x faster at 1080p than
    blending the subject's whole extent). A soft mask (unrefined, or a recolour's) is blended
    span by span as before. Either way the pixels are the same.
    """
    out = background.copy() if out is None else out
    partial = cv2.inRange(weight, 1, 254)
    if cv2.countNonZero(partial) > weight.size // 32:
        for rows, cols in _weighted_spans(weight):
            _blend_levels(foreground[rows, cols], background[rows, cols], weight[rows, cols], out=out[rows, cols])
        return out
    # inRange, not compare(weight, 255): OpenCV would read a 1x1 weight beside a number as a scalar.
    cv2.copyTo(foreground, cv2.inRange(weight, 255, 255), out)
    points = cv2.findNonZero(partial)
    if points is not None:
        at = _Pixels(points)
        at.put(out, _blend_levels(at.take(foreground), at.take(background), at.take(weight)))
    return out


class _Pixels:
    """Scattered pixels of equal-sized pictures, taken out as a column (N, 1[, 3]) and put back:
    by flat index where a picture is contiguous (5x faster than numpy's 2-d fancy indexing)."""

    def __init__(self, points: np.ndarray):
        self.xs, self.ys = points.reshape(-1, 2).T
        self._flat = None

    def _index(self, picture: np.ndarray):
        if not picture.flags.c_contiguous:
            return None
        if self._flat is None:
            self._flat = self.ys.astype(np.intp) * picture.shape[1] + self.xs
        return self._flat

    def take(self, picture: np.ndarray) -> np.ndarray:
        flat = self._index(picture)
        if flat is None:
            return picture[self.ys, self.xs][:, None]
        return np.take(picture.reshape(-1, *picture.shape[2:]), flat, axis=0)[:, None]

    def put(self, picture: np.ndarray, values: np.ndarray) -> None:
        flat = self._index(picture)
        if flat is None:
            picture[self.ys, self.xs] = values[:, 0]
        else:
            picture.reshape(-1, *picture.shape[2:])[flat] = values[:, 0]


def _blend_levels(foreground: np.ndarray, background: np.ndarray, weight: np.ndarray,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """foreground * w + background * (255 - w), each rounded /255, into ``out`` (default: new)."""
    share = cv2.cvtColor(weight, cv2.COLOR_GRAY2RGB)
    return cv2.add(cv2.multiply(foreground, share, scale=1 / 255),
                   cv2.multiply(background, cv2.bitwise_not(share), scale=1 / 255), dst=out)


def _weighted_spans(weight: np.ndarray, band: int = 64):
    """(rows, cols) per band of ``band`` rows: the columns where any weight is not 0. A subject
    rarely fills its bounding box (a head is narrower than the shoulders); thinner bands fit it
    closer but cost more calls than they save."""
    for top in range(0, weight.shape[0], band):
        left, _, span, _ = cv2.boundingRect(weight[top:top + band])
        if span:
            yield slice(top, min(top + band, weight.shape[0])), slice(left, left + span)


def _support(alpha: np.ndarray, floor: float = 1.0 / 512) -> tuple[slice, slice]:
    """The bounding box of the pixels with any weight: recolouring hair need not convert a frame."""
    weighty = alpha > floor
    rows, cols = np.flatnonzero(weighty.any(axis=1)), np.flatnonzero(weighty.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@functools.lru_cache(maxsize=4)
def _covering(backdrop: Backdrop, height: int, width: int) -> np.ndarray:
    # Cached: a video asks for the same size every frame, and the resize is the costly part.
    if backdrop.picture is None:
        return np.full((height, width, 3), backdrop.color, np.uint8)
    picture = backdrop.picture
    scale = max(height / picture.shape[0], width / picture.shape[1])
    size = (max(width, round(picture.shape[1] * scale)), max(height, round(picture.shape[0] * scale)))
    shrinking = scale < 1.0
    resized = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def _needs(value, composite: str, field: str):
    if value is None:
        raise UsageError(f"the {composite} composite needs EffectOptions.{field}")
    return value


_COMPOSITES: dict[str, Callable[[np.ndarray, np.ndarray, EffectOptions, Halvings], np.ndarray]] = {
    "blur": lambda image, alpha, o, halvings: blur_background(image, alpha, o.blur_strength, halvings),
    "replace": lambda image, alpha, o, _: replace_background(image, alpha, _needs(o.backdrop, "replace", "backdrop")),
    "cutout": lambda image, alpha, o, _: cut_out(image, alpha),
    "recolor": lambda image, alpha, o, _: recolor(image, alpha, _needs(o.hair_color, "recolor", "hair_color")),
    "alpha": lambda image, alpha, o, _: alpha_mask(alpha),
}
COMPOSITES = tuple(_COMPOSITES)
_NEW_BACKGROUND = ("replace", "cutout")  # composites that show the subject without its own background
