"""Session set-up shared by all tests: a private model folder with the hair model installed.

The hair network is data only (never committed): it is converted here from ../shared/models
(or $SEGTOOL_SHARED_MODELS) through the real `models install` path. Without that folder the
hair tests skip, saying why.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from segtool_process import model_env  # noqa: F401  (a fixture for every test module)
from services import ray_cluster, s3_server  # noqa: F401  (session services, started when first used)

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = Path(os.environ.get("SEGTOOL_SHARED_MODELS", ROOT.parent / "shared" / "models"))


@pytest.fixture(scope="session", autouse=True)
def user_models_dir(tmp_path_factory):
    """Point SEGTOOL_MODELS_DIR at a fresh folder and install hair into it when possible."""
    folder = tmp_path_factory.mktemp("segtool-models")
    previous = os.environ.get("SEGTOOL_MODELS_DIR")
    os.environ["SEGTOOL_MODELS_DIR"] = str(folder)
    if (SHARED_MODELS / "hair_segmentation.tflite").is_file():
        from segtool.install import install

        install("hair", source=str(SHARED_MODELS))
    yield folder
    if previous is None:
        os.environ.pop("SEGTOOL_MODELS_DIR", None)
    else:
        os.environ["SEGTOOL_MODELS_DIR"] = previous


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"{SHARED_MODELS} is absent: the upstream TFLite files are not on this machine")
    return SHARED_MODELS


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB file system of its own: real ENOSPC from the kernel (needs root and mount)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the in-process variant below still runs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
