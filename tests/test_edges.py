"""Refined edges against true edges: subjects cut from package-shipped photos, pasted on others.

The composites come from tests/edgeset.py (the same set as scripts/bench_edges.py, smaller here
for speed); the model runs on each composite as it would on a user's photo, and its cut-out's
alpha is scored against the true alpha in the band along the true edge.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage.data")
pytest.importorskip("matplotlib.cbook")
MODELS = Path(__file__).resolve().parents[1] / "models"
pytestmark = pytest.mark.skipif(not (MODELS / "selfie.onnx").is_file(), reason="models/selfie.onnx is not converted yet")

import edgeset  # noqa: E402
from segtool import effects  # noqa: E402

# Three subjects on three kinds of background: high-contrast pattern, flat colour, photo texture.
CASES = [("grace_hopper", "stripes"), ("astronaut", "white"), ("camera", "green")]
WIDTH = 960


@pytest.fixture(scope="module")
def cutouts():
    """(scene, unrefined cut-out, refined cut-out) for each case, made by effects.render."""
    made = []
    for subject, background in CASES:
        scene = next(edgeset.scenes([subject], [background], width=WIDTH))
        masks = edgeset.segment_with_segtool(scene.image, scene.subject.model)
        pair = [effects.render("cutout", scene.image, masks, effects.EffectOptions(classes=scene.subject.classes,
                                                                                  refine=refine))
                for refine in (False, True)]
        made.append((scene, *pair))
    return made


def _score(scene, cutout):
    return edgeset.score(cutout[:, :, 3], cutout[:, :, :3], scene)


def test_the_set_has_a_true_edge_and_the_model_finds_the_subject(cutouts):
    for scene, plain, _ in cutouts:
        assert 0.02 < scene.band.mean() < 0.3
        edge = (scene.alpha > 0) & (scene.alpha < 1)
        assert edge.sum() > 0.5 * scene.alpha.shape[0]  # a 1-px antialiased edge all round
        found = plain[:, :, 3] > 127
        truth = scene.alpha > 0.5
        assert (found & truth).sum() / (found | truth).sum() > 0.85, scene.name


def test_refined_edges_beat_unrefined_by_the_promised_margins(cutouts):
    plain = edgeset.mean_scores(_score(scene, cut) for scene, cut, _ in cutouts)
    refined = edgeset.mean_scores(_score(scene, cut) for scene, _, cut in cutouts)
    assert refined.error <= 0.8 * plain.error
    assert refined.halo <= 0.75 * plain.halo


def test_every_case_improves(cutouts):
    for scene, plain, refined in cutouts:
        before, after = _score(scene, plain), _score(scene, refined)
        assert after.error < 0.9 * before.error, scene.name
        assert after.halo < before.halo, scene.name


def test_the_score_can_fail():
    """A cut-out with the alpha spread outwards scores a larger halo; one eroded, a larger bite."""
    import cv2

    scene = next(edgeset.scenes(["grace_hopper"], ["black"], width=480))
    grown = cv2.dilate(scene.alpha, np.ones((7, 7), np.uint8))
    shrunk = cv2.erode(scene.alpha, np.ones((7, 7), np.uint8))
    exact = edgeset.score(scene.alpha, scene.image, scene)
    assert exact.error < 1e-6 and exact.halo < 1e-6 and exact.bite < 1e-6
    assert edgeset.score(grown, scene.image, scene).halo > 0.02
    assert edgeset.score(shrunk, scene.image, scene).bite > 0.02
    # the old background shown through the fringe counts as colour error
    assert edgeset.score(grown, scene.image, scene).colour > exact.colour + 1
