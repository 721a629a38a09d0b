"""Running the real `segtool` command in a subprocess, against a private copy of the models."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segtool import registry
from segtool.io.ledger import LEDGER_NAME

MODELS_NEEDED = ("selfie.onnx",)


def segtool_command() -> list[str]:
    """The installed console script when there is one (what users run), else the same entry point."""
    script = Path(sys.executable).with_name("segtool")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from segtool.cli import main; main()"]


def copy_models(target: Path) -> Path:
    """A copy of the bundled models (manifest and ONNX files) that a test may damage.

    A bundled model that is missing fails the test: it is committed, so its absence is a bug.
    """
    source = registry.bundled_dir()
    missing = [name for name in MODELS_NEEDED if not (source / name).is_file()]
    assert not missing, f"bundled models missing from {source}: {', '.join(missing)}"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix in (".json", ".onnx"):
            shutil.copy2(path, target / path.name)
    return target


@pytest.fixture
def model_env(tmp_path) -> dict:
    """Environment for a segtool subprocess: a private model copy, no user models, no colour."""
    env = dict(os.environ)
    env["SEGTOOL_BUNDLED_DIR"] = str(copy_models(tmp_path / "bundled-models"))
    env["SEGTOOL_MODELS_DIR"] = str(tmp_path / "user-models")
    env.pop("SEGTOOL_MODEL", None)
    env["NO_COLOR"] = "1"
    return env


def needs_model(name: str) -> None:
    """Skip only for the hair model when ../shared/models is absent (conftest installs it from
    there; it may not be committed). A bundled model is never skipped: if it is missing, the
    test that uses it fails."""
    spec = registry.spec_for(name)
    if not spec.bundled and not registry.installed_path(spec).is_file():
        pytest.skip(f"model '{name}' is installed from ../shared/models, which is absent here")


def reset_signals() -> None:
    """For a child that a test will signal: every stop signal as a shell leaves it.

    A suite started from nohup or as a background job passes SIGINT (or SIGHUP) on ignored,
    and an ignored signal stays ignored in the child: the test would measure that, not segtool.
    """
    import signal

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)


def start_segtool(args: list, env: dict, **options) -> subprocess.Popen:
    """The real command in the background, with signal dispositions of its own (reset_signals)."""
    options.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(segtool_command() + [str(a) for a in args], env=env, preexec_fn=reset_signals,
                            **options)


def run_segtool(args: list, env: dict, *, timeout: float = 300, **options) -> subprocess.CompletedProcess:
    return subprocess.run(segtool_command() + [str(a) for a in args], env=env, capture_output=True,
                          timeout=timeout, **options)


def run_on_terminal(args: list, env: dict, *, timeout: float = 60) -> tuple[int, bytes]:
    """Run segtool with stderr on a pseudo-terminal (as a user at a shell sees it): (exit, bytes shown)."""
    import contextlib
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(segtool_command() + [str(a) for a in args], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the command has exited
        while chunk := os.read(controller, 4096):
            shown += chunk
    os.close(controller)
    return process.wait(timeout=timeout), shown


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return os.fsdecode(result.stderr).splitlines()


def partial_files(folder: Path) -> list[Path]:
    """Temporaries atomic_output left behind: there must never be any."""
    return [p for p in Path(folder).rglob("*") if ".part-" in p.name]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative name, with its bytes; segtool's ledgers left out
    (they hold modification times, which differ from run to run) and its lock."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and not p.name.startswith(LEDGER_NAME)}


def visible(folder: Path) -> list[str]:
    """The names in ``folder`` as `ls` shows them: segtool's hidden ledger left out."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))
