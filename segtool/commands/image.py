"""`segtool image`: segment still images into masks and composites."""
from __future__ import annotations

from pathlib import Path

import click

from .options import composite_options, mask_options, model_options, output_dir_option
from .report import Reporter, progress


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@model_options
@mask_options
@composite_options
@output_dir_option
@click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("-0", "--null", "null_separated", is_flag=True, help="Paths on stdin are NUL-separated.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs all exist (resume a run).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="Refuse images larger than this many pixels before decoding them.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--verbose", "-v", is_flag=True, help="One line per written input on stderr.")
def image(inputs, model, device, threads, display_names_locale, category_mask, confidence_masks,
          confidence_format, composite, out_dir, recursive, null_separated,
          skip_existing, max_pixels, as_json, quiet, verbose):
    """Segment images: files, folders, or '-' for paths on stdin.

    \b
    Outputs in the --output folder, per input <stem>:
      <stem>.category.png        uint8, value = category index (--category-mask)
      <stem>.confidence.npy      float32 (C, H, W), channels in label order
      <stem>.confidence.exr      one float channel per category, named by label
      <stem>.blur.<ext>          background blurred, subject sharp (--blur)
    """
    from .. import io as sio
    from ..options import ImageSegmenterOptions
    from ..pipeline import ImageOutputs, run_images
    from ..segmenter import ImageSegmenter

    composites = composite.names
    if not (category_mask or confidence_masks or composites):
        raise click.UsageError("nothing to write: ask for --category-mask, --confidence-masks or --blur")
    options = ImageSegmenterOptions(
        model=model, output_category_mask=category_mask,
        output_confidence_masks=confidence_masks or bool(composites),
        display_names_locale=display_names_locale, device=device, num_threads=threads,
    )
    items = list(sio.expand_inputs(inputs, recursive=recursive, null_separated=null_separated))
    reporter = Reporter(as_json=as_json, quiet=quiet, verbose=verbose)
    with ImageSegmenter.create_from_options(options) as segmenter:
        outputs = ImageOutputs(
            out_dir=Path(out_dir), category_mask=category_mask, confidence_masks=confidence_masks,
            confidence_format=confidence_format, composites=composites,
            effect_options=composite.effect_options(segmenter.labels),
            skip_existing=skip_existing, max_pixels=max_pixels,
        )
        sio.ensure_dir(outputs.out_dir)
        with progress(reporter, len(items), "segmenting"):
            run_images(items, segmenter, outputs, on_item=reporter)
    raise SystemExit(reporter.summary())
