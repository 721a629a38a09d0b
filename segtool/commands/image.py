"""`segtool image`: segment still images into masks and composites."""
from __future__ import annotations

import contextlib
import itertools

import click

from .options import (composite_options, jobs_option, mask_options, model_options, output_dir_option,
                      palette_option, strip_metadata_option)
from .report import Reporter, progress

READ_AHEAD = 10_000  # inputs listed before any work: a progress bar's total, inputs protected early
MAX_BATCH_SIZE = 256  # two batches of decoded 1080p images are held at once: 3 GB here


@click.command()
@click.argument("inputs", nargs=-1)
@model_options
@mask_options
@palette_option
@composite_options
@strip_metadata_option
@output_dir_option
@jobs_option
@click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("-0", "--null", "null_separated", is_flag=True, help="Paths on stdin are NUL-separated.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose outputs all exist (resume a run).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="Refuse images larger than this many pixels before decoding them.")
@click.option("--batch-size", "-b", type=click.IntRange(min=1, max=MAX_BATCH_SIZE), default=None,
              envvar="SEGTOOL_BATCH_SIZE",
              help=f"Images per inference call (default: 16 on CUDA, 1 on CPU, where batches do not pay; "
                   f"at most {MAX_BATCH_SIZE}, since two batches of decoded images are held at once).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--verbose", "-v", is_flag=True, help="One line per written input on stderr.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              envvar="SEGTOOL_ENGINE", help="Run here, or on a Ray cluster (then --jobs is actors and "
                                            "--threads is threads per actor).")
@click.option("--ray-address", metavar="HOST:PORT", default=None,
              help="The Ray cluster for --engine ray (default: $RAY_ADDRESS, else a local Ray instance).")
@click.option("--inputs-from", "manifests", metavar="FILE[:COLUMN]", multiple=True,
              help="Also the inputs a manifest lists, read as they are needed: a text file of paths or URLs, "
                   "one a line (.gz too), or FILE.parquet:COLUMN; local or on an object store.")
@click.option("--dataset", type=click.Choice(["parquet", "webdataset", "coco"]), default=None,
              help="Write the masks (and composites) as dataset shards in --output instead of files per input; "
                   "see the README's Datasets section.")
@click.option("--shard-size", type=click.IntRange(min=1), default=256, show_default=True, metavar="MB",
              help="With --dataset: a shard is finished once it holds this many megabytes.")
def image(inputs, model, device, threads, display_names_locale, category_mask, confidence_masks,
          confidence_format, palette, composite, strip_metadata, out_dir, jobs, recursive, null_separated,
          skip_existing, max_pixels, batch_size, as_json, quiet, verbose, engine, ray_address, manifests,
          dataset, shard_size):
    """Segment images: files, folders, or '-' for paths on stdin.

    \b
    Outputs in the --output folder, per input <stem>:
      <stem>.category.png        uint8 grey, value = category index (--category-mask)
      <stem>.category-color.png  RGB, one colour per category, to look at (--palette)
      <stem>.confidence.npy      float32 (C, H, W), channels in label order
      <stem>.confidence.exr      one float channel per category, named by label
      <stem>.blur.<ext>          background blurred, subject sharp (--blur)
      <stem>.replace.<ext>       background replaced (--replace-bg IMAGE|COLOR)
      <stem>.cutout.png          RGBA, alpha = subject confidence (--cutout)
      <stem>.recolor.<ext>       hair tinted, shading kept (--recolor-hair COLOR)
      <stem>.alpha.png           8-bit grey: the composites' alpha (--alpha-mask)
    <ext> is the input's unless --composite-format says otherwise. Folder inputs give every
    image the decoder reads, never segtool's own outputs. A file segtool did not write is
    never overwritten: that input fails with one line.
    Inputs and --output may be s3://, gs:// or file:// URLs (a prefix is listed once).
    Composites keep the input's colour profile and EXIF (orientation reset to 1) unless
    --strip-metadata.
    """
    from .. import io as sio
    from .. import registry
    from ..errors import InputError
    from ..options import ImageSegmenterOptions
    from ..outputs import ImageOutputs, InputSet
    from ..runtime import default_jobs, default_threads
    from ..segmenter import ImageSegmenter

    composites = composite.names
    category_mask = category_mask or palette
    if not (inputs or manifests):
        raise click.UsageError("no input: give files, folders, '-' for paths on stdin, or --inputs-from FILE")
    if dataset:
        # a record always holds the category mask; confidence masks only when asked for by name
        category_mask = True
        confidence_masks = confidence_masks and _given("confidence_masks")
        if palette or confidence_format != "npy":
            raise click.UsageError("--dataset stores the category mask as PNG bytes and confidence masks as "
                                   "float16 .npy bytes: --palette and --confidence-format do not apply")
    if not (category_mask or confidence_masks or composites):
        raise click.UsageError("nothing to write: ask for --category-mask, --confidence-masks or a composite "
                               "(--blur, --replace-bg, --cutout, --recolor-hair)")
    on_ray = engine == "ray"
    if not on_ray:
        jobs = jobs or default_jobs()
    # Batches make one inference call at a time, which gets every core; single images share them;
    # on Ray each actor is one job.
    if on_ray:
        threads = threads or 1
    else:
        threads = threads or default_threads(1 if (batch_size or 1) > 1 else jobs)
    options = ImageSegmenterOptions(
        model=model, output_category_mask=category_mask,
        output_confidence_masks=confidence_masks or bool(composites),
        display_names_locale=display_names_locale, device=device, num_threads=threads,
        busy_wait=False,  # several images in flight: spinning threads would starve decode/encode
    )
    reporter = Reporter(as_json=as_json, quiet=quiet, verbose=verbose)
    listed = sio.expand_inputs(inputs, recursive=recursive, null_separated=null_separated,
                               out_dir=sio.location(out_dir), on_empty=_say)
    items, total = _streamed(itertools.chain(listed, *map(sio.inputs_from_manifest, manifests)))
    if total == 0:
        raise InputError("no input found: no paths on stdin" if inputs == ("-",) else
                         "no input found; nothing to segment")
    # The inputs read ahead, and each one as it streams in (Claims), are never written over.
    protected = InputSet([item.path for item in items.ahead] + [composite.backdrop])
    labels = registry.labels_of(options.model, options.model_buffer, options.display_names_locale)
    effect_options = composite.effect_options(labels)
    # A category-less --json report counts categories from the masks: they are read then too.
    options = _with_subject(options, composites, effect_options, len(labels),
                            keep_masks=confidence_masks or (as_json and not category_mask))
    outputs = ImageOutputs(
        out_dir=sio.location(out_dir), category_mask=category_mask, category_preview=palette,
        confidence_masks=confidence_masks,
        confidence_format=confidence_format, composites=composites,
        effect_options=effect_options, composite_format=composite.format,
        skip_existing=skip_existing, max_pixels=max_pixels, report_categories=as_json,
        protected=protected,
        keep_metadata=not strip_metadata, dataset=dataset, shard_bytes=shard_size << 20,
    )

    if on_ray:
        from ..engines.ray import run_on_ray

        sio.ensure_dir(outputs.out_dir)
        with progress(reporter, total, "segmenting"):
            run_on_ray(items, options, outputs, on_item=reporter, jobs=jobs, batch_size=batch_size,
                       address=ray_address)
        raise SystemExit(reporter.summary())
    from ..engines.local import run_images

    with ImageSegmenter.create_from_options(options) as segmenter:
        batch_size = batch_size or segmenter.default_batch_size
        if verbose and not segmenter.path.routine:  # a GPU run, or a path asked for by name
            path = segmenter.path
            click.echo(f"segtool: {segmenter.providers[0]}, {path.name} path: {path.reason}; "
                       f"batch size {batch_size}, {jobs} jobs", err=True)
        sio.ensure_dir(outputs.out_dir)
        with progress(reporter, total, "segmenting"), _target(outputs, options) as target:
            run_images(items, segmenter, outputs, on_item=reporter, jobs=jobs, batch_size=batch_size, target=target)
    raise SystemExit(reporter.summary())


def _with_subject(options, composites, effect_options, count: int, keep_masks: bool):
    """``options`` asking the segmenter for the composites' subject alpha, when they all take it
    from the same categories: with the device graph it is added up on the GPU, and the full-size
    masks (DeepLab's 21 are 174 MB an image at 1080p) come back only when ``keep_masks``."""
    from dataclasses import replace

    from ..postprocess import subject_classes

    chosen = {subject_classes(count, effect_options.classes_for(name)) for name in composites}
    if len(chosen) != 1:
        return options
    return replace(options, output_subject_classes=chosen.pop(), output_confidence_masks=bool(keep_masks))


@contextlib.contextmanager
def _target(outputs, options):
    """Where results go: each input's files, or dataset shards (finished at the end of the run,
    thrown away unfinished if the run is interrupted)."""
    from ..job import FILES

    if not outputs.dataset:
        yield FILES
        return
    from ..datasets.target import Shards

    shards = Shards(outputs, str(options.model))
    try:
        yield shards
    except BaseException:
        shards.abort()
        raise
    shards.close()


def _given(parameter: str) -> bool:
    """Whether the user typed the option (not its default)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(parameter) is not ParameterSource.DEFAULT


class _ReadAhead:
    """The first inputs, read before any work (to count them, and to protect them from being
    written over), then the rest as they stream in; each handed on and forgotten."""

    def __init__(self, ahead, rest):
        self.ahead, self._rest = ahead, rest

    def __iter__(self):
        while self.ahead:
            yield self.ahead.popleft()
        yield from self._rest


def _streamed(items, ahead: int = READ_AHEAD):
    """(the inputs, their count when the first ``ahead`` were all of them, else None)."""
    from collections import deque
    from itertools import islice

    first = deque(islice(items, ahead))
    return _ReadAhead(first, items), (len(first) if len(first) < ahead else None)


def _say(line: str) -> None:
    click.echo(f"segtool: {line}", err=True)
