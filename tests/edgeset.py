"""Composites with a known true edge, made from package-shipped photos, and how a cut-out scores.

There is no hand-made matte here, so the ground truth is made: a subject is cut from a real photo
along a shape with a hard, 1-px antialiased edge and pasted onto another real background (a photo,
a texture, a flat colour or a high-contrast pattern). The pasted boundary is then the true edge
of the composite, and the true alpha and foreground colours are known exactly.

The shape is the segmenter's own view of the subject (its mask of the subject photo, cut at 0.5)
with fine detail added along the edge: wiggles a few pixels wide, below the model's 256 px grid,
as hair and clothing have. A model run on the composite sees the subject but not that detail;
a refinement that follows the picture's colour edges can.

Used by ``scripts/bench_edges.py`` (the BENCHMARKS.md table) and by the tests; nothing here is
committed as an image, it is all generated from ``skimage.data`` and matplotlib's sample data.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import cv2
import numpy as np

REFERENCE_WIDTH = 1920
BAND_AT_REFERENCE = 24  # px each side of the true edge, at 1920 px wide
DETAIL_SIGMA = 2.5  # px at 1920 wide: the scale of the edge detail the model cannot see
DETAIL_AMPLITUDE = 0.22  # in confidence units, added to the model's mask before the cut


def _grace_hopper() -> np.ndarray:
    import imageio.v3 as iio
    from matplotlib import cbook

    return iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        picture = getattr(data, name)()
        return cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB) if picture.ndim == 2 else picture[:, :, :3]
    return load


@dataclass(frozen=True)
class Subject:
    """A photo, the model that finds its subject, and the categories that make the subject."""

    load: Callable[[], np.ndarray]
    model: str = "selfie"
    classes: Optional[tuple[int, ...]] = None


SUBJECTS = {
    "astronaut": Subject(_skimage("astronaut")),
    "grace_hopper": Subject(_grace_hopper),
    "camera": Subject(_skimage("camera")),  # the cameraman, grey, against a pale sky
    "chelsea": Subject(_skimage("chelsea"), model="deeplab", classes=(8,)),  # PASCAL VOC 'cat'
}


def _flat(rgb) -> Callable[[int, int], np.ndarray]:
    return lambda height, width: np.full((height, width, 3), rgb, np.uint8)


def _checker(height: int, width: int) -> np.ndarray:
    square = max(4, width // 60)
    rows, cols = np.indices((height, width)) // square
    return np.where(((rows + cols) % 2)[:, :, None] == 1, np.uint8(235), np.uint8(20)).repeat(3, axis=2)


def _stripes(height: int, width: int) -> np.ndarray:
    """Diagonal red and cyan stripes: strong edges in every direction next to the subject."""
    period = max(6, width // 80)
    rows, cols = np.indices((height, width))
    on = ((rows + cols) // period) % 2 == 1
    return np.where(on[:, :, None], np.uint8([230, 40, 40]), np.uint8([30, 200, 210]))


def _photo(name: str) -> Callable[[int, int], np.ndarray]:
    def make(height: int, width: int) -> np.ndarray:
        picture = _skimage(name)() if name != "grace_hopper" else _grace_hopper()
        return cover(picture, height, width)
    return make


BACKGROUNDS: dict[str, Callable[[int, int], np.ndarray]] = {
    "coffee": _photo("coffee"),
    "rocket": _photo("rocket"),
    "gravel": _photo("gravel"),  # a fine, busy texture
    "checker": _checker,
    "stripes": _stripes,
    "black": _flat((0, 0, 0)),
    "white": _flat((255, 255, 255)),
    "green": _flat((0, 177, 64)),
}


def cover(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """``picture`` scaled to cover (height, width), centred and cropped."""
    scale = max(height / picture.shape[0], width / picture.shape[1])
    size = (max(width, round(picture.shape[1] * scale)), max(height, round(picture.shape[0] * scale)))
    resized = cv2.resize(picture, size, interpolation=cv2.INTER_CUBIC)
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


# ---- one composite with its truth ---------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Scene:
    """A composite and its truth.

    ``image``: RGB uint8 (H, W, 3). ``alpha``: the true alpha, float32 (H, W) in [0, 1].
    ``foreground``: the subject's true colours, RGB uint8, extended outside the subject by the
    nearest subject pixel's colour (the colour a pixel shown as subject there should have).
    ``band``: bool (H, W), the pixels within ``BAND_AT_REFERENCE`` (scaled) of the true edge.
    """

    name: str
    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    band: np.ndarray
    subject: Subject


def scenes(subjects: Iterable[str] = tuple(SUBJECTS), backgrounds: Iterable[str] = tuple(BACKGROUNDS),
           width: int = REFERENCE_WIDTH, segment=None) -> Iterator[Scene]:
    """Every subject on every background, at ``width`` x 9/16 of it.

    ``segment(image, model)`` -> confidence masks (C, H, W); by default segtool's segmenter.
    """
    segment = segment or segment_with_segtool
    backgrounds = tuple(backgrounds)
    for subject_name in subjects:
        subject = SUBJECTS[subject_name]
        height = round(width * 9 / 16)
        foreground, alpha = cut_subject(subject_name, subject, height, width, segment)
        band = edge_band(alpha)
        for background_name in backgrounds:
            background = BACKGROUNDS[background_name](height, width)
            image = paste(foreground, background, alpha)
            yield Scene(f"{subject_name} on {background_name}", image, alpha, foreground, band, subject)


def cut_subject(name: str, subject: Subject, height: int, width: int, segment):
    """(foreground RGB uint8 (H, W, 3), true alpha float32 (H, W)) for a frame of that size.

    The photo is scaled to the frame's height and stands at the bottom centre; its true shape
    is the model's mask of it, cut at 0.5, with seeded detail along the edge.
    """
    photo = subject.load()
    photo_width = min(width, round(photo.shape[1] * height / photo.shape[0]))
    photo = cv2.resize(photo, (photo_width, height), interpolation=cv2.INTER_CUBIC)
    confidence = _subject_confidence(segment(photo, subject.model), subject.classes)
    left = (width - photo_width) // 2
    level = np.full((height, width), -0.5, np.float32)  # outside the photo: surely not subject
    detail = _edge_detail(name, (height, photo_width), width / REFERENCE_WIDTH)
    # Only where the model is unsure: far from its edge the detail fades, leaving no specks.
    level[:, left:left + photo_width] = confidence - 0.5 + detail * (4.0 * confidence * (1.0 - confidence))
    alpha = antialiased_cut(level)
    placed = np.zeros((height, width, 3), np.uint8)
    placed[:, left:left + photo_width] = photo
    return extend_colours(placed, alpha >= 0.5), alpha


def _subject_confidence(masks: np.ndarray, classes) -> np.ndarray:
    chosen = list(classes) if classes is not None else list(range(1, masks.shape[0]))
    return np.clip(masks[chosen].sum(axis=0), 0.0, 1.0).astype(np.float32)


def _edge_detail(name: str, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth noise, the same for a subject every run (seeded by its name), a few px across."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), DETAIL_SIGMA * scale)
    return noise * (DETAIL_AMPLITUDE / max(float(noise.std()), 1e-6))


def antialiased_cut(level: np.ndarray) -> np.ndarray:
    """Alpha of the region level > 0 with a 1-px antialiased edge: coverage of each pixel by it.

    ``level / |grad level|`` is the signed distance to the zero crossing (in px) near it, so a
    pixel the edge crosses gets the share of it on the subject's side.
    """
    gx = cv2.Sobel(level, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(level, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    distance = level / np.maximum(np.hypot(gx, gy), 1e-6)
    return np.clip(distance + 0.5, 0.0, 1.0).astype(np.float32)


def paste(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    weight = alpha[:, :, None]
    mixed = foreground.astype(np.float32) * weight + background.astype(np.float32) * (1.0 - weight)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def extend_colours(colours: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Every pixel outside ``inside`` gets the colour of the nearest pixel inside it."""
    if not inside.any():
        return colours.copy()
    outside = (~inside).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(outside, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    by_label = np.zeros((labels.max() + 1, 3), np.uint8)
    by_label[labels[inside]] = colours[inside]
    return by_label[labels]


def edge_band(alpha: np.ndarray, reach: Optional[float] = None) -> np.ndarray:
    """Pixels within ``reach`` px (default 24 at 1920 wide, scaled) of the true edge."""
    reach = reach if reach is not None else BAND_AT_REFERENCE * alpha.shape[1] / REFERENCE_WIDTH
    inside = (alpha >= 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    edge |= (alpha > 0) & (alpha < 1)
    distance = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 5)
    return distance <= reach


# ---- scoring ------------------------------------------------------------------------------

@dataclass(frozen=True)
class EdgeScore:
    """Alpha errors in the band, as fractions of full alpha; colour error in 8-bit levels.

    ``error``: mean |alpha - truth|; ``halo``: mean of the alpha beyond the truth (subject shown
    where there is none); ``bite``: mean of the alpha short of it (subject missing); error =
    halo + bite. ``colour``: mean |RGB - true foreground| over the band, each pixel weighted by
    the alpha it is shown with: the old background's colour in a fringe counts against it.
    ``fringe``: the same, over the band's pixels outside the true subject only.
    """

    error: float
    halo: float
    bite: float
    colour: float
    fringe: float


def score(alpha: np.ndarray, colours: np.ndarray, scene: Scene) -> EdgeScore:
    """How a cut-out (alpha float in [0, 1] or uint8, RGB uint8) matches the scene's truth."""
    if alpha.dtype == np.uint8:
        alpha = alpha.astype(np.float32) / 255.0
    band = scene.band
    shown, truth = alpha[band].astype(np.float64), scene.alpha[band].astype(np.float64)
    over = np.maximum(shown - truth, 0.0)
    under = np.maximum(truth - shown, 0.0)
    off = np.abs(colours[band].astype(np.float64) - scene.foreground[band]).mean(axis=1)
    outside = truth < 0.5
    return EdgeScore(error=float((over + under).mean()), halo=float(over.mean()), bite=float(under.mean()),
                     colour=_weighted(off, shown), fringe=_weighted(off[outside], shown[outside]))


def _weighted(values: np.ndarray, weights: np.ndarray) -> float:
    return float((values * weights).sum() / max(weights.sum(), 1e-9))


def mean_scores(scores: Iterable[EdgeScore]) -> EdgeScore:
    scores = list(scores)
    return EdgeScore(*(float(np.mean([getattr(s, f) for s in scores])) for f in ("error", "halo", "bite", "colour", "fringe")))


# ---- the segmenter ------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _segmenter(model: str):
    from segtool.options import ImageSegmenterOptions
    from segtool.segmenter import ImageSegmenter

    return ImageSegmenter.create_from_options(ImageSegmenterOptions(model=model, num_threads=1))


def segment_with_segtool(image: np.ndarray, model: str) -> np.ndarray:
    return _segmenter(model).segment(image).confidence_masks
