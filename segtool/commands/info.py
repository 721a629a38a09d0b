"""`segtool info`: versions, execution providers and the models this machine has."""
from __future__ import annotations

import platform

import click


@click.command()
def info():
    """Print versions, onnxruntime's execution providers and the models found."""
    import numpy
    import onnxruntime

    from .. import __version__, registry
    from ..runtime import available_providers, choose_providers

    click.echo(f"segtool      {__version__}")
    click.echo(f"python       {platform.python_version()} ({platform.machine()})")
    click.echo(f"onnxruntime  {onnxruntime.__version__}")
    click.echo(f"numpy        {numpy.__version__}")
    click.echo(f"providers    {', '.join(available_providers())}")
    click.echo(f"auto picks   {choose_providers('auto')[0]}")
    click.echo(f"bundled dir  {registry.bundled_dir()}")
    click.echo(f"user dir     {registry.user_dir()}  (SEGTOOL_MODELS_DIR)")
    for name in registry.load_manifest():
        try:
            click.echo(f"model        {name:<17} {registry.locate(name).path}")
        except registry.ModelError as exc:
            click.echo(f"model        {name:<17} not installed")
