"""The `segtool` command: a lazy Click group, shared option decorators, errors -> exit codes.

Exit codes: 0 all inputs done; 1 some inputs failed, or something outside the command line
refused (output folder not writable, disk full, model damaged or missing); 2 usage error (the
command line itself); 128 + the signal's number when a signal ends the run: 129 SIGHUP (the
terminal closed), 130 SIGINT (Ctrl-C), 131 SIGQUIT (Ctrl-\\), 143 SIGTERM (kill, systemd, docker
stop), with no partial output left behind. A signal that was ignored when segtool started (SIGHUP
under nohup) stays ignored. Heavy modules (numpy, onnxruntime, imageio) are imported by the
subcommands only when they run.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys


# The signals that end a run from a terminal (Ctrl-C, Ctrl-\, closing it) or a service manager,
# with the word segtool ends on; SIGHUP and SIGQUIT do not exist on Windows.
STOP_SIGNALS = {getattr(signal, name): word for name, word in (
    ("SIGINT", "interrupted"), ("SIGTERM", "terminated"), ("SIGHUP", "hung up"), ("SIGQUIT", "quit"))
    if hasattr(signal, name)}


def _stopped_while_starting(signum, frame):
    with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes the message with it
        os.write(2, f"segtool: {STOP_SIGNALS[signum]}\n".encode())
    os._exit(128 + signum)


def _takes_over(number) -> bool:
    """Whether segtool may handle this signal: not when its parent had it ignored (nohup)."""
    return signal.getsignal(number) in (signal.default_int_handler, signal.SIG_DFL, _stopped_while_starting)


# The `segtool` program itself: a stop signal while Python still imports (Click, then the
# command's modules) ends with the usual line and status instead of a traceback; nothing has
# been written yet. main() takes over. Importing this module anywhere else changes nothing.
if os.path.basename(sys.argv[0] if sys.argv else "") in ("segtool", "segtool.exe"):
    for _number in STOP_SIGNALS:
        if _takes_over(_number):
            signal.signal(_number, _stopped_while_starting)

import click  # noqa: E402

from .errors import SegtoolError  # noqa: E402

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

    # A closed stdout is handled here, not in main(): Click's own handler, which runs first,
    # would turn it into exit 1. make_context prints --help, invoke everything else.
    def make_context(self, *args, **kwargs):
        with _quiet_on_closed_stdout():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _quiet_on_closed_stdout():
            return super().invoke(ctx)


@contextlib.contextmanager
def _quiet_on_closed_stdout():
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        stdout_closed()


def stdout_closed() -> None:
    """`segtool ... | head -1`: the reader has all it wants; end quietly, exit 0, nothing partial left.

    stdout is pointed at /dev/null first, or Python's last flush at exit would fail on it again.
    """
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    writers = sys.modules.get("segtool.io.writers")
    if writers is not None:
        writers.remove_partial_outputs()
    sys.exit(0)


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

    
    Exit status: 0 all done; 1 an input failed (one line each on stderr), or the output
    folder, disk or model refused; 2 usage error; 128 + N after signal N (no partial files):
    129 SIGHUP, 130 Ctrl-C, 131 SIGQUIT, 143 SIGTERM.
    """


class Terminated(BaseException):
    """SIGTERM, SIGHUP or SIGQUIT (``signum``), raised like Ctrl-C so that `finally` blocks remove
    partial outputs."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"segtool: {message}", err=True)
    sys.exit(code)


def interrupted(signum: int) -> None:
    """Exit after a stop signal, with 128 + its number: no partial output may survive, whatever
    else arrives."""
    # A second Ctrl-C while we tidy up must not cut the tidying short.
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    writers = sys.modules.get("segtool.io.writers")  # not loaded: nothing was being written
    if writers is not None:
        writers.remove_partial_outputs()
    try:
        click.echo(f"segtool: {STOP_SIGNALS.get(signum, 'stopped')}", err=True)
    except OSError:  # the terminal is gone (SIGHUP): nowhere to say it, and Python's last flush must not fail
        with open(os.devnull, "wb") as devnull:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(devnull.fileno(), stream.fileno())
    sys.exit(128 + signum)


def main(argv=None) -> None:
    for number in STOP_SIGNALS:
        if _takes_over(number):
            signal.signal(number, signal.default_int_handler if number == signal.SIGINT else _raise_terminated)
    try:
        cli.main(args=argv, prog_name="segtool", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Click's name for a KeyboardInterrupt
        interrupted(signal.SIGINT)
    except SegtoolError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        interrupted(signal.SIGINT)
    except Terminated as exc:
        interrupted(exc.signum)
    except BrokenPipeError:
        stdout_closed()
    except Exception as exc:
        signalled = _signal_behind(exc)
        if signalled is None:
            raise
        interrupted(getattr(signalled, "signum", signal.SIGINT))


def _signal_behind(exc: BaseException):
    """The KeyboardInterrupt or Terminated an exception was raised from, if any.

    A signal that lands while a C extension initialises (onnxruntime's import takes a while)
    comes back as ImportError("initialization failed") chained to it: still an interruption.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
