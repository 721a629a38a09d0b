"""`segtool models` through the real CLI: list, info, install (real conversion), verify."""
from __future__ import annotations

import json
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

from standin import LABELS, LABELS_FR, make_standin_multiclass

ASTRONAUT = str(Path(__file__).resolve().parent.parent / "docs" / "astronaut.jpg")


def segtool(*args, env=None, check=True):
    done = subprocess.run([sys.executable, "-m", "segtool", *args], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"segtool {' '.join(args)} -> {done.returncode}\n{done.stderr}")
    return done


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("SEGTOOL_MODELS_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="making the stand-in model needs the convert extra")
    folder = tmp_path_factory.mktemp("standin")
    make_standin_multiclass(folder / "selfie_multiclass_256x256.tflite")
    return folder


def test_list_shows_every_model_and_what_is_installed(models_dir):
    out = segtool("models", "list").stdout
    for name in ("selfie", "selfie_landscape", "deeplab", "hair", "multiclass"):
        assert name in out
    assert "bundled" in out and "256x144x3" in out


def test_using_a_model_not_installed_names_the_command(models_dir, tmp_path):
    done = segtool("image", ASTRONAUT, "--model", "multiclass", "-o", str(tmp_path), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "segtool: model 'multiclass' is not installed: run `segtool models install multiclass`")


def test_install_multiclass_converts_verifies_and_runs(models_dir, standin_dir, tmp_path):
    first = segtool("models", "install", "multiclass", "--from", str(standin_dir))
    assert "installed at" in first.stdout and "no sha256 is pinned" in first.stderr
    assert (models_dir / "multiclass.onnx").is_file()
    again = segtool("models", "install", "multiclass", "--from", str(standin_dir))
    assert "already installed" in again.stdout
    info = segtool("models", "info", "multiclass", "--locale", "fr").stdout
    assert all(label in info for label in LABELS_FR)
    segtool("image", ASTRONAUT, "--model", "multiclass", "--category-mask", "--json",
            "-o", str(tmp_path / "out"))
    confidence = np.load(tmp_path / "out" / "astronaut.confidence.npy")
    assert confidence.shape == (len(LABELS), 512, 512) and confidence.dtype == np.float32
    np.testing.assert_allclose(confidence.sum(axis=0), 1.0, atol=1e-4)


def test_install_refuses_a_file_that_is_not_the_model(models_dir, shared_models, tmp_path):
    impostor = tmp_path / "selfie_multiclass_256x256.tflite"
    impostor.write_bytes((shared_models / "selfie_segmenter.tflite").read_bytes())
    done = segtool("models", "install", "multiclass", "--from", str(tmp_path), check=False)
    assert done.returncode == 1 and "not the expected 'multiclass' model" in done.stderr
    assert not (models_dir / "multiclass.onnx").exists()


def test_install_refuses_a_sha256_mismatch(models_dir, tmp_path, shared_models):
    (tmp_path / "hair_segmentation.tflite").write_bytes(
        (shared_models / "hair_segmentation.tflite").read_bytes()[:-1] + b"x")
    done = segtool("models", "install", "hair", "--from", str(tmp_path), check=False)
    assert done.returncode == 1 and "is not the pinned" in done.stderr


def test_verify_finds_a_damaged_install(models_dir, standin_dir):
    segtool("models", "install", "multiclass", "--from", str(standin_dir))
    assert "multiclass        ok" in segtool("models", "verify").stdout
    model = models_dir / "multiclass.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    done = segtool("models", "verify", check=False)
    assert done.returncode == 1 and "multiclass        damaged" in done.stdout
    assert "segtool models install multiclass --force" in done.stdout


def test_bundled_models_need_no_install(models_dir):
    assert "already installed" in segtool("models", "install", "selfie").stdout
    sidecars = list(models_dir.glob("*.json")) if models_dir.exists() else []
    assert not sidecars


def test_locale_falls_back_to_english(models_dir):
    out = segtool("models", "info", "deeplab", "--locale", "xx").stdout
    assert "dining table" in out and "person" in out


def test_json_lines_carry_categories(models_dir, tmp_path):
    out = segtool("image", ASTRONAUT, "--model", "deeplab", "--no-confidence-masks",
                  "--category-mask", "--json", "-o", str(tmp_path)).stdout
    line = json.loads(out.strip().splitlines()[0])
    assert line["ok"] and "person" in line["categories"]
    assert abs(sum(line["categories"].values()) - 1.0) < 1e-3
