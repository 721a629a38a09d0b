"""A damaged or wrong model file: one line that names it and says how to reinstall; exit 1."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import badinput_corpus as corpus
from segtool import registry
from segtool_process import run_segtool, stderr_lines

BUNDLED_HINT = "reinstall segtool (pip install --force-reinstall segtool)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundled(env) -> Path:
    """The test's private copy of the bundled models, every present model's sha256 recorded.

    The shipped manifest records them (test_shipped_manifest_records_checksums); recording them
    here too keeps these tests about segtool's reaction, not about the manifest's state.
    """
    folder = Path(env["SEGTOOL_BUNDLED_DIR"])
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["models"].values():
        if entry["bundled"] and (folder / entry["file"]).is_file():
            entry.setdefault("onnx_sha256", sha256(folder / entry["file"]))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def picture(tmp_path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(corpus.png(corpus.chelsea()))
    return path


def segment_with(model: str, picture: Path, env) -> list[str]:
    result = run_segtool(["image", picture, "-m", model, "-o", picture.parent / "out"], env)
    assert result.returncode == 1
    assert not (picture.parent / "out").exists() or not any((picture.parent / "out").iterdir())
    return stderr_lines(result)


def test_shipped_manifest_records_checksums():
    folder = registry.bundled_dir()
    for spec in registry.load_manifest().values():
        if spec.bundled and (folder / spec.file).is_file():
            assert spec.onnx_sha256 == sha256(folder / spec.file), spec.name


def test_flipped_byte_in_a_bundled_model(picture, model_env):
    model = bundled(model_env) / "selfie.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    assert segment_with("selfie", picture, model_env) == [
        f"segtool: {model}: damaged model file (sha256 mismatch); {BUNDLED_HINT}"]


def test_truncated_bundled_model(picture, model_env):
    model = bundled(model_env) / "selfie.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    lines = segment_with("selfie", picture, model_env)
    assert len(lines) == 1 and str(model) in lines[0] and BUNDLED_HINT in lines[0]


def test_wrong_model_under_a_bundled_name(picture, model_env):
    folder = bundled(model_env)
    shutil.copyfile(folder / "selfie.onnx", folder / "deeplab.onnx")
    lines = segment_with("deeplab", picture, model_env)
    assert len(lines) == 1 and str(folder / "deeplab.onnx") in lines[0] and BUNDLED_HINT in lines[0]


def install_by_hand(env, name: str, onnx: Path, facts: dict | None) -> Path:
    """What `segtool models install` leaves: the ONNX file and its sidecar of facts."""
    folder = Path(env["SEGTOOL_MODELS_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.onnx"
    shutil.copyfile(onnx, target)
    if facts is not None:
        target.with_suffix(".json").write_text(json.dumps(facts))
    return target


def test_damaged_installed_model(picture, model_env):
    # selfie's file stands in for multiclass (same input size), recorded then damaged.
    source = bundled(model_env) / "selfie.onnx"
    target = install_by_hand(model_env, "multiclass", source, {"onnx_sha256": sha256(source)})
    target.write_bytes(target.read_bytes()[:-10])
    assert segment_with("multiclass", picture, model_env) == [
        f"segtool: {target}: damaged model file (sha256 mismatch); "
        "reinstall with `segtool models install multiclass --force`"]


def test_installed_model_without_its_record(picture, model_env):
    target = install_by_hand(model_env, "multiclass", bundled(model_env) / "selfie.onnx", None)
    lines = segment_with("multiclass", picture, model_env)
    assert len(lines) == 1 and str(target) in lines[0]
    assert "`segtool models install multiclass --force`" in lines[0]


def test_model_not_installed(picture, model_env):
    assert segment_with("multiclass", picture, model_env) == [
        "segtool: model 'multiclass' is not installed: run `segtool models install multiclass`"]
