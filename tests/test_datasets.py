"""Dataset shards as their own ecosystems read them: pyarrow, pandas, DuckDB and Hugging Face
`datasets` for Parquet, the `webdataset` package for tar shards, pycocotools for COCO RLE.

Records are built from real segmentations (the bundled DeepLab model on scikit-image and
matplotlib photos) and every mask read back must equal the per-file output `segtool image`
writes for the same input. Also: error records, keys for awkward names, the index a rerun
resumes from, shards that are complete or absent (a writer killed mid-shard, a full disk),
many threads at once, and shards on moto's S3 server.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path, PurePath

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from segtool import ImageSegmenter, ImageSegmenterOptions, effects
from segtool import io as sio
from segtool.datasets import KINDS, ShardIndex, ShardOptions, ShardRecord, ShardSink, image_id, sample_key
from segtool.errors import InputError, OutputStorageError, UsageError
from segtool.io.paths import inputs_from_manifest
from segtool_process import reset_signals

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
pa = pytest.importorskip("pyarrow", reason="Parquet shards need pyarrow (pip install -e '.[dev]')")
pq = pytest.importorskip("pyarrow.parquet")
MODEL = "deeplab"  # 21 categories: several present per photo, so one RLE per category is tested


# ---- the photos, their per-file outputs and their records -------------------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Same stems in two folders, a name with dots, a JPEG with a space, and a broken file."""
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "sub" / "astronaut.png", skdata.coffee())
    iio.imwrite(folder / "cat.2024.01.png", skdata.chelsea())
    (folder / "grace hopper.jpg").write_bytes(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 only the start of a JPEG")
    return folder


@pytest.fixture(scope="module")
def loose(photos, tmp_path_factory):
    """What `segtool image` writes for the same photos, one file per output."""
    out = tmp_path_factory.mktemp("loose")
    done = subprocess.run([sys.executable, "-m", "segtool", "image", str(photos), "-r", "--model", MODEL,
                           "--category-mask", "--blur", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # the broken file fails; the others are written
    assert "broken.jpg" in done.stderr
    return out


@pytest.fixture(scope="module")
def records(photos):
    """One ShardRecord per input, built as an engine builds them (read, segment, composite)."""
    options = ImageSegmenterOptions(model=MODEL, output_category_mask=True)
    found = []
    with ImageSegmenter.create_from_options(options) as segmenter:
        for item in sio.expand_inputs([str(photos)], recursive=True):
            found.append(record_for(item, segmenter))
    assert [r.ok for r in found].count(False) == 1
    return found


def record_for(item, segmenter) -> ShardRecord:
    name = item.name.as_posix()
    try:
        image, facts = sio.read_image_and_facts(item.path)
    except InputError as exc:
        return ShardRecord.failed(str(item.path), str(exc), name=name, model=MODEL, labels=segmenter.labels)
    result = segmenter.segment(image)
    suffix = sio.composite_extension(item.path)
    blur = effects.render("blur", image, result.confidence_masks, effects.EffectOptions())
    return ShardRecord(str(item.path), image.shape[0], image.shape[1], MODEL, segmenter.labels,
                       result.category_mask, result.confidence_masks,
                       {f"blur{suffix}": sio.image_bytes(blur, suffix, facts=facts)}, name=name)


def loose_file(loose: Path, name: str, infix: str) -> Path:
    stem = PurePath(name).with_suffix("")
    matches = list((loose / stem.parent).glob(f"{stem.name}.{infix}.*"))
    assert len(matches) == 1, (name, infix, matches)
    return matches[0]


def loose_mask(loose: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(loose_file(loose, name, "category")))


def png_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "L", "category masks are 8-bit grey PNGs whose values are the indices"
    return np.asarray(image)


def write(kind: str, out, records, **options) -> ShardSink:
    with ShardSink.open(kind, out, ShardOptions(**options)) as sink:
        for record in records:
            sink.add(record)
    return sink


def visible_names(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def check_against_loose(loose: Path, by_input: dict, records) -> None:
    """Every input has exactly one record; each good one's mask is the loose file's pixels."""
    assert sorted(by_input) == sorted(r.input for r in records)
    for record in records:
        found = by_input[record.input]
        if record.ok:
            np.testing.assert_array_equal(found, loose_mask(loose, record.name), err_msg=record.input)
        else:
            assert found is None


# ---- Parquet ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parquet_out(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("parquet")
    # a small target: several shards and row groups from five inputs
    sink = write("parquet", out, records, target_bytes=200_000, row_group_bytes=50_000, confidence_masks=True,
                 composites=("blur",))
    assert len(sink.shards) >= 2 and sink.records == len(records)
    return out


def test_parquet_reads_back_with_pyarrow(parquet_out, records, loose):
    import pyarrow.dataset as ds

    table = ds.dataset(parquet_out, format="parquet").to_table()  # hidden index and ledger ignored
    rows = table.to_pylist()
    check_against_loose(loose, {r["input"]: r["category_mask"] and png_pixels(r["category_mask"]) for r in rows},
                        records)
    by_input = {r["input"]: r for r in rows}
    for record in records:
        row = by_input[record.input]
        assert row["key"] == record.key and row["name"] == record.name
        assert row["model"] == MODEL and row["labels"] == list(record.labels) and len(row["labels"]) == 21
        if not record.ok:
            assert row["error"] == record.error and "broken.jpg" in row["error"]
            assert row["height"] is row["category_mask"] is row["blur"] is None
            continue
        mask = loose_mask(loose, record.name)
        assert (row["height"], row["width"]) == mask.shape and row["error"] is None
        counts = np.bincount(mask.ravel(), minlength=21)
        assert [c["index"] for c in row["categories"]] == list(np.flatnonzero(counts))
        for share in row["categories"]:
            assert share["label"] == record.labels[share["index"]]
            assert share["pixels"] == counts[share["index"]]
            assert share["fraction"] == pytest.approx(counts[share["index"]] / mask.size)
        confidence = np.load(io.BytesIO(row["confidence_masks"]))
        assert confidence.dtype == np.float16 and confidence.shape == (21, *mask.shape)
        expected = np.load(loose_file(loose, record.name, "confidence"))
        np.testing.assert_allclose(confidence.astype(np.float32), expected, atol=1e-3)
        blur = iio.imread(io.BytesIO(row["blur"]))
        np.testing.assert_array_equal(blur, iio.imread(loose_file(loose, record.name, "blur")))
    facts = json.loads(table.schema.metadata[b"segtool"])
    assert facts["confidence_masks"].startswith("npy float16")


def test_parquet_reads_back_with_pandas(parquet_out, records, loose):
    import pandas as pd

    frame = pd.read_parquet(parquet_out)
    assert list(frame.columns) == ["key", "input", "name", "height", "width", "model", "labels", "category_mask",
                                   "categories", "confidence_masks", "blur", "error"]
    good = frame[frame["error"].isna()]
    check_against_loose(loose, {**{i: png_pixels(m) for i, m in zip(good["input"], good["category_mask"])},
                                **{i: None for i in frame[frame["error"].notna()]["input"]}}, records)


def test_parquet_reads_back_with_duckdb(parquet_out, records, loose):
    duckdb = pytest.importorskip("duckdb")

    query = f"SELECT input, category_mask, error FROM read_parquet('{parquet_out}/*.parquet') ORDER BY input"
    rows = duckdb.sql(query).fetchall()
    check_against_loose(loose, {i: m and png_pixels(bytes(m)) for i, m, _ in rows}, records)
    # the categories are queryable as they are: which inputs show a person (VOC index 15)?
    people = duckdb.sql(f"SELECT input FROM read_parquet('{parquet_out}/*.parquet') "
                        "WHERE list_contains(list_transform(categories, lambda c: c.label), 'person')").fetchall()
    assert {p for (p,) in people} == {r.input for r in records if r.ok and 15 in np.unique(r.category_mask)}


def test_parquet_reads_back_with_hugging_face_datasets(parquet_out, records, loose, tmp_path):
    datasets = pytest.importorskip("datasets")

    loaded = datasets.load_dataset("parquet", data_files=f"{parquet_out}/*.parquet", split="train",
                                   cache_dir=str(tmp_path / "hf-cache"))
    assert len(loaded) == len(records)
    check_against_loose(loose, {r["input"]: r["category_mask"] and png_pixels(r["category_mask"]) for r in loaded},
                        records)


# ---- WebDataset ------------------------------------------------------------------------------

def test_webdataset_reads_back_with_the_webdataset_package(records, loose, tmp_path):
    wds = pytest.importorskip("webdataset")

    sink = write("webdataset", tmp_path, records, target_bytes=300_000, confidence_masks=True, composites=("blur",))
    shards = sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    assert len(shards) == len(sink.shards) >= 2 and visible_names(tmp_path) == sorted(Path(s).name for s in shards)
    samples = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode())  # images stay bytes
    by_input = {s["json"]["input"]: s for s in samples}
    check_against_loose(loose, {i: s.get("category.png") and png_pixels(s["category.png"])
                                for i, s in by_input.items()}, records)
    for record in records:
        sample = by_input[record.input]
        assert sample["__key__"] == record.key and "." not in record.key
        if not record.ok:
            assert {k for k in sample if not k.startswith("__")} == {"json"}
            assert sample["json"]["error"] == record.error
            continue
        assert sample["json"]["height"] == record.height and sample["json"]["error"] is None
        assert sample["json"]["labels"] == list(record.labels)
        assert sample["confidence.npy"].dtype == np.float16 and sample["confidence.npy"].shape[0] == 21
        (blur,) = [k for k in sample if k.startswith("blur.")]
        assert blur == f"blur{sio.composite_extension(Path(record.input))}"
        np.testing.assert_array_equal(iio.imread(sample[blur]), iio.imread(loose_file(loose, record.name, "blur")))
    # its image decoder gives the mask's indices back as they are
    decoded = {s["json"]["input"]: s.get("category.png") for s in
               wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("l8")}
    check_against_loose(loose, decoded, records)


def test_webdataset_raw_members_are_the_loose_files_bytes(records, loose, tmp_path):
    import tarfile

    write("webdataset", tmp_path, records, composites=("blur",))
    with tarfile.open(next(tmp_path.glob("shard-*.tar"))) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    for record in records:
        if record.ok:
            assert members[f"{record.key}.category.png"] == loose_file(loose, record.name, "category").read_bytes()
        else:
            assert f"{record.key}.category.png" not in members and f"{record.key}.json" in members


# ---- COCO ------------------------------------------------------------------------------------

def test_coco_rle_decodes_to_the_category_mask_exactly(records, loose, tmp_path):
    from pycocotools import mask as rle

    write("coco", tmp_path, records, composites=("blur",))  # composites are not part of COCO
    lines = [json.loads(line) for shard in sorted(tmp_path.glob("shard-*.jsonl")) for line in shard.open()]
    assert len(lines) == len(records)
    by_input = {line["input"]: line for line in lines}
    for record in records:
        line = by_input[record.input]
        assert line["image"]["id"] == image_id(record.input) and line["image"]["file_name"] == record.name
        assert line["categories"][15] == {"id": 15, "name": "person"}
        if not record.ok:
            assert line["error"] == record.error and line["annotations"] == []
            continue
        expected = loose_mask(loose, record.name)
        assert (line["image"]["height"], line["image"]["width"]) == expected.shape
        painted = np.full(expected.shape, 255, np.uint8)
        for annotation in line["annotations"]:
            assert annotation["image_id"] == line["image"]["id"]
            assert isinstance(annotation["segmentation"]["counts"], str)
            binary = rle.decode(annotation["segmentation"])
            assert annotation["area"] == binary.sum()
            rows, cols = np.nonzero(binary)
            assert annotation["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
            assert (painted[binary == 1] == 255).all(), "categories do not overlap"
            painted[binary == 1] = annotation["category_id"]
        np.testing.assert_array_equal(painted, expected, err_msg=record.input)
        assert len({a["id"] for a in line["annotations"]}) == len(line["annotations"])


def test_coco_records_load_into_pycocotools_coco(records, tmp_path):
    from pycocotools.coco import COCO

    write("coco", tmp_path, records, composites=("blur",))  # composites are not part of COCO
    lines = [json.loads(line) for shard in sorted(tmp_path.glob("shard-*.jsonl")) for line in shard.open()]
    good = [line for line in lines if line["error"] is None]
    api = COCO()
    api.dataset = {"images": [line["image"] for line in good], "categories": good[0]["categories"],
                   "annotations": [a for line in good for a in line["annotations"]]}
    api.createIndex()
    for line in good:
        record = next(r for r in records if r.input == line["input"])
        for annotation in api.loadAnns(api.getAnnIds(imgIds=[line["image"]["id"]])):
            np.testing.assert_array_equal(api.annToMask(annotation), record.category_mask == annotation["category_id"])


# ---- keys, ids and records -------------------------------------------------------------------

def test_keys_are_unique_stable_and_safe_for_every_kind_of_name():
    names = ["a.jpg", "a.png", "d1/a.jpg", "d2/a.jpg", "a.b.c.jpg", ".hidden.jpg", "x/.jpg", "naïve café.jpg",
             "s3://bucket/d1/a.jpg", "s3://other/d1/a.jpg", "no-extension", "dir/", "C:\\photos\\a.jpg",
             "a" * 300 + ".jpg", "über/日本.png", "a b.jpg", "a_b.jpg", "weird\udcff.jpg", "#1 & %20.jpg"]
    keys = [sample_key(name) for name in names]
    assert len(set(keys)) == len(names)
    for key in keys:
        assert key.isascii() and "." not in key and "/" not in key and len(key) <= 65
        assert all(c.isalnum() or c in "-_" for c in key), key
    assert sample_key("a.b.c.jpg").startswith("a_b_c-") and sample_key("d1/a.jpg") == keys[2]
    ids = [image_id(name) for name in names]
    assert len(set(ids)) == len(names) and all(0 < i < 2 ** 53 for i in ids)


def test_a_record_without_a_category_mask_takes_the_argmax_of_its_confidence():
    confidence = np.zeros((3, 4, 5), np.float32)
    confidence[1, :, :2] = confidence[2, :, 2:] = 1.0
    record = ShardRecord("x.png", model="m", labels=("a", "b", "c"), confidence_masks=confidence)
    assert record.size() == (4, 5) and (record.mask() == np.where(np.arange(5) < 2, 1, 2)).all()
    with pytest.raises(UsageError, match="needs a category or confidence mask"):
        ShardRecord("y.png").mask()


def test_sinks_refuse_what_they_were_not_opened_for(tmp_path):
    with pytest.raises(UsageError, match="not a dataset format"):
        ShardSink.open("tfrecord", tmp_path)
    with pytest.raises(UsageError):
        ShardOptions(composites=("blur.png",))
    mask = np.zeros((2, 2), np.uint8)
    with ShardSink.open("parquet", tmp_path, ShardOptions(composites=("blur",))) as sink:
        with pytest.raises(UsageError, match="'cutout.png' was not among"):
            sink.add(ShardRecord("a.png", category_mask=mask, composites={"cutout.png": b"x"}))
        sink.add(ShardRecord("a.png", category_mask=mask, composites={"blur.png": b"x"}))
    with pytest.raises(UsageError, match="closed"):
        sink.add(ShardRecord("b.png", category_mask=mask))


# ---- the index: reruns do only what is missing -------------------------------------------------

def small_records(count: int, *, start: int = 0, failing=()) -> list[ShardRecord]:
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:7] = 1
    return [ShardRecord.failed(f"/in/{n}.png", f"/in/{n}.png: not an image") if n in failing
            else ShardRecord(f"/in/{n}.png", model="selfie", labels=("background", "person"), category_mask=mask)
            for n in range(start, start + count)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_resumed_run_gives_the_records_of_one_uninterrupted_run(kind, tmp_path):
    everything = small_records(40, failing={7, 33})
    write(kind, tmp_path / "once", everything, target_bytes=2000)
    # the first run ends after 25 inputs; the rerun asks the index what is left
    write(kind, tmp_path / "twice", everything[:25], target_bytes=2000)
    index = ShardIndex.load(tmp_path / "twice")
    assert len(index) == 25 and index.has_succeeded("/in/3.png") and not index.has_succeeded("/in/7.png")
    left = list(index.missing(Path(r.input) for r in everything))
    assert [str(p) for p in left] == [r.input for r in everything[25:]]
    assert [str(p) for p in index.missing((Path(r.input) for r in everything), retry_failed=True)][0] == "/in/7.png"
    write(kind, tmp_path / "twice", [r for r in everything if r.input in set(map(str, left))], target_bytes=2000)
    assert shard_records(kind, tmp_path / "twice") == shard_records(kind, tmp_path / "once")
    assert len(ShardIndex.load(tmp_path / "twice")) == 40


def shard_records(kind: str, folder: Path) -> list:
    """Every record in the shards of ``folder``, as comparable text, sorted by input."""
    if kind == "parquet":
        rows = [row for shard in sorted(folder.glob("shard-*.parquet")) for row in pq.read_table(shard).to_pylist()]
        return sorted(repr(sorted(row.items())) for row in rows)
    if kind == "webdataset":
        import tarfile

        members = []
        for shard in sorted(folder.glob("shard-*.tar")):
            with tarfile.open(shard) as tar:
                members += [(m.name, tar.extractfile(m).read()) for m in tar]
        return sorted(members)
    return sorted(line for shard in sorted(folder.glob("shard-*.jsonl")) for line in shard.read_text().splitlines())


def test_a_shard_whose_index_is_missing_or_damaged_is_read_itself(tmp_path):
    write("parquet", tmp_path, small_records(30, failing={4}), target_bytes=1500)
    indexes = sorted((tmp_path / ".segtool-index").glob("*.idx"))
    assert len(indexes) >= 3
    indexes[0].unlink()  # a writer killed between the shard's rename and its index
    indexes[1].write_bytes(indexes[1].read_bytes()[:-5])  # damaged by hand
    index = ShardIndex.load(tmp_path)
    assert index.rebuilt == 2 and len(index) == 30 and "/in/4.png" in index and not index.has_succeeded("/in/4.png")
    next(tmp_path.glob("shard-*.parquet")).unlink()  # a shard deleted: its inputs are to do again
    assert len(ShardIndex.load(tmp_path)) < 30
    assert len(ShardIndex.load(tmp_path / "nothing-here")) == 0


def test_the_index_holds_sixteen_bytes_per_input(tmp_path):
    write("coco", tmp_path, small_records(3000), target_bytes=64_000)
    index = ShardIndex.load(tmp_path)
    assert len(index) == 3000 and index.nbytes == 16 * 3000
    assert all(f"/in/{n}.png" in index for n in range(3000)) and "/in/3000.png" not in index


# ---- complete or absent ------------------------------------------------------------------------

WRITER = """
import sys, numpy as np
from segtool.datasets import ShardOptions, ShardRecord, ShardSink
mask = np.random.default_rng(0).integers(0, 2, (64, 64), dtype=np.uint8)
with ShardSink.open(sys.argv[1], sys.argv[2], ShardOptions(target_bytes=int(sys.argv[3]))) as sink:
    for n in range(1000000):
        sink.add(ShardRecord(f"/in/{n}.png", model="selfie", labels=("background", "person"), category_mask=mask))
        if n == 200:
            print("ready", flush=True)
"""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_writer_killed_mid_shard_leaves_no_partial_shard(kind, sig, tmp_path):
    target = 60_000  # a few shards finish before the kill; the one being filled must vanish
    writer = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(tmp_path), str(target)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=reset_signals)
    assert writer.stdout.readline() == "ready\n", writer.stderr.read()
    time.sleep(0.3)
    writer.send_signal(sig)
    writer.wait(timeout=30)
    shards = sorted(tmp_path.glob("shard-*"))
    assert visible_names(tmp_path) == [p.name for p in shards]
    index = ShardIndex.load(tmp_path, kind)
    assert index.shards == len(shards) and index.rebuilt <= 1
    assert len(index) == len(shard_records(kind, tmp_path)) if kind != "webdataset" else True
    for shard in shards:  # every shard there is whole: its own reader reads it to the end
        if kind == "parquet":
            assert pq.read_table(shard).num_rows > 0
        else:
            assert shard.stat().st_size >= target
    if kind == "webdataset":
        import tarfile

        for shard in shards:
            with tarfile.open(shard) as tar:
                assert len(tar.getmembers()) % 2 == 0  # .json and .category.png, never one alone
    if sig == signal.SIGKILL:  # no finally ran; the next sink on this machine clears the temporary
        ShardSink.open(kind, tmp_path).close()
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name]


def test_a_full_disk_stops_the_sink_and_leaves_only_whole_shards(small_tmpfs):
    noise = np.random.default_rng(1).integers(0, 255, (300, 300), dtype=np.uint8)  # PNG cannot shrink it
    sink = ShardSink.open("webdataset", small_tmpfs, ShardOptions(target_bytes=300_000))
    with pytest.raises(OutputStorageError, match="No space left on device"):
        for n in range(1000):
            sink.add(ShardRecord(f"/in/{n}.png", labels=("a",), category_mask=noise))
    with pytest.raises(OutputStorageError):
        sink.add(ShardRecord("/in/late.png", labels=("a",), category_mask=noise))
    with pytest.raises(OutputStorageError):
        sink.close()
    assert not [p for p in small_tmpfs.rglob("*") if ".part-" in p.name]
    assert ShardIndex.load(small_tmpfs).shards == len(list(small_tmpfs.glob("shard-*.tar")))


def test_a_file_segtool_did_not_write_is_never_replaced(tmp_path):
    name = "shard-host-1-abcdef01-00001.parquet"
    (tmp_path / name).write_bytes(b"a user's file")
    sink = ShardSink.open("parquet", tmp_path, writer_id="host-1-abcdef01")
    with pytest.raises(OutputStorageError, match="segtool did not write it; not overwriting"):
        sink.add(small_records(1)[0])
    assert (tmp_path / name).read_bytes() == b"a user's file"


def test_many_threads_write_each_record_exactly_once(tmp_path):
    inputs = small_records(800)
    with ShardSink.open("parquet", tmp_path, ShardOptions(target_bytes=4000, row_group_bytes=1500)) as sink:
        threads = [threading.Thread(target=lambda part: [sink.add(r) for r in part], args=(inputs[n::8],))
                   for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    table = pq.read_table(sorted(tmp_path.glob("shard-*.parquet")))
    assert sorted(table.column("input").to_pylist()) == sorted(r.input for r in inputs)
    assert len(sink.shards) == len(list(tmp_path.glob("shard-*.parquet"))) > 10
    assert len(ShardIndex.load(tmp_path)) == 800


def test_writers_in_many_processes_never_clash(tmp_path):
    sinks = [ShardSink.open("coco", tmp_path) for _ in range(3)]
    assert len({s.writer_id for s in sinks}) == 3
    for n, sink in enumerate(sinks):
        sink.add(small_records(1, start=n)[0])
        sink.close()
    assert len(list(tmp_path.glob("shard-*.jsonl"))) == 3


# ---- object storage --------------------------------------------------------------------------

@pytest.fixture
def s3(s3_server, monkeypatch):
    import secrets

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    fs = s3_server.filesystem()
    bucket = f"segtool-{secrets.token_hex(4)}"
    fs.mkdir(bucket)
    return fs, bucket


@pytest.mark.parametrize("kind", KINDS)
def test_shards_upload_whole_to_s3_and_read_back(kind, s3, s3_server, records, loose):
    fs, bucket = s3
    before = len(s3_server.requests())
    sink = ShardSink.open(kind, f"s3://{bucket}/masks/", ShardOptions(target_bytes=50 << 20, composites=("blur",)))
    for record in records[:3]:
        sink.add(record)
        assert not fs.find(f"{bucket}/masks"), "nothing is visible before a shard is complete"
    for record in records[3:]:
        sink.add(record)
    sink.close()
    shards = sorted(n for n in fs.find(f"{bucket}/masks") if "/.segtool-index/" not in n)
    assert len(shards) == len(sink.shards) == 1
    assert all(fs.metadata(s).get("written-by") == "segtool" for s in shards)
    asked = s3_server.requests()[before:]
    puts = [r for r in asked if r.startswith("PUT ") and ".segtool-write-check" not in r]  # (the write check
    assert len(puts) == 2 * len(shards), "one upload per shard and one per index object"  # has its own test)
    by_input = {}
    for shard in shards:
        data = fs.cat_file(shard)
        if kind == "parquet":
            for row in pq.read_table(pa.BufferReader(data)).to_pylist():
                by_input[row["input"]] = row["category_mask"] and png_pixels(row["category_mask"])
        elif kind == "webdataset":
            import tarfile

            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar}
            for name, body in members.items():
                if name.endswith(".json"):
                    facts = json.loads(body)
                    png = members.get(name[:-5] + ".category.png")
                    by_input[facts["input"]] = png and png_pixels(png)
        else:
            from pycocotools import mask as rle

            for line in data.decode().splitlines():
                line = json.loads(line)
                painted = None
                for annotation in line["annotations"]:
                    binary = rle.decode(annotation["segmentation"])
                    painted = np.zeros(binary.shape, np.uint8) if painted is None else painted
                    painted[binary == 1] = annotation["category_id"]
                by_input[line["input"]] = painted
    check_against_loose(loose, by_input, records)
    index = ShardIndex.load(f"s3://{bucket}/masks/")
    assert len(index) == len(records) and index.rebuilt == 0


# ---- Ray Data reads both -----------------------------------------------------------------------

def test_ray_data_reads_parquet_and_webdataset_shards(records, loose, tmp_path):
    ray = pytest.importorskip("ray")
    write("parquet", tmp_path / "parquet", records, target_bytes=200_000, composites=("blur",))
    write("webdataset", tmp_path / "wds", records, target_bytes=200_000, composites=("blur",))
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", configure_logging=False)
    try:
        rows = ray.data.read_parquet(str(tmp_path / "parquet")).take_all()
        # Ray gives a null binary back as NaN
        check_against_loose(loose, {r["input"]: png_pixels(r["category_mask"]) if isinstance(r["category_mask"], bytes)
                                    else None for r in rows}, records)
        samples = ray.data.read_webdataset(str(tmp_path / "wds"), decoder=None).take_all()
    finally:
        ray.shutdown()
    found = {}
    for sample in samples:
        facts = json.loads(sample["json"]) if isinstance(sample["json"], (bytes, str)) else sample["json"]
        png = sample.get("category.png")
        found[facts["input"]] = png_pixels(png) if isinstance(png, bytes) else None  # a missing member: NaN
    check_against_loose(loose, found, records)


# ---- manifests: inputs that stream -------------------------------------------------------------

def test_a_text_manifest_streams_paths_and_urls(tmp_path):
    manifest = tmp_path / "inputs.txt"
    manifest.write_bytes(b"a.jpg\n\n/data/b c.png\r\ns3://bucket/k/d.jpg\nfile:///tmp/e.jpg\n\xff.jpg\n   \n")
    items = list(inputs_from_manifest(str(manifest)))
    assert [str(i.path) for i in items] == ["a.jpg", "/data/b c.png", "s3://bucket/k/d.jpg", "/tmp/e.jpg",
                                            os.fsdecode(b"\xff.jpg")]
    assert [i.name.as_posix() for i in items] == ["a.jpg", "b c.png", "d.jpg", "e.jpg", os.fsdecode(b"\xff.jpg")]
    assert sio.is_remote(items[2].path) and not sio.is_remote(items[3].path)
    packed = tmp_path / "inputs.txt.gz"
    packed.write_bytes(gzip.compress(manifest.read_bytes()))
    assert [i.path for i in inputs_from_manifest(str(packed))] == [i.path for i in items]


def held_memory() -> int:
    """Bytes Python holds now, less CPython's table of interned strings (pathlib interns every
    path part; the table's size jumps whenever it is rebuilt, whatever the program keeps)."""
    import pathlib
    import tracemalloc

    interning = tracemalloc.Filter(False, pathlib.__file__)
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces([interning]).statistics("filename"))


def test_a_manifest_is_read_lazily_never_held_as_a_list(tmp_path):
    import tracemalloc

    manifest = tmp_path / "many.txt"
    manifest.write_text("".join(f"/data/photos/{n:07d}.jpg\n" for n in range(200_000)))
    tracemalloc.start()
    try:
        for count, item in enumerate(inputs_from_manifest(str(manifest)), 1):
            if count == 20_000:
                early = held_memory()
        late = held_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000 and str(item.path) == "/data/photos/0199999.jpg"
    assert late - early < 200_000, f"{late - early} bytes more after 180,000 more lines: they were kept"


def test_a_parquet_manifest_streams_one_column(tmp_path):
    import tracemalloc

    paths = [f"s3://bucket/photos/{n:06d}.jpg" for n in range(100_000)]
    pq.write_table(pa.table({"id": range(len(paths)), "location": paths, "caption": ["x"] * len(paths)}),
                   tmp_path / "m.parquet", row_group_size=10_000)
    with pytest.raises(UsageError, match="say which column"):
        next(inputs_from_manifest(str(tmp_path / "m.parquet")))
    with pytest.raises(UsageError, match="no column 'path'.*id, location, caption"):
        next(inputs_from_manifest(f"{tmp_path}/m.parquet:path"))
    with pytest.raises(UsageError, match="holds int64"):
        next(inputs_from_manifest(f"{tmp_path}/m.parquet:id"))
    tracemalloc.start()
    try:
        streamed = inputs_from_manifest(f"{tmp_path}/m.parquet:location")
        first = [str(i.path) for n, i in zip(range(20_000), streamed)]
        early = held_memory()
        rest = sum(1 for _ in streamed)
        late = held_memory()
    finally:
        tracemalloc.stop()
    assert first == paths[:20_000] and rest == 80_000
    assert late - early < 200_000, "batches are read one at a time, never the whole column"
    pq.write_table(pa.table({"n": [1, 2], "path": ["a.jpg", None]}), tmp_path / "auto.parquet")
    assert [str(i.path) for i in inputs_from_manifest(str(tmp_path / "auto.parquet"))] == ["a.jpg"]


def test_manifest_errors_name_the_manifest(tmp_path):
    with pytest.raises(InputError, match="nope.txt: no such manifest file"):
        next(inputs_from_manifest(str(tmp_path / "nope.txt")))
    with pytest.raises(InputError, match="is a folder"):
        next(inputs_from_manifest(str(tmp_path)))
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="fake.parquet: not a Parquet file"):
        next(inputs_from_manifest(str(tmp_path / "fake.parquet")))
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="bad.txt.gz: cannot read this manifest"):
        next(inputs_from_manifest(str(tmp_path / "bad.txt.gz")))


def test_a_manifest_on_s3_streams_and_feeds_the_index(s3, tmp_path):
    fs, bucket = s3
    fs.pipe_file(f"{bucket}/lists/inputs.txt", "".join(f"s3://{bucket}/in/{n}.png\n" for n in range(50)).encode())
    pq.write_table(pa.table({"input": [f"s3://{bucket}/in/{n}.png" for n in range(50)]}), tmp_path / "m.parquet")
    fs.put_file(str(tmp_path / "m.parquet"), f"{bucket}/lists/m.parquet")
    listed = list(inputs_from_manifest(f"s3://{bucket}/lists/inputs.txt"))
    assert [str(i.path) for i in listed] == [f"s3://{bucket}/in/{n}.png" for n in range(50)]
    assert [str(i.path) for i in inputs_from_manifest(f"s3://{bucket}/lists/m.parquet")] == [str(i.path) for i in listed]
    mask = np.zeros((4, 4), np.uint8)
    write("parquet", tmp_path / "out", [ShardRecord(str(i.path), category_mask=mask) for i in listed[:20]])
    assert [str(i.path) for i in ShardIndex.load(tmp_path / "out").missing(listed)] == [str(i.path) for i in listed[20:]]
    with pytest.raises(InputError, match="no such manifest file"):
        next(inputs_from_manifest(f"s3://{bucket}/lists/missing.txt"))
