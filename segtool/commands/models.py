"""`segtool models`: list, describe, install, add and verify segmentation models."""
from __future__ import annotations

import sys

import click

from .options import ModelParam, manifest_names


@click.group()
def models():
    """List, describe, install, add and verify models."""


def _human_size(path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def _where(name):
    """(state, path or None, the spec with installed facts, problem) for one model.

    state: "bundled", "yes", "no" (not installed) or "damaged" (problem says why).
    """
    from .. import registry

    if name not in registry.load_manifest():
        return _where_custom(name)
    spec = registry.spec_for(name)
    try:
        model = registry.locate(name)
    except registry.ModelNotInstalledError:
        return "no", None, spec, ""
    except registry.ModelError as exc:
        return "damaged", registry.installed_path(spec), spec, str(exc)
    return "bundled" if spec.bundled else "yes", model.path, model.spec, ""


def _where_custom(name):
    """_where for an added model or a model file: "added" / "file", or "damaged" and why."""
    from .. import registry, usermodels

    try:
        model = registry.resolve(name)
    except registry.ModelError as exc:
        stub = registry.ModelSpec(name, name, "", False, 0, 0, 0, 0.0, 1.0, "none", (), "", name, None, custom=True)
        return "damaged", None, stub, str(exc)
    return "added" if usermodels.added_file(name) else "file", model.path, model.spec, ""


@models.command("list")
def list_models():
    """A table of every model: input size, categories, installed or not, size, origin."""
    from rich.console import Console
    from rich.table import Table

    from .. import registry

    table = Table("name", "input (H x W x C)", "categories", "installed", "size", "source")
    for name in registry.model_names():
        state, path, spec, _ = _where(name)
        known = spec.input_height > 0
        table.add_row(name, f"{spec.input_height}x{spec.input_width}x{spec.input_channels}" if known else "-",
                      str(len(spec.labels)) if known else "-", state, _human_size(path) if path and path.is_file() else "-",
                      spec.source_file)
    console = Console(width=200 if not sys.stdout.isatty() else None)
    with console.capture() as captured:  # printed by Click: rich would exit 1 on a closed stdout
        console.print(table)
    click.echo(captured.get(), nl=False)


@models.command()
@click.argument("name", type=ModelParam())
@click.option("--locale", default="en", show_default=True, help="Language of the labels.")
def info(name, locale):
    """Labels, normalization, checksums and origin of one model (a name or a model file)."""
    state, path, spec, problem = _where(name)
    if state == "damaged" and spec.custom:
        from ..errors import ModelError

        raise ModelError(problem)
    click.echo(f"name           {spec.name} ({spec.title})")
    click.echo(f"input          {spec.input_height}x{spec.input_width}x{spec.input_channels} (H x W x C), NHWC float32")
    click.echo(f"normalization  (pixel - {spec.mean:g}) / {spec.std:g}")
    click.echo(f"activation     {spec.activation}")
    click.echo(f"file           {path if state in ('bundled', 'yes', 'added', 'file') else problem or 'not installed: segtool models install ' + name}")
    click.echo(f"onnx sha256    {spec.onnx_sha256 or '-'}")
    click.echo(f"source         {spec.source_url}")
    click.echo(f"source sha256  {spec.source_sha256 or 'not pinned'}")
    click.echo(f"license        {spec.license}")
    locales = ", ".join(["en", *spec.localized_labels]) if spec.localized_labels else "en"
    named = "" if spec.labels_given else "; the model names none: numbered"
    click.echo(f"labels ({locale}; has {locales}{named}):")
    for index, label in enumerate(spec.labels_for(locale)):
        click.echo(f"  {index:>3}  {label}")


@models.command()
@click.argument("name", type=click.Choice(manifest_names()))
@click.option("--from", "source", metavar="DIR|URL", default=None,
              help="A folder holding the model's TFLite file, or a URL (default: the official URL).")
@click.option("--force", is_flag=True, help="Reinstall even if an intact copy is installed.")
@click.option("--trust-file", is_flag=True,
              help="Install the file even though its sha256 is not the pinned one (you vouch for it; "
                   "its TFLite signature is still checked).")
def install(name, source, force, trust_file):
    """Download (or copy), verify, convert and install a model into the user's model folder.

    The file's sha256 must be the one models/manifest.json pins. The folder is
    ~/.cache/segtool/models unless SEGTOOL_MODELS_DIR says otherwise.
    """
    from ..install import install as install_model

    with _download_bar() as on_progress:
        report = install_model(name, source=source, force=force, trust_file=trust_file, on_progress=on_progress)
    if report.already:
        click.echo(f"{name}: already installed at {report.path}")
    else:
        click.echo(f"{name}: installed at {report.path} (from {report.source})")
    if report.trusted:
        click.echo(f"segtool: note: {name}: installed a file whose sha256 {report.source_sha256} is not the "
                   "pinned one, as --trust-file asked", err=True)


@models.command()
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace a model already added under this name.")
def add(name, file, force):
    """Keep your own TFLite or ONNX model FILE under NAME, so that `--model NAME` runs it.

    The file is checked (and a TFLite file converted) now; a copy goes into the user's model
    folder with its facts file (FILE.json) if there is one, so FILE may move afterwards.
    """
    from .. import usermodels

    model = usermodels.add(name, file, taken=manifest_names(), force=force)
    spec = model.spec
    click.echo(f"{name}: added ({spec.input_height}x{spec.input_width}x{spec.input_channels} input, "
               f"{len(spec.labels)} categories: {', '.join(spec.labels[:6])}{', ...' if len(spec.labels) > 6 else ''})")


@models.command()
@click.argument("name", type=ModelParam(names_only=True))
def remove(name):
    """Forget a model kept with `segtool models add` (built-in models cannot be removed)."""
    from .. import usermodels

    if name in manifest_names():
        raise click.UsageError(f"'{name}' is a built-in model; only added models can be removed")
    usermodels.remove(name)
    click.echo(f"{name}: removed")


class _download_bar:
    """A rich download bar on a terminal; silent otherwise."""

    def __enter__(self):
        if not sys.stderr.isatty():
            return lambda done, total: None
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self._bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                             console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("downloading", total=None)
        return lambda done, total: self._bar.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        if hasattr(self, "_bar"):
            self._bar.__exit__(*exc)


@models.command()
def verify():
    """Re-hash every installed model and say which are damaged (exit 1 if any)."""
    from ..install import verify_all

    damaged = 0
    for report in verify_all():
        click.echo(f"{report.name:<17} {report.state}" + (f": {report.detail}" if report.detail else ""))
        damaged += report.state == "damaged"
    sys.exit(1 if damaged else 0)
