"""The storage boundary's local side: what a location is, and the temporaries a killed worker leaves."""
from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from segtool.io import storage
from segtool.io.writers import remove_stale_partials


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


def test_stale_temporaries_beside_complete_outputs_are_removed_and_nothing_else(tmp_path):
    for name in ("a.png", ".a.png.part-123", ".b.png.part-5", ".c.png.part-x", ".hidden", "d.png.part-7"):
        (tmp_path / name).write_bytes(b"x")
    remove_stale_partials({tmp_path, tmp_path / "missing"})
    # b.png was never completed (its temporary may be another run's), c's suffix is no pid,
    # d's temporary is not hidden: none of those is a name atomic_output leaves behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.png.part-5", ".c.png.part-x", ".hidden",
                                                         "a.png", "d.png.part-7"]
