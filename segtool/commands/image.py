"""`segtool image`: segment still images into masks and composites."""
from __future__ import annotations

from pathlib import Path

import click

from .options import (composite_options, jobs_option, mask_options, model_options, output_dir_option,
                      strip_metadata_option)
from .report import Reporter, progress


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@model_options
@mask_options
@composite_options
@strip_metadata_option
@output_dir_option
@jobs_option
@click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("-0", "--null", "null_separated", is_flag=True, help="Paths on stdin are NUL-separated.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs all exist (resume a run).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="Refuse images larger than this many pixels before decoding them.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--verbose", "-v", is_flag=True, help="One line per written input on stderr.")
def image(inputs, model, device, threads, display_names_locale, category_mask, confidence_masks,
          confidence_format, composite, strip_metadata, out_dir, jobs, recursive, null_separated,
          skip_existing, max_pixels, as_json, quiet, verbose):
    """Segment images: files, folders, or '-' for paths on stdin.

    \b
    Outputs in the --output folder, per input <stem>:
      <stem>.category.png        uint8, value = category index (--category-mask)
      <stem>.confidence.npy      float32 (C, H, W), channels in label order
      <stem>.confidence.exr      one float channel per category, named by label
      <stem>.blur.<ext>          background blurred, subject sharp (--blur)
      <stem>.replace.<ext>       background replaced (--replace-bg IMAGE|COLOR)
      <stem>.cutout.png          RGBA, alpha = subject confidence (--cutout)
      <stem>.recolor.<ext>       hair tinted, shading kept (--recolor-hair COLOR)
    <ext> is the input's unless --composite-format says otherwise. Composites keep the
    input's colour profile and EXIF (orientation reset to 1) unless --strip-metadata.
    """
    from .. import io as sio
    from ..options import ImageSegmenterOptions
    from ..pipeline import ImageOutputs, run_images
    from ..runtime import default_jobs, default_threads
    from ..segmenter import ImageSegmenter

    composites = composite.names
    if not (category_mask or confidence_masks or composites):
        raise click.UsageError("nothing to write: ask for --category-mask, --confidence-masks or a composite "
                               "(--blur, --replace-bg, --cutout, --recolor-hair)")
    jobs = jobs or default_jobs()
    options = ImageSegmenterOptions(
        model=model, output_category_mask=category_mask,
        output_confidence_masks=confidence_masks or bool(composites),
        display_names_locale=display_names_locale, device=device, num_threads=threads or default_threads(jobs),
        busy_wait=False,  # several images in flight: spinning threads would starve decode/encode
    )
    items = list(sio.expand_inputs(inputs, recursive=recursive, null_separated=null_separated))
    reporter = Reporter(as_json=as_json, quiet=quiet, verbose=verbose)
    with ImageSegmenter.create_from_options(options) as segmenter:
        outputs = ImageOutputs(
            out_dir=Path(out_dir), category_mask=category_mask, confidence_masks=confidence_masks,
            confidence_format=confidence_format, composites=composites,
            effect_options=composite.effect_options(segmenter.labels), composite_format=composite.format,
            skip_existing=skip_existing, max_pixels=max_pixels, report_categories=as_json,
            keep_metadata=not strip_metadata,
        )
        sio.ensure_dir(outputs.out_dir)
        with progress(reporter, len(items), "segmenting"):
            run_images(items, segmenter, outputs, on_item=reporter, jobs=jobs)
    raise SystemExit(reporter.summary())
