"""A disk that fills up mid-run: one line, the batch stops, exit 1, no partial file anywhere."""
from __future__ import annotations

import builtins
import errno
import io
import os
import signal
import subprocess

import numpy as np
import pytest
from PIL import Image

import badinput_corpus as corpus
from segtool_process import partial_files, run_segtool, stderr_lines, visible

IMAGES = 12


@pytest.fixture
def many_images(tmp_path):
    folder = tmp_path / "in"
    pictures = [corpus.chelsea(), corpus.coffee(), corpus.astronaut()]
    corpus.write_tree(folder, {f"img{i:02d}.png": corpus.png(pictures[i % 3]) for i in range(IMAGES)})
    return folder


def assert_all_outputs_whole(out):
    """Every file present decodes completely: a full disk may stop a batch, never damage a file."""
    for path in map(out.joinpath, visible(out)):
        if path.suffix == ".npy":
            assert np.load(path).ndim == 3
        else:
            Image.open(path).load()


def assert_stopped_on_full_disk(result, out):
    lines = stderr_lines(result)
    assert result.returncode == 1, lines
    full = [line for line in lines if "No space left on device" in line]
    assert len(full) == 1 and full[0].startswith(f"segtool: {out}"), lines
    assert "stopped early" in lines[-1] or any("stopped early" in line for line in lines)
    assert partial_files(out) == []
    assert_all_outputs_whole(out)


def test_real_full_disk_stops_the_batch_cleanly(many_images, small_tmpfs, model_env):
    out = small_tmpfs / "out"
    # One job: two writing side by side (1.1 + 1.9 MB of masks) can fill the 2 MiB disk together
    # and leave no input done, which is a correct stop but not the one this test looks at.
    result = run_segtool(["image", many_images, "-o", out, "--category-mask", "-j", "1"], model_env)
    assert_stopped_on_full_disk(result, out)
    done = len(list(out.glob("*.confidence.npy")))
    assert 0 < done < IMAGES
    assert f"{IMAGES - done - 1} not tried" in stderr_lines(result)[-1]


# ---- the same without root: writes fail with ENOSPC once a byte budget is spent -----------------

class _QuotaFile(io.FileIO):
    """A file whose writes fail as a full disk's do once ``budget`` bytes have gone to the folder."""

    budget = 0

    def write(self, data):
        allowed = max(0, min(len(data), _QuotaFile.budget))
        _QuotaFile.budget -= allowed
        if allowed < len(memoryview(data).cast("B")):
            super().write(memoryview(data).cast("B")[:allowed])  # a short write, as the kernel does
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def quota_open(folder, real_open):
    def opener(file, mode="r", *args, **kwargs):
        inside = isinstance(file, (str, os.PathLike)) and os.fspath(file).startswith(os.fspath(folder))
        if not inside or "b" not in mode or not set(mode) & set("wxa+"):
            return real_open(file, mode, *args, **kwargs)
        raw = _QuotaFile(file, mode.replace("b", ""))
        return io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
    return opener


def test_simulated_full_disk_stops_the_batch_cleanly(tmp_path, many_images, model_env, monkeypatch, capsys):
    from segtool.cli import main

    for key in ("SEGTOOL_BUNDLED_DIR", "SEGTOOL_MODELS_DIR"):
        monkeypatch.setenv(key, model_env[key])
    out = tmp_path / "out"
    _QuotaFile.budget = 3_500_000  # room for a few inputs' masks
    monkeypatch.setattr(builtins, "open", quota_open(out, builtins.open))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["image", str(many_images), "-o", str(out), "--category-mask"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    result = subprocess.CompletedProcess([], exited.value.code, b"", capsys.readouterr().err.encode())
    assert_stopped_on_full_disk(result, out)
    assert 0 < len(list(out.glob("*.confidence.npy"))) < IMAGES
