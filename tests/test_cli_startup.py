"""`segtool --help` for every command: it works, and it loads nothing heavy (start-up stays fast)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segtool.cli import SUBCOMMANDS

HEAVY = ("numpy", "onnxruntime", "imageio", "cv2", "PIL", "OpenEXR", "rich", "tensorflow", "ray", "fsspec", "upath")
COMMANDS = [[], *([name] for name in SUBCOMMANDS), ["models", "list"], ["models", "install"]]


def loaded_after_help(args: list[str]) -> tuple[str, list[str]]:
    """Run `segtool ARGS --help` in a fresh interpreter; return its help text and heavy modules loaded."""
    probe = (
        "import sys, json, contextlib, io\n"
        "from segtool.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        f"    main({args + ['--help']!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps([out.getvalue(), heavy]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    text, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return text, heavy


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "segtool")
def test_help_works_and_imports_nothing_heavy(args):
    text, heavy = loaded_after_help(args)
    assert text.startswith("Usage: segtool"), text
    assert heavy == [], f"`segtool {' '.join(args)} --help` imported {heavy}"


def test_every_subcommand_is_listed():
    text, _ = loaded_after_help([])
    for name in SUBCOMMANDS:
        assert f"  {name} " in text or f"  {name}\n" in text, name


def test_usage_error_exits_2():
    done = subprocess.run([sys.executable, "-m", "segtool", "image", "--no-such-flag"], capture_output=True, text=True)
    assert done.returncode == 2 and "No such option" in done.stderr


def test_one_still_image_loads_no_video_or_conversion_code(tmp_path):
    """`segtool image one.jpg` imports what it uses: not the video module (ffmpeg helpers, colour
    tags), not the TFLite reader that only a user's own model file needs, not onnx."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(tmp_path / "one.jpg")
    probe = (
        "import sys, json, contextlib\n"
        "from segtool.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        f"    main(['image', {str(tmp_path / 'one.jpg')!r}, '-o', {str(tmp_path / 'out')!r}, '-q'])\n"
        "print(json.dumps([m for m in ('segtool.io.video', 'segtool.convert.metadata', 'zipfile', 'onnx')"
        " if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert any((tmp_path / "out").iterdir())  # it did the job
