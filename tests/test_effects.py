"""Composites on real, package-shipped photographs, with masks shaped like a model's output.

The masks are made the way a segmenter's are: a soft shape on a coarse grid, bilinearly
upsampled to the photo, so each has a confident inside, a confident outside and a soft ramp.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtool import effects
from segtool.errors import UsageError

skimage_data = pytest.importorskip("skimage.data")
cbook = pytest.importorskip("matplotlib.cbook")

EXACT = 1.0 - 1.0 / 512  # alpha above this rounds to the subject's own pixel value
NONE = 1.0 / 512  # and below this to the background's


def _grace_hopper() -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


PHOTOS = {
    "astronaut": skimage_data.astronaut,
    "chelsea": skimage_data.chelsea,
    "coffee": skimage_data.coffee,
    "grace_hopper": _grace_hopper,
}


def model_like_mask(shape: tuple[int, int], grid: int = 64) -> np.ndarray:
    """An off-centre ellipse drawn on a coarse grid and upsampled, like a 256 px model's mask."""
    coarse = np.zeros((grid, grid), np.float32)
    cv2.ellipse(coarse, (grid // 2, grid * 3 // 5), (grid // 4, grid * 2 // 5), 15, 0, 360, 1.0, -1)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 1.0)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def as_masks(subject: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - subject, subject]).astype(np.float32)


@pytest.fixture(params=sorted(PHOTOS))
def photo(request):
    image = np.ascontiguousarray(PHOTOS[request.param]()[:, :, :3])
    return image, model_like_mask(image.shape[:2])


def used_alpha(subject: np.ndarray, image: np.ndarray, refine: bool) -> np.ndarray:
    return effects.refine_alpha(subject, image) if refine else subject


def options(refine: bool, **fields) -> effects.EffectOptions:
    fields.setdefault("backdrop", effects.Backdrop(color=(0, 177, 64)))
    fields.setdefault("hair_color", (40, 90, 220))
    return effects.EffectOptions(refine=refine, **fields)


# ---- the subject stays, the background goes ----------------------------------------------------

@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("name", ["blur", "replace"])
def test_subject_pixels_unchanged_where_confident(photo, name, refine):
    image, subject = photo
    out = effects.render(name, image, as_masks(subject), options(refine))
    sure = used_alpha(subject, image, refine) > EXACT
    assert sure.mean() > 0.1
    np.testing.assert_array_equal(out[sure], image[sure])


@pytest.mark.parametrize("refine", [True, False])
def test_blur_changes_the_background(photo, refine):
    image, subject = photo
    out = effects.render("blur", image, as_masks(subject), options(refine))
    background = used_alpha(subject, image, refine) < NONE
    change = np.abs(out.astype(int) - image.astype(int)).sum(axis=2)[background]
    assert background.mean() > 0.2
    assert (change > 0).mean() > 0.5
    assert change.mean() > 5


@pytest.mark.parametrize("refine", [True, False])
def test_replace_with_colour_fills_the_background(photo, refine):
    image, subject = photo
    out = effects.render("replace", image, as_masks(subject), options(refine))
    background = used_alpha(subject, image, refine) < NONE
    assert background.mean() > 0.2
    assert (out[background] == (0, 177, 64)).all()


def test_replace_with_picture_scales_to_cover_without_stretching():
    picture = np.zeros((100, 300, 3), np.uint8)
    picture[:, 148:152] = 255  # a 4 px stripe at the centre of a wide picture
    covered = effects.Backdrop(picture=picture).covering(200, 200)
    assert covered.shape == (200, 200, 3)
    lit = np.flatnonzero(covered[100, :, 0] > 127)
    assert lit.min() >= 94 and lit.max() <= 105  # centred, and 2x wider, as the scale is 2
    assert 6 <= lit.size <= 10


def test_backdrop_is_resized_once_per_frame_size():
    backdrop = effects.Backdrop(picture=skimage_data.coffee())
    assert backdrop.covering(72, 128) is backdrop.covering(72, 128)


# ---- cut-out ------------------------------------------------------------------------------------

@pytest.mark.parametrize("refine", [True, False])
def test_cutout_alpha_is_the_alpha_mask_and_only_edge_colours_change(photo, refine):
    image, subject = photo
    out = effects.render("cutout", image, as_masks(subject), options(refine))
    mask = effects.render("alpha", image, as_masks(subject), options(refine))
    assert out.shape == (*image.shape[:2], 4) and out.dtype == np.uint8
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 3], mask)
    expected = used_alpha(subject, image, refine)
    assert np.abs(mask / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    # Colours are the photo's wherever the cut-out is opaque or clear; only partial pixels get
    # the estimated foreground colour, and only when refining.
    sure = (expected == 0.0) | (expected == 1.0) if refine else np.ones(subject.shape, bool)
    np.testing.assert_array_equal(out[:, :, :3][sure], image[sure])


# ---- hair recolouring ---------------------------------------------------------------------------

def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


@pytest.mark.parametrize("target", [(40, 90, 220), (200, 30, 60), (230, 200, 120)])
def test_recolor_keeps_lightness_and_moves_hue_to_the_target(photo, target):
    image, subject = photo
    out = effects.render("recolor", image, as_masks(subject), options(False, hair_color=target))
    hair = subject > EXACT
    before, after, goal = _lab(image)[hair], _lab(out)[hair], _lab(np.uint8([[target]]))[0, 0]
    assert np.abs(after[:, 0] - before[:, 0]).mean() < 2.0  # L* out of 100: the shading stays
    hue = np.degrees(np.arctan2(after[:, 2], after[:, 1]))
    goal_hue = np.degrees(np.arctan2(goal[2], goal[1]))
    off = np.abs((hue - goal_hue + 180) % 360 - 180)
    coloured = np.hypot(after[:, 1], after[:, 2]) > 3  # near-grey pixels have no meaningful hue
    assert coloured.mean() > 0.5
    assert np.median(off[coloured]) < 10
    untouched = subject < NONE
    np.testing.assert_array_equal(out[untouched], image[untouched])


def test_recolor_uses_the_recolor_classes():
    image = skimage_data.astronaut()
    hair = model_like_mask(image.shape[:2])
    masks = np.stack([1.0 - hair, hair * 0.0, hair]).astype(np.float32)  # hair is class 2 here
    opts = effects.EffectOptions(classes=(1,), recolor_classes=(2,), hair_color=(200, 30, 60), refine=False)
    out = effects.render("recolor", image, masks, opts)
    assert np.abs(out.astype(int) - image.astype(int))[hair > EXACT].mean() > 10


# ---- no halo ------------------------------------------------------------------------------------

def red_on_blue(size: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """A red disc on blue with a hard colour edge, and a model-like soft mask centred on it."""
    yy, xx = np.mgrid[:size, :size]
    inside = np.hypot(yy - size / 2, xx - size / 2) < size / 4
    image = np.zeros((size, size, 3), np.uint8)
    image[inside] = (255, 0, 0)
    image[~inside] = (0, 0, 255)
    coarse = cv2.resize(inside.astype(np.float32), (size // 8, size // 8), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)
    return image, mask


def _outside_ring(size: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    return (radius >= size / 4 + 1) & (radius < size / 4 + width)


@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("strength", [1.0, 3.0])
def test_blurred_background_next_to_the_subject_stays_background_coloured(refine, strength):
    image, mask = red_on_blue()
    out = effects.render("blur", image, as_masks(mask), options(refine, blur_strength=strength))
    ring = _outside_ring(image.shape[0], 12)
    alpha = used_alpha(mask, image, refine)
    # Where the background shows (alpha low), it must be blue, not the subject's red.
    shown = ring & (alpha < 0.1)
    assert shown.sum() > 100
    assert out[shown][:, 0].max() < 30
    assert out[shown][:, 2].min() > 225


def test_the_halo_test_can_fail():
    """A naive blur of the whole frame does bleed red into that ring: the test above has teeth."""
    image, mask = red_on_blue()
    naive = cv2.GaussianBlur(image, (0, 0), 0.012 * image.shape[0] * 3.0)
    plain = effects.blend(image, naive, mask)
    ring = _outside_ring(image.shape[0], 12) & (mask < 0.1)
    assert plain[ring][:, 0].max() > 60


# ---- edge refinement ----------------------------------------------------------------------------

def pasted_scene(height: int, width: int):
    """The astronaut pasted onto coffee through a known sharp shape; a coarse mask of that shape."""
    shape = (~skimage_data.horse()).astype(np.float32)
    truth = (cv2.resize(shape, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
    subject = cv2.resize(skimage_data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    background = cv2.resize(skimage_data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC)
    image = effects.blend(subject, background, truth)
    coarse = cv2.resize(cv2.resize(truth, (256, 256), interpolation=cv2.INTER_AREA), (width, height),
                        interpolation=cv2.INTER_LINEAR)
    return image, truth, coarse


@pytest.mark.parametrize("size", [(300, 450), (720, 1280)])
def test_refinement_moves_the_edge_toward_the_true_one(size):
    image, truth, coarse = pasted_scene(*size)
    edge = cv2.dilate(((coarse > 0.01) & (coarse < 0.99)).astype(np.uint8), np.ones((9, 9))).astype(bool)
    before = np.abs(coarse - truth)[edge]
    after = np.abs(effects.refine_alpha(coarse, image) - truth)[edge]
    assert after.mean() < 0.8 * before.mean()
    halo = edge & (truth == 0)
    assert np.maximum(effects.refine_alpha(coarse, image) - truth, 0)[halo].mean() < 0.75 * before[halo[edge]].mean()


def test_refinement_makes_confident_regions_sure(photo):
    image, subject = photo
    refined = effects.refine_alpha(subject, image)
    assert refined.dtype == np.float32 and refined.shape == subject.shape
    assert 0.0 <= refined.min() and refined.max() <= 1.0
    far = cv2.erode(((subject < 0.02) | (subject > 0.98)).astype(np.uint8), np.ones((61, 61))).astype(bool)
    assert far.mean() > 0.1
    # Far from the edge the model's decision stands, as exactly 0 or 1: no faint veil or hole.
    np.testing.assert_array_equal(refined[far], (subject[far] > 0.5).astype(np.float32))
    partial = (refined > 0) & (refined < 1)
    soft = (subject > 0.02) & (subject < 0.98)
    assert partial.sum() < soft.sum()  # the uncertain band is narrower than the model's ramp


def test_refinement_tiles_agree_with_a_whole_frame_guided_filter():
    """The tiled, edge-only application equals a plain float64 fast guided filter of the cut mask."""
    image = cv2.resize(skimage_data.astronaut(), (700, 500))
    subject = model_like_mask(image.shape[:2])
    refined = effects.refine_alpha(subject, image, cell=3, radius=2, eps=1e-3, sharpen=4.0)
    reference = _reference_fast_guided_filter((subject > 0.5).astype(np.float32), image, cell=3, radius=2,
                                              eps=1e-3)
    reference = np.clip((reference - 0.5) * 4.0 + 0.5, 0, 1)
    assert np.abs(refined - reference).max() < 2e-3


def _reference_fast_guided_filter(alpha, image, cell, radius, eps):
    height, width = alpha.shape
    small = (-(-width // cell), -(-height // cell))
    guide = cv2.resize(image, small, interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    mask = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA).astype(np.float64)

    def box(x):
        return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(mask)
    cov_ip = box(guide * mask[..., None]) - mean_i * mean_p[..., None]
    sigma = np.empty(mask.shape + (3, 3))
    for i in range(3):
        for j in range(3):
            sigma[..., i, j] = box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov_ip[..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(-1)
    a = cv2.resize(box(a), (width, height), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b), (width, height), interpolation=cv2.INTER_LINEAR)
    return (a * image / 255.0).sum(-1) + b


# ---- foreground colours -------------------------------------------------------------------------

def test_foreground_estimate_takes_the_old_background_out_of_the_edge():
    """Red subject on blue, a soft edge: the fringe is purple-blue; estimated, it is red.

    Pixels of the edge that already look more like the subject than the background are kept.
    """
    _, mask = red_on_blue(1024)
    soft = cv2.GaussianBlur(mask, (0, 0), 4.0)  # about one model pixel (4 px at 1024)
    mixed = (soft[:, :, None] * [255, 0, 0] + (1 - soft[:, :, None]) * [0, 0, 255] + 0.5).astype(np.uint8)
    estimated = effects.estimate_foreground(mixed, soft)
    fringe = (soft > 0.05) & (soft < 0.45)
    assert fringe.sum() > 1000
    assert mixed[fringe][:, 2].mean() > 140  # the fringe really is bluish before
    assert estimated[fringe][:, 2].mean() < 0.1 * mixed[fringe][:, 2].mean()
    assert estimated[fringe][:, 0].min() > 200
    kept = (soft == 0) | (soft >= 0.55)
    np.testing.assert_array_equal(estimated[kept], mixed[kept])


@pytest.mark.parametrize("name", ["replace", "cutout"])
def test_replace_and_cutout_use_the_foreground_estimate_when_refining(name):
    image = skimage_data.astronaut()
    masks = as_masks(model_like_mask(image.shape[:2]))
    opts = options(True)
    alpha = effects.composite_alpha(image, masks, opts, name)
    foreground = effects.estimate_foreground(image, alpha)
    assert (foreground != image).any()
    if name == "cutout":
        expected = effects.cut_out(foreground, alpha)
    else:
        expected = effects.replace_background(foreground, alpha, opts.backdrop)
    np.testing.assert_array_equal(effects.render(name, image, masks, opts), expected)


# ---- the interface ------------------------------------------------------------------------------

@pytest.mark.parametrize("edge", ["thin", "soft"])
@pytest.mark.parametrize("layout", ["frame", "view", "into the background"])
def test_blend_equals_the_whole_frame_formula(edge, layout):
    """A thin edge is blended pixel by pixel (gathered and put back), a soft one band by band;
    views of a larger picture and blending into the background itself give the same pixels."""
    rng = np.random.default_rng(4)
    big = rng.integers(0, 256, (2, 130, 170, 3), np.uint8)
    foreground, background = big[0], big[1]
    yy, xx = np.mgrid[:130, :170]
    distance = np.hypot(yy - 60, xx - 80) - 40
    ramp = 1.0 if edge == "thin" else 25.0
    alpha = np.clip(0.5 - distance / ramp, 0, 1).astype(np.float32)
    if layout == "view":
        foreground, background, alpha = foreground[5:120, 7:160], background[5:120, 7:160], alpha[5:120, 7:160]
    weight = cv2.convertScaleAbs(alpha, alpha=255.0)
    partial = np.count_nonzero((weight > 0) & (weight < 255)) / weight.size
    assert (partial < 1 / 32) == (edge == "thin")  # each path is taken
    expected = effects._blend_levels(foreground, background, weight)
    if layout == "into the background":
        out = background.copy()
        assert effects._blend8(foreground, out, weight, out=out) is out
        assert np.array_equal(out, expected)
    else:
        assert np.array_equal(effects.blend(foreground, background, alpha), expected)
    assert np.array_equal(expected[weight == 255], foreground[weight == 255])
    assert np.array_equal(expected[weight == 0], background[weight == 0])


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (2, 2)])
def test_tiny_frames_blend_every_pixel(shape):
    """OpenCV reads a 1x1 or 4x1 array beside a number as a scalar; the blend must not."""
    rng = np.random.default_rng(sum(shape))
    foreground, background = rng.integers(0, 256, (2, *shape, 3), np.uint8)
    weight = np.full(shape, 255, np.uint8)
    weight.flat[0] = 100  # one partial pixel: the pixel-by-pixel path
    pad = ((0, 8), (0, 8))
    expected = effects._blend_levels(np.pad(foreground, pad + ((0, 0),)), np.pad(background, pad + ((0, 0),)),
                                     np.pad(weight, pad))[:shape[0], :shape[1]]
    assert np.array_equal(effects._blend8(foreground, background, weight), expected)
    alpha = rng.random(shape).astype(np.float32)
    for name in effects.COMPOSITES:
        picture = effects.render(name, foreground, np.stack([1 - alpha, alpha]),
                                 effects.EffectOptions(backdrop=effects.Backdrop(), hair_color=(9, 9, 9)))
        assert picture.shape[:2] == shape


def test_subject_alpha_picks_and_sums_classes():
    masks = np.random.default_rng(0).dirichlet(np.ones(6), size=(8, 8)).transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_allclose(effects.subject_alpha(masks), 1.0 - masks[0], atol=1e-5)
    np.testing.assert_allclose(effects.subject_alpha(masks, (1, 3)), masks[1] + masks[3], atol=1e-6)
    np.testing.assert_array_equal(effects.subject_alpha(masks, (4,)), masks[4])
    with pytest.raises(UsageError):
        effects.subject_alpha(masks, (6,))


@pytest.mark.parametrize("classes", [None, (1, 3), (5, 1, 3), (2, 2, 4)])
def test_subject_alpha_sums_in_numpys_order_and_leaves_the_masks_alone(classes):
    """The same float32 sum as np.add.reduce over the chosen masks (the composites' bytes depend
    on it), clipped to 1, with the segmenter's masks untouched."""
    masks = np.random.default_rng(1).random((6, 9, 7), dtype=np.float32)
    before = masks.copy()
    chosen = list(classes) if classes else list(range(1, 6))
    expected = np.clip(np.add.reduce(masks[chosen], axis=0), 0.0, 1.0)
    alpha = effects.subject_alpha(masks, classes)
    np.testing.assert_array_equal(alpha, expected)
    assert alpha.max() == 1.0 and alpha.dtype == np.float32
    np.testing.assert_array_equal(masks, before)


def test_a_single_mask_model_has_that_mask_as_subject():
    mask = np.full((1, 4, 4), 0.7, np.float32)
    np.testing.assert_array_equal(effects.subject_alpha(mask), mask[0])


def test_unknown_composite_and_missing_settings_are_usage_errors():
    image = np.zeros((8, 8, 3), np.uint8)
    masks = as_masks(np.zeros((8, 8), np.float32))
    with pytest.raises(UsageError, match="unknown composite"):
        effects.render("sepia", image, masks, effects.EffectOptions())
    with pytest.raises(UsageError, match="backdrop"):
        effects.render("replace", image, masks, effects.EffectOptions())
    with pytest.raises(UsageError, match="hair_color"):
        effects.render("recolor", image, masks, effects.EffectOptions())




@pytest.mark.parametrize("name", effects.COMPOSITES)
def test_every_composite_handles_an_empty_and_a_full_mask(name):
    image = skimage_data.chelsea()
    for value in (0.0, 1.0):
        masks = as_masks(np.full(image.shape[:2], value, np.float32))
        out = effects.render(name, image, masks, options(True))
        assert out.shape[:2] == image.shape[:2] and out.dtype == np.uint8


def test_the_cli_knows_every_composite():
    from segtool.commands.options import COMPOSITE_NAMES

    assert COMPOSITE_NAMES == effects.COMPOSITES


@pytest.mark.parametrize("text, rgb", [("White", (255, 255, 255)), ("#c33", (204, 51, 51)),
                                       ("#C83232", (200, 50, 50)), ("10, 20,30", (10, 20, 30))])
def test_colours_by_name_hex_or_triple(text, rgb):
    from segtool.commands.options import parse_color

    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["#12", "#gggggg", "1,2", "1,2,300", "mauve-ish"])
def test_what_is_not_a_colour_says_how_to_write_one(text):
    from segtool.commands.options import parse_color

    with pytest.raises(ValueError, match="#rrggbb"):
        parse_color(text)
