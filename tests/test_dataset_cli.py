"""`segtool image --dataset`: the real command writes shards whose records equal the per-file
outputs, on every engine; a bad input is an error record and exit 1; an interrupted run resumed
with --skip-existing gives the records of one uninterrupted run; manifests feed it."""
from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from segtool_process import partial_files, run_segtool, start_segtool, stderr_lines

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
pq = pytest.importorskip("pyarrow.parquet", reason="Parquet shards need pyarrow (pip install -e '.[dev]')")
wds = pytest.importorskip("webdataset", reason="the webdataset package reads tar shards (pip install -e '.[dev]')")
mask_api = pytest.importorskip("pycocotools.mask", reason="COCO RLE needs pycocotools (pip install -e '.[dev]')")

JOB = ["--model", "deeplab", "--category-mask", "--blur"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four photos (two with one stem in two folders) and a file that only claims to be a JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "cats").mkdir()
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "coffee.jpg", skdata.coffee(), quality=90)
    iio.imwrite(folder / "cats" / "chelsea.png", skdata.chelsea())
    iio.imwrite(folder / "cats" / "coffee.jpg", skdata.coffee()[::2, ::2], quality=90)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


@pytest.fixture(scope="module")
def loose(photos, tmp_path_factory) -> Path:
    """The same job as files per input: what every record must equal."""
    out = tmp_path_factory.mktemp("loose")
    done = run_segtool(["image", photos, "-r", *JOB, "--no-confidence-masks", "-o", out], _env(tmp_path_factory))
    assert done.returncode == 1, stderr_lines(done)  # broken.jpg
    return out


def _env(tmp_path_factory) -> dict:
    import os

    from segtool_process import copy_models

    env = dict(os.environ)
    env["SEGTOOL_BUNDLED_DIR"] = str(copy_models(tmp_path_factory.mktemp("bundled")))
    env["NO_COLOR"] = "1"
    return env


def parquet_records(out: Path) -> dict[str, dict]:
    table = pq.read_table(sorted(out.glob("*.parquet")))
    return {row["input"]: row for row in table.to_pylist()}


def assert_records_equal_files(records: dict[str, dict], photos: Path, loose: Path) -> None:
    expected = sorted(str(p) for p in photos.rglob("*") if p.is_file())
    assert sorted(records) == expected
    for source, row in records.items():
        relative = Path(source).relative_to(photos)
        if relative.name == "broken.jpg":
            assert row["error"] and "broken.jpg" in row["error"] and row["category_mask"] is None
            continue
        stem = loose / relative.with_suffix("")
        assert row["error"] is None
        assert np.array_equal(iio.imread(io.BytesIO(row["category_mask"])), iio.imread(f"{stem}.category.png"))
        assert row["blur"] == Path(f"{stem}.blur{relative.suffix}").read_bytes()
        assert row["model"] == "deeplab" and row["labels"][15] == "person"
        assert (row["height"], row["width"]) == iio.imread(f"{stem}.category.png").shape


@pytest.mark.parametrize("engine", [[], ["-j", "3"], ["-b", "3", "-j", "2"]], ids=["in-order", "threads", "batches"])
def test_parquet_records_equal_the_per_file_outputs(photos, loose, tmp_path, model_env, engine):
    out = tmp_path / "shards"
    done = run_segtool(["image", photos, "-r", *JOB, "--dataset", "parquet", "-o", out, "--json", *engine], model_env)
    assert done.returncode == 1
    assert [line for line in stderr_lines(done) if "broken.jpg" in line] == [
        f"segtool: {photos / 'broken.jpg'}: truncated image (the pixel data ends early)"]
    assert_records_equal_files(parquet_records(out), photos, loose)
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(Path(r["outputs"][0]).parent == out for r in reports if r["ok"])
    assert partial_files(tmp_path) == []


def test_webdataset_and_coco_shards_read_back_with_their_own_libraries(photos, loose, tmp_path, model_env):
    done = run_segtool(["image", photos, "-r", *JOB, "--dataset", "webdataset", "-o", tmp_path / "wds"], model_env)
    assert done.returncode == 1
    samples = {s["json"]: s for s in wds.WebDataset([str(p) for p in sorted((tmp_path / "wds").glob("*.tar"))],
                                                      shardshuffle=False)}
    metas = {json.loads(key)["input"]: sample for key, sample in samples.items()}
    assert len(metas) == 5
    for source, sample in metas.items():
        relative = Path(source).relative_to(photos)
        if relative.name == "broken.jpg":
            assert "category.png" not in sample and json.loads(sample["json"])["error"]
            continue
        stem = loose / relative.with_suffix("")
        assert sample["category.png"] == Path(f"{stem}.category.png").read_bytes()
        assert sample[f"blur{relative.suffix}"] == Path(f"{stem}.blur{relative.suffix}").read_bytes()

    done = run_segtool(["image", photos, "-r", *JOB[:3], "--dataset", "coco", "-o", tmp_path / "coco"], model_env)
    assert done.returncode == 1
    lines = [json.loads(line) for path in sorted((tmp_path / "coco").glob("*.jsonl"))
             for line in path.read_text().splitlines()]
    assert len(lines) == 5
    for record in lines:
        if record.get("error"):
            continue
        relative = Path(record["image"]["file_name"])
        expected = iio.imread(loose / f"{relative.with_suffix('')}.category.png")
        rebuilt = np.zeros_like(expected)
        for annotation in record["annotations"]:
            rebuilt[mask_api.decode(annotation["segmentation"]).astype(bool)] = annotation["category_id"]
        assert np.array_equal(rebuilt, expected), relative


def test_a_manifest_feeds_the_run_and_a_resumed_run_gives_the_same_records(photos, tmp_path, model_env):
    """--inputs-from a manifest; SIGINT once shards are being written, then --skip-existing: the
    records are those of one uninterrupted run, each input once."""
    inputs = [p for p in sorted(photos.rglob("*")) if p.is_file() and p.name != "broken.jpg"]
    copies = tmp_path / "many"
    copies.mkdir()
    for index in range(24):
        source = inputs[index % len(inputs)]
        (copies / f"{index:02d}{source.suffix}").write_bytes(source.read_bytes())
    manifest = tmp_path / "inputs.txt"
    manifest.write_text("".join(f"{p}\n" for p in sorted(copies.iterdir())))
    job = ["image", "--inputs-from", manifest, "--model", "selfie", "--category-mask", "--dataset", "parquet",
           "--shard-size", "1", "-o", tmp_path / "resumed", "-j", "1"]
    whole = run_segtool(["image", "--inputs-from", manifest, "--model", "selfie", "--category-mask",
                         "--dataset", "parquet", "-o", tmp_path / "whole"], model_env)
    assert whole.returncode == 0, stderr_lines(whole)
    process = start_segtool(job, model_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while process.poll() is None and not list((tmp_path / "resumed").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert partial_files(tmp_path) == []
    again = run_segtool(job + ["--skip-existing"], model_env)
    assert again.returncode == 0, stderr_lines(again)
    resumed, reference = pq.read_table(sorted((tmp_path / "resumed").glob("*.parquet"))), \
        pq.read_table(sorted((tmp_path / "whole").glob("*.parquet")))
    assert sorted(resumed.column("input").to_pylist()) == sorted(reference.column("input").to_pylist())
    mine = dict(zip(resumed.column("input").to_pylist(), resumed.column("category_mask").to_pylist()))
    theirs = dict(zip(reference.column("input").to_pylist(), reference.column("category_mask").to_pylist()))
    assert mine == theirs


def test_dataset_usage_errors(photos, tmp_path, model_env):
    for extra in (["--palette"], ["--confidence-format", "exr"]):
        done = run_segtool(["image", photos, "--dataset", "parquet", *extra, "-o", tmp_path / "x"], model_env)
        assert done.returncode == 2, extra
    done = run_segtool(["image", "-o", tmp_path / "x", "--category-mask"], model_env)
    assert done.returncode == 2 and "no input" in done.stderr.decode()


def test_ray_actors_write_the_records_the_local_engine_writes(photos, loose, tmp_path, model_env, ray_cluster):
    """Each actor writes its own shards (nothing gathered in the driver); the records equal the
    per-file outputs, and a rerun with --skip-existing finds them all in the index."""
    env = {**model_env, **ray_cluster.env}
    job = ["image", photos, "-r", *JOB, "--dataset", "parquet", "-o", tmp_path / "ray", "--engine", "ray", "-j", "2"]
    done = run_segtool(job, env, timeout=600)
    assert done.returncode == 1, stderr_lines(done)
    assert_records_equal_files(parquet_records(tmp_path / "ray"), photos, loose)
    # Both actors worked: the first one up did not queue every task (a shard's name carries its writer).
    writers = {shard.name.rsplit("-", 1)[0] for shard in (tmp_path / "ray").glob("*.parquet")}
    assert len(writers) == 2, sorted(writers)
    again = run_segtool(job + ["--skip-existing"], env, timeout=600)
    assert again.returncode == 0 and stderr_lines(again)[-1] == "segtool: 0 done, 5 skipped, 0 failed"
