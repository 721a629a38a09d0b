"""`segtool info`: versions, execution providers, thread defaults and the models this machine has."""
from __future__ import annotations

import platform

import click


@click.command()
def info():
    """Print versions, onnxruntime's execution providers, thread defaults and the models found."""
    import numpy
    import onnxruntime

    from .. import __version__, registry
    from ..runtime import (DEVICE_PROVIDERS, available_devices, available_providers, choose_path,
                           choose_providers, default_batch_size, default_jobs, default_threads,
                           physical_cores, usable_cpus)

    auto = choose_providers("auto")[0]
    path = choose_path(choose_providers("auto"))
    rows = [
        ("segtool", __version__),
        ("python", f"{platform.python_version()} ({platform.machine()})"),
        ("onnxruntime", f"{onnxruntime.__version__} ({_build(onnxruntime)})"),
        ("numpy", numpy.__version__),
        ("providers", ", ".join(available_providers())),
        ("devices", ", ".join(available_devices())),
        ("auto picks", next(name for name, provider in DEVICE_PROVIDERS.items() if provider == auto)),
        ("auto path", f"{path.name}: {path.reason}"),
        ("batch size", f"{default_batch_size(path, [auto])} per inference call in `segtool image` (--batch-size)"),
        ("cpus", f"{usable_cpus()} usable, {physical_cores()} physical cores"),
        ("threads", f"{default_threads()} per segmenter; `segtool image`: {default_jobs()} jobs x "
                    f"{default_threads(default_jobs())} threads"),
        ("bundled dir", registry.bundled_dir()),
        ("user dir", f"{registry.user_dir()}  (SEGTOOL_MODELS_DIR)"),
    ]
    for label, value in rows:
        click.echo(f"{label:<12} {value}")
    for name in registry.load_manifest():
        try:
            click.echo(f"{'model':<12} {name:<17} {registry.locate(name).path}")
        except registry.ModelNotInstalledError:
            click.echo(f"{'model':<12} {name:<17} not installed (segtool models install {name})")
        except registry.ModelError as exc:
            click.echo(f"{'model':<12} {name:<17} damaged: {exc}")


def _build(onnxruntime) -> str:
    # The GPU wheel is a different distribution with the same module name: say which one this is.
    from importlib import metadata

    for dist in ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime"):
        try:
            metadata.version(dist)
            return dist
        except metadata.PackageNotFoundError:
            continue
    return "unknown build"
