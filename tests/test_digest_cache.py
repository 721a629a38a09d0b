"""A model's verified sha256 is remembered while the file is unchanged; any change hashes it again."""
from __future__ import annotations

import hashlib
import json
import time
import os
from pathlib import Path

import pytest

import badinput_corpus as corpus
from segtool import digest_cache, registry
from segtool_process import run_segtool


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled at once (the 2 s guard has its own test)."""
    monkeypatch.setattr(digest_cache, "_RACY_NS", -10**18)


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_file(tmp_path, data=b"model bytes " * 1000) -> tuple[Path, str]:
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_an_unchanged_file_is_hashed_once(tmp_path, settled):
    path, digest = model_file(tmp_path)
    compute = Counting()
    for _ in range(3):
        assert digest_cache.verified_sha256(path, digest, tmp_path / "cache", compute) == digest
    assert compute.calls == 1
    assert (tmp_path / "cache" / digest_cache.CACHE_NAME).is_file()


@pytest.mark.parametrize("change", ["same size, other bytes", "shorter", "replaced by rename",
                                    "times set back", "chmod"])
def test_any_change_hashes_again(tmp_path, settled, change):
    path, digest = model_file(tmp_path)
    compute = Counting()
    digest_cache.verified_sha256(path, digest, tmp_path, compute)
    before = os.stat(path)
    if change == "same size, other bytes":
        with open(path, "r+b") as stream:
            stream.seek(100)
            stream.write(b"X")
    elif change == "shorter":
        path.write_bytes(path.read_bytes()[:-1])
    elif change == "replaced by rename":
        other = tmp_path / "other"
        other.write_bytes(path.read_bytes())
        os.replace(other, path)
    elif change == "times set back":
        with open(path, "r+b") as stream:
            stream.write(b"Y")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime as it was; ctime moves
    elif change == "chmod":
        os.chmod(path, 0o600)
    actual = digest_cache.verified_sha256(path, digest, tmp_path, compute)
    assert compute.calls == 2
    assert (actual == digest) == (change in ("replaced by rename", "chmod"))


def test_a_mismatch_is_never_remembered(tmp_path, settled):
    path, _ = model_file(tmp_path)
    compute = Counting()
    for _ in range(2):
        assert digest_cache.verified_sha256(path, "0" * 64, tmp_path, compute) != "0" * 64
    assert compute.calls == 2


def test_another_expected_digest_hashes_again(tmp_path, settled):
    path, digest = model_file(tmp_path)
    compute = Counting()
    digest_cache.verified_sha256(path, digest, tmp_path, compute)
    assert digest_cache.verified_sha256(path, "f" * 64, tmp_path, compute) == digest
    assert compute.calls == 2


def test_a_file_changed_just_now_is_not_remembered(tmp_path):
    path, digest = model_file(tmp_path)
    compute = Counting()
    digest_cache.verified_sha256(path, digest, tmp_path, compute)
    digest_cache.verified_sha256(path, digest, tmp_path, compute)
    assert compute.calls == 2  # within 2 s of its last change: a write in the same tick could hide


@pytest.mark.parametrize("content", [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe", b'{"x": 5}',
                                     b'{"%s": {"file": "nope", "sha256": 5}}'])
def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path, settled, content):
    path, digest = model_file(tmp_path)
    cache = tmp_path / digest_cache.CACHE_NAME
    cache.write_bytes(content.replace(b"%s", str(path).encode()) if b"%s" in content else content)
    compute = Counting()
    assert digest_cache.verified_sha256(path, digest, tmp_path, compute) == digest
    assert str(path) in json.loads(cache.read_text())
    assert digest_cache.verified_sha256(path, digest, tmp_path, compute) == digest
    assert compute.calls == 1


def test_a_forged_entry_for_other_bytes_does_not_pass(tmp_path, settled):
    """The cache holds identities, not trust: an entry whose file facts differ is not used."""
    path, digest = model_file(tmp_path)
    stat = os.stat(path)
    entry = [stat.st_size + 1, stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns]
    (tmp_path / digest_cache.CACHE_NAME).write_text(json.dumps({str(path): {"file": entry, "sha256": "a" * 64}}))
    compute = Counting()
    assert digest_cache.verified_sha256(path, "a" * 64, tmp_path, compute) == digest
    assert compute.calls == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_models_folder_still_verifies(tmp_path, settled):
    path, digest = model_file(tmp_path)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert digest_cache.verified_sha256(path, digest, folder, Counting()) == digest
        assert not any(folder.iterdir())
    finally:
        folder.chmod(0o700)


def test_an_unwritable_cache_location_still_verifies(tmp_path, settled):
    path, digest = model_file(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert digest_cache.verified_sha256(path, digest, blocker / "models", Counting()) == digest


def test_segtool_finds_a_model_damaged_after_its_digest_was_remembered(tmp_path, model_env):
    """Through the CLI: the second run trusts the cache, a damaged file is still refused."""
    bundled = Path(model_env["SEGTOOL_BUNDLED_DIR"])
    model = bundled / "selfie_landscape.onnx"
    manifest = json.loads((bundled / "manifest.json").read_text())
    manifest["models"]["selfie_landscape"]["onnx_sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    (bundled / "manifest.json").write_text(json.dumps(manifest))
    stat = os.stat(model)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**10))
    picture = tmp_path / "in.png"
    picture.write_bytes(corpus.png(corpus.chelsea()))

    def run(out):
        return run_segtool(["image", picture, "-m", "selfie_landscape", "-o", tmp_path / out], model_env, text=True)

    assert run("a").returncode == 0
    cache = Path(model_env["SEGTOOL_MODELS_DIR"]) / digest_cache.CACHE_NAME
    for attempt in range(3):  # a file changed under 2 s ago (its ctime) is remembered by a later run
        if cache.exists() and str(model) in json.loads(cache.read_text()):
            break
        time.sleep(2.1)
        assert run(f"b{attempt}").returncode == 0
    assert str(model) in json.loads(cache.read_text())
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    failed = run("c")
    assert failed.returncode == 1 and "sha256 mismatch" in failed.stderr


def test_models_verify_hashes_every_byte(monkeypatch, tmp_path):
    model = registry.locate("selfie")
    calls = []
    monkeypatch.setattr(registry, "sha256_of", lambda path: calls.append(path) or model.spec.onnx_sha256)
    monkeypatch.setenv("SEGTOOL_MODELS_DIR", str(tmp_path))
    registry.verify(model, remembered=False)
    registry.verify(model, remembered=False)
    assert len(calls) == 2
