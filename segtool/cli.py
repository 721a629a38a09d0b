"""The `segtool` command: a lazy Click group, shared option decorators, errors -> exit codes.

Exit codes: 0 all inputs done, 1 some inputs failed, 2 usage error, 130/143 interrupted.
Heavy modules (numpy, onnxruntime, imageio) are imported by the subcommands only when they run.
"""
from __future__ import annotations

import importlib
import signal
import sys

import click

from .errors import SegtoolError

SUBCOMMANDS = {
    "image": "segtool.commands.image:image",
    "video": "segtool.commands.video:video",
    "webcam": "segtool.commands.webcam:webcam",
    "models": "segtool.commands.models:models",
    "info": "segtool.commands.info:info",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand is invoked (or its help shown)."""

    def list_commands(self, ctx):
        return [name for name, target in SUBCOMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None or not _module_exists(target):
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="segtool")
def cli():
    """Segment images, videos and live video with MediaPipe's segmentation models.

    \b
    segtool image portrait.jpg -o out/            out/portrait.confidence.npy
    segtool image photos/ --category-mask --blur -o out/
    find . -name '*.jpg' | segtool image - --category-mask -o masks/
    """


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that `finally` blocks remove partial outputs."""


def _raise_terminated(signum, frame):
    raise Terminated()


def fail(message: str, code: int = 1) -> None:
    click.echo(f"segtool: {message}", err=True)
    sys.exit(code)


def main(argv=None) -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        cli.main(args=argv, prog_name="segtool", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("interrupted", 130)
    except SegtoolError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Terminated:
        fail("terminated", 143)
    except BrokenPipeError:
        sys.stderr.close()  # `segtool ... | head` is not an error
        sys.exit(0)
