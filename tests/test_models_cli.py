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
    # one convention everywhere: H x W x C, as models info and the README write it
    assert "bundled" in out and "H x W x C" in out and "144x256x3" in out and "256x144x3" not in out
    assert "144x256x3 (H x W x C)" in segtool("models", "info", "selfie_landscape").stdout
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "| `selfie_landscape` | SelfieSegmenter (landscape) | 144x256 |" in readme and "(H x W)" in readme


def test_using_a_model_not_installed_names_the_command(models_dir, tmp_path):
    done = segtool("image", ASTRONAUT, "--model", "multiclass", "-o", str(tmp_path), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "segtool: model 'multiclass' is not installed: run `segtool models install multiclass`")


def test_install_multiclass_converts_verifies_and_runs(models_dir, standin_dir, tmp_path):
    first = segtool("models", "install", "multiclass", "--from", str(standin_dir), "--trust-file")
    assert "installed at" in first.stdout
    assert "is not the pinned one, as --trust-file asked" in first.stderr
    assert "XNNPACK" not in first.stderr and "oneDNN" not in first.stderr and "absl" not in first.stderr
    assert len(first.stderr.splitlines()) == 1  # TensorFlow's own log lines stay off the terminal
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
    assert done.returncode == 1 and "is not the pinned" in done.stderr
    # trusting the file skips the sha256, never the signature check
    done = segtool("models", "install", "multiclass", "--from", str(tmp_path), "--trust-file", check=False)
    assert done.returncode == 1 and "not the expected 'multiclass' model" in done.stderr
    assert not (models_dir / "multiclass.onnx").exists()


def test_install_refuses_a_sha256_mismatch(models_dir, tmp_path, shared_models):
    (tmp_path / "hair_segmentation.tflite").write_bytes(
        (shared_models / "hair_segmentation.tflite").read_bytes()[:-1] + b"x")
    done = segtool("models", "install", "hair", "--from", str(tmp_path), check=False)
    assert done.returncode == 1 and "is not the pinned" in done.stderr


def test_multiclass_is_pinned_to_the_official_file(models_dir, standin_dir):
    from segtool import registry

    spec = registry.spec_for("multiclass")
    assert spec.source_sha256 == "c6748b1253a99067ef71f7e26ca71096cd449baefa8f101900ea23016507e0e0"
    assert spec.source_size == 16_371_837
    done = segtool("models", "install", "multiclass", "--from", str(standin_dir), check=False)
    assert done.returncode == 1 and not (models_dir / "multiclass.onnx").exists()
    assert "not the pinned 16,371,837 of the official selfie_multiclass_256x256.tflite" in done.stderr
    assert "--trust-file installs it anyway" in done.stderr and len(done.stderr.splitlines()) == 1


def test_verify_finds_a_damaged_install(models_dir, standin_dir):
    segtool("models", "install", "multiclass", "--from", str(standin_dir), "--trust-file")
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


# ---- hostile install records and model folders ----------------------------------------------------

RECORDS = ["null", "[]", '"hair"', "42", "true", "{}", '{"onnx_sha256": 5}', '{"onnx_sha256": "ab"}',
           '{"onnx_sha256": "%(sha)s", "labels": [1, 2]}', '{"onnx_sha256": "%(sha)s", "labels": ["a"]}',
           '{"onnx_sha256": "%(sha)s", "input": {"height": "512"}}', '{"onnx_sha256": "%(sha)s", "input": []}',
           '{"onnx_sha256": "%(sha)s", "normalization": {"mean": "x"}}',
           '{"onnx_sha256": "%(sha)s", "normalization": {"std": 0}}',
           '{"onnx_sha256": "%(sha)s", "localized_labels": {"fr": null}}',
           '{"onnx_sha256": "%(sha)s", "localized_labels": []}', '{"onnx_sha2', "\xff\xfe", ""]


@pytest.mark.parametrize("record", RECORDS)
def test_a_damaged_install_record_is_one_line_everywhere(models_dir, tmp_path, record):
    import hashlib

    from segtool import registry

    models_dir.mkdir()
    model = models_dir / "hair.onnx"
    model.write_bytes((registry.bundled_dir() / "selfie.onnx").read_bytes())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    (models_dir / "hair.json").write_bytes((record % {"sha": sha}).encode("latin-1"))
    expected = f"{model}: its install record is missing or damaged"
    listed = segtool("models", "list")
    assert "damaged" in listed.stdout and not listed.stderr
    assert f"damaged: {expected}" in segtool("info").stdout
    assert expected in segtool("models", "info", "hair").stdout
    verified = segtool("models", "verify", check=False)
    assert verified.returncode == 1 and f"hair              damaged: {expected}" in verified.stdout
    used = segtool("image", ASTRONAUT, "-m", "hair", "-o", str(tmp_path / "out"), check=False)
    assert used.returncode == 1 and used.stderr.splitlines() == [
        next(line for line in used.stderr.splitlines() if expected in line)]
    assert "reinstall with `segtool models install hair --force`" in used.stderr


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file", "read_only"])
def test_install_into_a_folder_that_cannot_take_it(tmp_path, monkeypatch, shared_models, where):
    import os

    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    folder = {"under_a_file": blocker / "models", "is_a_file": blocker, "read_only": tmp_path / "ro"}[where]
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder.mkdir()
        folder.chmod(0o500)
    monkeypatch.setenv("SEGTOOL_MODELS_DIR", str(folder))
    done = segtool("models", "install", "hair", "--from", str(shared_models), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        next(line for line in done.stderr.splitlines() if line.startswith(f"segtool: {folder}: cannot install"))]
    assert "set SEGTOOL_MODELS_DIR to a writable folder" in done.stderr


def test_fix_hints_fit_how_segtool_was_installed(monkeypatch):
    from segtool import registry

    selfie = registry.spec_for("selfie")
    checkout = registry.source_checkout()
    if checkout is None:  # a wheel
        assert registry.extra_hint("convert") == "pip install 'segtool[convert]'"
        assert "pip install --force-reinstall segtool" in registry.reinstall_hint(selfie)
        return
    assert registry.extra_hint("convert") == f"pip install -e '{checkout}[convert]'"
    monkeypatch.delenv("SEGTOOL_BUNDLED_DIR", raising=False)
    if registry.bundled_dir() == checkout / "models":
        assert registry.reinstall_hint(selfie) == f"restore it from git (git -C {checkout} checkout models/selfie.onnx)"
    monkeypatch.setenv("SEGTOOL_BUNDLED_DIR", "/somewhere/else")  # models not from the clone: pip's form
    assert "pip install --force-reinstall segtool" in registry.reinstall_hint(selfie)
