"""The storage boundary's local side: what a location is, and the temporaries a killed worker leaves."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePath

import imageio.v3 as iio
import pytest

from segtool.io import storage
from segtool.io.writers import remove_stale_partials
from segtool_process import partial_files, run_segtool

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")


@pytest.mark.parametrize("text, expected", [
    ("file:///data/in/a.jpg", Path("/data/in/a.jpg")),
    ("file://data/in", Path("/data/in")),
    ("photos/a.jpg", Path("photos/a.jpg")),
])
def test_local_names_and_file_urls_are_paths(text, expected):
    assert storage.location(text) == expected and not storage.is_remote(text)


@pytest.mark.parametrize("url", ["s3://bucket/masks/", "memory://bucket/masks"])
def test_object_store_urls_keep_the_path_arithmetic_the_pipeline_uses(url):
    pytest.importorskip("upath", reason="object-store URLs need the ray extra")
    out = storage.location(url)
    assert storage.is_remote(out) and storage.is_remote(url)
    base = out / PurePath("sub/portrait")
    target = base.with_name(f"{base.name}.category.png")
    assert str(target) == url.rstrip("/") + "/sub/portrait.category.png"
    assert str(target.parent) == url.rstrip("/") + "/sub" and target.suffix == ".png"


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_stale_temporaries_beside_complete_outputs_are_removed_and_nothing_else(tmp_path):
    dead, alive = _exited_pid(), os.getppid()
    names = ("a.png", f".a.png.part-{dead}", "e.png", f".e.png.part-{alive}", f".b.png.part-{dead}",
             ".c.png.part-x", ".hidden", f"d.png.part-{dead}")
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    remove_stale_partials({tmp_path, tmp_path / "missing"})
    # e.png's temporary belongs to a process still running (another run writing it right now),
    # b.png was never completed (its temporary may be another run's), c's suffix is no pid,
    # d's temporary is not hidden: none of those is a stale name atomic_output leaves behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {f".a.png.part-{dead}"})


@pytest.mark.parametrize("engine", [[], ["-j", "2"], ["-b", "2"]], ids=["in-order", "threads", "batches"])
def test_every_local_engine_sweeps_what_a_killed_run_left(tmp_path, model_env, engine):
    """kill -9 runs no `finally`: its temporaries stay until a later run meets them."""
    photos = tmp_path / "in"
    photos.mkdir()
    iio.imwrite(photos / "cat.png", skdata.chelsea())
    iio.imwrite(photos / "mug.png", skdata.coffee())
    job = ["image", photos, "--category-mask", "-o", tmp_path / "out", *engine]
    assert run_segtool(job, model_env).returncode == 0
    stale = tmp_path / "out" / f".cat.category.png.part-{_exited_pid()}"
    stale.write_bytes(b"half a png")
    assert run_segtool(job + ["--skip-existing"], model_env).returncode == 0
    assert not stale.exists() and partial_files(tmp_path) == []
