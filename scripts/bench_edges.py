"""Edge quality against true edges: writes the "Edges" table of BENCHMARKS.md.

    python scripts/bench_edges.py [--width 1920] [--write]

Every subject of tests/edgeset.py (cut from a package-shipped photo along a shape with a hard,
1-px antialiased edge) on every background (photos, a texture, patterns, flat colours); the model
runs on each composite as on a user's photo, and the cut-out ``effects.render`` makes is scored
against the truth in a band of 24 px (at 1920 wide) each side of the true edge. Composites where
the model misses the subject itself (IoU of its mask with the truth under 0.85) are listed and
left out: no edge refinement can mend those. ``--write`` replaces the section in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import edgeset  # noqa: E402
from segtool import effects  # noqa: E402

def _cutout(refine: bool, own_colours: bool = True):
    def make(scene, masks):
        options = effects.EffectOptions(classes=scene.subject.classes, refine=refine)
        if own_colours:
            return effects.render("cutout", scene.image, masks, options)
        return effects.cut_out(scene.image, effects.composite_alpha(scene.image, masks, options))
    return make


MODES = {
    "`--no-refine`": _cutout(False),
    "default": _cutout(True),
    "default's alpha, the photo's colours": _cutout(True, own_colours=False),  # the foreground estimate's share
}
KINDS = {"photos and texture": ("coffee", "rocket", "gravel"), "patterns": ("checker", "stripes"),
         "flat colours": ("black", "white", "green")}
FOUND = 0.85  # IoU of the model's mask with the truth below which the model missed the subject


def measure(width: int):
    """{mode: {background: [EdgeScore per subject]}} and the scenes left out."""
    scores = {mode: {} for mode in MODES}
    missed = []
    for scene in edgeset.scenes(width=width):
        masks = edgeset.segment_with_segtool(scene.image, scene.subject.model)
        plain = effects.subject_alpha(masks, scene.subject.classes)
        if _iou(plain > 0.5, scene.alpha > 0.5) < FOUND:
            missed.append(scene.name)
            continue
        background = scene.name.split(" on ")[1]
        for mode, make in MODES.items():
            cutout = make(scene, masks)
            score = edgeset.score(cutout[:, :, 3], cutout[:, :, :3], scene)
            scores[mode].setdefault(background, []).append(score)
    return scores, missed


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def table(scores: dict) -> str:
    lines = ["| backgrounds | mode | band error | halo | bite | colour error (levels) | fringe colour error |",
             "|---|---|---:|---:|---:|---:|---:|"]
    rows = {"all": [b for kind in KINDS.values() for b in kind], **KINDS}
    for label, backgrounds in rows.items():
        reference = None
        for mode in MODES:
            found = [s for b in backgrounds for s in scores[mode].get(b, [])]
            mean = edgeset.mean_scores(found)
            reference = reference or mean
            ratio = "" if mean is reference else (f" ({mean.error / reference.error:.2f}x)", f" ({mean.halo / reference.halo:.2f}x)")
            error, halo = (f"{100 * mean.error:.2f} %", f"{100 * mean.halo:.2f} %")
            if ratio:
                error, halo = error + ratio[0], halo + ratio[1]
            lines.append(f"| {label} ({len(found)}) | {mode} | {error} | {halo} | {100 * mean.bite:.2f} % "
                         f"| {mean.colour:.1f} | {mean.fringe:.1f} |")
    return "\n".join(lines)


def section(scores: dict, missed: list, width: int, seconds: float) -> str:
    today = datetime.date.today().isoformat()
    return f"""## Edges

Cut-out alpha against true alpha (issue 11). Ground truth is made, not drawn: each subject of
`tests/edgeset.py` (astronaut, grace_hopper, the cameraman, chelsea the cat, from scikit-image and
matplotlib) is cut from its photo along a shape with a hard, 1-px antialiased edge (the model's own
mask of the photo, cut at 0.5, with seeded detail a few pixels wide that the model cannot see) and
pasted on other backgrounds at {width} px wide. The segmenter (selfie; deeplab's cat class for
chelsea) then runs on the composite, and its `--cutout` is scored in the band of 24 px (at 1920)
each side of the true edge: band error = mean |alpha - truth| = halo (alpha beyond the truth) +
bite (alpha short of it), as % of full alpha; colour error = mean |RGB - true foreground| in
8-bit levels, weighted by the alpha each pixel is shown with (outside the subject the true
foreground is the nearest subject pixel's colour, so the old background in a fringe counts);
fringe colour error: the same over the band's pixels outside the true subject only.
Ratios are against `--no-refine` in the same run. Left out, the model missing the subject itself
(IoU < {FOUND}): {', '.join(missed) or 'none'}.

Command: `python scripts/bench_edges.py --write` ({seconds:.0f} s); {today}.

{table(scores)}

The default refinement: the mask cut at 0.5 (the model's decision) regressed on the colours by a
guided filter in windows of 9 x 9 model pixels (cells of 1/256 of the longer side, radius 4,
eps 1e-3), sharpened 4x around 0.5, so the edge moves onto the picture's colour edge and the band
left partial is a few pixels wide; its cost is in "Composites". The foreground colour estimate
(blur-fusion, Forte & Pitié 2021, on pixels that look more like the background than the subject)
moves the colour of the fringe from the old background toward the subject's; on the inner side of
the edge this set's subjects (hard edges, no hair-fine transparency) were right already. Compare
the last row of each group: the default's alpha with the photo's own colours.
"""


def write(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text()
    start = old.find("## Edges\n")
    if start < 0:
        start = end = old.find("## Composites")
    else:
        end = old.find("\n## ", start + 1) + 1 or len(old)
    path.write_text(old[:start] + text + "\n" + old[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=edgeset.REFERENCE_WIDTH)
    parser.add_argument("--write", action="store_true", help="Replace the Edges section of BENCHMARKS.md.")
    args = parser.parse_args()
    started = time.perf_counter()
    scores, missed = measure(args.width)
    text = section(scores, missed, args.width, time.perf_counter() - started)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
