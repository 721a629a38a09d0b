"""Make the README gallery under docs/gallery/ with segtool itself, from package-shipped photos.

    python scripts/make_gallery.py [--out docs/gallery] [--width 320]

Every picture is an output of `segtool image` (run as a user runs it), only shrunk to a small
JPEG; the cut-out is laid over a checkerboard so its transparency shows. Hair recolouring needs
the hair model (`segtool models install hair`); without it that picture is left out, said so.
Prints the markdown that shows the gallery.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "grace_hopper")
COLUMNS = ("input", "category", "blur", "replace", "cutout")
# One row per other model: the photo it runs on and the composite flags shown.
PER_MODEL = {
    "selfie_landscape": ("astronaut", ("--blur",)),
    "deeplab": ("chelsea", ("--blur", "--classes", "cat")),
}
# Edge crops for the before/after picture: the astronaut's hair, Grace Hopper's cap against the flag.
CROP = {"astronaut": (slice(5, 145), slice(135, 315)), "grace_hopper": (slice(10, 150), slice(120, 260))}
DARK = (24, 24, 24)  # a dark new background shows a halo of the old one best


def segtool(*args, cwd: Path) -> None:
    command = [sys.executable, "-c", "from segtool.cli import main; main()", *map(str, args)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"segtool {' '.join(map(str, args))} failed:\n{done.stderr}")


def write_inputs(folder: Path) -> None:
    from matplotlib import cbook
    from skimage import data

    # PNG, so that segtool sees the photos exactly as shipped.
    iio.imwrite(folder / "astronaut.png", data.astronaut())
    iio.imwrite(folder / "grace_hopper.png", iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    iio.imwrite(folder / "coffee.png", data.coffee())
    iio.imwrite(folder / "chelsea.png", data.chelsea())


def hair_model_installed() -> bool:
    from segtool import registry
    from segtool.errors import SegtoolError

    try:
        registry.locate("hair")
    except SegtoolError:
        return False
    return True


def over_checkerboard(rgba: np.ndarray, square: int = 12) -> np.ndarray:
    rows, cols = np.indices(rgba.shape[:2]) // square
    board = np.where((rows + cols) % 2, 205, 245).astype(np.float32)[:, :, None]
    alpha = rgba[:, :, 3:].astype(np.float32) / 255.0
    return (rgba[:, :, :3] * alpha + board * (1.0 - alpha) + 0.5).astype(np.uint8)


def save_small(picture: np.ndarray, path: Path, width: int) -> None:
    height = round(picture.shape[0] * width / picture.shape[1])
    small = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    iio.imwrite(path, small, quality=82, optimize=True)


def read_picture(path: Path) -> np.ndarray:
    picture = iio.imread(path, mode="RGBA" if path.name.endswith(".cutout.png") else "RGB")
    return over_checkerboard(picture) if picture.shape[2] == 4 else picture


def before_after(unrefined: Path, refined: Path, width: int) -> np.ndarray:
    """Crops of the --no-refine and the default cut-out over a dark backdrop, each above its alpha; enlarged.

    One row per photo in CROP: the old background's glow along the edge shows on the dark backdrop.
    """
    rows_out = []
    for stem, (rows, cols) in CROP.items():
        panels = []
        for folder, label in ((unrefined, "--no-refine"), (refined, "refined (default)")):
            rgba = iio.imread(folder / f"{stem}.cutout.png")[rows, cols]
            alpha = np.repeat(rgba[:, :, 3:], 3, axis=2) / 255.0
            dark = np.empty_like(rgba[:, :, :3])
            dark[:] = DARK
            shown = (rgba[:, :, :3] * alpha + dark * (1 - alpha) + 0.5).astype(np.uint8)
            picture = np.vstack([shown, (alpha * 255 + 0.5).astype(np.uint8)])
            picture = cv2.resize(picture, (width, width * picture.shape[0] // picture.shape[1]),
                                 interpolation=cv2.INTER_NEAREST)
            # Labelled after resizing, so that the text stays legible.
            cv2.putText(picture, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(picture, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
            panels.append(picture)
        gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
        rows_out.append(np.hstack([panels[0], gap, panels[1]]))
    spacer = np.full((6, rows_out[0].shape[1], 3), 255, np.uint8)
    return np.vstack([rows_out[0], *(part for row in rows_out[1:] for part in (spacer, row))])


def run_segtool(work: Path, hair: bool) -> None:
    """The outputs the gallery shows, each from one `segtool image` run as a user would type it."""
    inputs = [f"{stem}.png" for stem in PHOTOS]
    segtool("image", *inputs, "--blur", "--replace-bg", "coffee.png", "--cutout", "--palette",
            "--no-confidence-masks", "-o", "refined", cwd=work)
    segtool("image", *inputs, "--cutout", "--no-refine", "--no-confidence-masks", "-o", "unrefined", cwd=work)
    for model, (stem, flags) in PER_MODEL.items():
        segtool("image", f"{stem}.png", "--model", model, *flags, "--palette", "--no-confidence-masks",
                "-o", model, cwd=work)
    if hair:
        segtool("image", "astronaut.png", "--model", "hair", "--recolor-hair", "copper", "--palette",
                "--no-confidence-masks", "-o", "hair", cwd=work)


def _shown(column: str) -> str:
    # The category mask itself holds indices (nearly black); the gallery shows its --palette view.
    return "category-color" if column == "category" else column


def save_gallery(work: Path, out: Path, width: int, hair: bool) -> list[Path]:
    sources = {f"{stem}.{column}.jpg": work / f"{stem}.png" if column == "input" else
               work / "refined" / f"{stem}.{_shown(column)}.png" for stem in PHOTOS for column in COLUMNS}
    if hair:
        sources.update({f"astronaut.hair-{column}.jpg": work / "hair" / f"astronaut.{_shown(column)}.png"
                        for column in ("category", "recolor")})
    for model, (stem, _) in PER_MODEL.items():
        sources[f"{stem}.{model}-input.jpg"] = work / f"{stem}.png"
        sources.update({f"{stem}.{model}-{column}.jpg": work / model / f"{stem}.{_shown(column)}.png"
                        for column in ("category", "blur")})
    for name, source in sources.items():
        save_small(read_picture(source), out / name, width)
    comparison = out / "refine.before-after.jpg"
    iio.imwrite(comparison, before_after(work / "unrefined", work / "refined", width),
                quality=82, optimize=True)
    return [out / name for name in sources] + [comparison]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hair = hair_model_installed()
    if not hair:
        print("hair model not installed (segtool models install hair): no recolouring picture", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        write_inputs(work)
        run_segtool(work, hair)
        written = save_gallery(work, args.out, args.width, hair)
    total = sum(p.stat().st_size for p in written)
    print(f"{len(written)} pictures, {total / 1e6:.2f} MB in {args.out}", file=sys.stderr)
    print(markdown(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out))


def markdown(folder: Path) -> str:
    header = ("| | input | category mask | `--blur` | `--replace-bg coffee.png` | `--cutout` |\n"
              "|---|---|---|---|---|---|\n")
    rows = "".join(
        f"| `{stem}` | " + " | ".join(f"![{stem} {c}]({folder}/{stem}.{c}.jpg)" for c in COLUMNS) + " |\n"
        for stem in PHOTOS
    )
    hair = ("\n`--model hair --category-mask --recolor-hair copper`:\n\n"
            f"![hair mask]({folder}/astronaut.hair-category.jpg) "
            f"![hair recoloured]({folder}/astronaut.hair-recolor.jpg)\n")
    refine = ("\nEdge refinement, without and with it (crops of the cut-out over a dark backdrop, enlarged; "
              "below each, its alpha):\n\n"
              f"![before and after edge refinement]({folder}/refine.before-after.jpg)\n")
    per_model = "\n| `--model` | input | category mask | composite |\n|---|---|---|---|\n" + "".join(
        f"| `{model} {' '.join(flags)}` | " + " | ".join(
            f"![{model} {c}]({folder}/{stem}.{model}-{c}.jpg)" for c in ("input", "category", "blur")) + " |\n"
        for model, (stem, flags) in PER_MODEL.items())
    return ("### Gallery\n\nMade by `python scripts/make_gallery.py` with segtool itself.\n\n"
            + header + rows + per_model + hair + refine)


if __name__ == "__main__":
    main()
