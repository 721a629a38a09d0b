"""Batches: `segtool image --batch-size` and segment_batch give what one image at a time gives.

On the CPU (the exact path) byte for byte: the same files, the same reports in input order,
with images of mixed sizes in one batch, a file that does not decode in the middle of a batch
(it fails alone), batches larger than the input list, several --jobs, repeated inputs,
--skip-existing and a disk that fills up.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import badinput_corpus as corpus
from segtool_process import needs_model, partial_files, run_segtool, snapshot, stderr_lines, visible
from test_disk_full import assert_stopped_on_full_disk
from test_throughput_cli import _picture  # small real photos, each shifted so no two alike

SIZES = [(72, 96), (120, 80), (72, 96), (301, 207), (64, 64), (72, 96), (180, 320)]


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Seven pictures of five sizes, JPEG and PNG, and an undecodable file among them (c_bad.jpg)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, size in enumerate(SIZES):
        _picture(i, size).save(folder / f"{'ab'[i % 2]}{i}.{'jpg' if i % 2 else 'png'}")
    (folder / "c_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated right here")
    return folder


def _json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def _run(folder, out, env, *options):
    return run_segtool(["image", folder, "-o", out, "--category-mask", "--blur", "--json", *options], env)


def _comparable(lines: list[dict]) -> list[tuple]:
    return [(line["input"], line["ok"], line["error"], [Path(p).name for p in line["outputs"]], line["categories"])
            for line in lines]


def test_batches_write_the_same_bytes_as_one_image_at_a_time(tmp_path, mixed, model_env):
    reference = _run(mixed, tmp_path / "one", model_env, "-b", "1", "-j", "1")
    assert reference.returncode == 1, stderr_lines(reference)  # c_bad.jpg
    expected_files, expected_lines = snapshot(tmp_path / "one"), _json_lines(reference)
    assert len(expected_files) == 3 * len(SIZES)
    for batch, jobs in ((3, 1), (4, 2), (50, 3)):  # 50: one batch larger than the whole input list
        out = tmp_path / f"b{batch}j{jobs}"
        result = _run(mixed, out, model_env, "--batch-size", batch, "--jobs", jobs)
        assert result.returncode == 1, stderr_lines(result)
        assert snapshot(out) == expected_files, (batch, jobs)
        lines = _json_lines(result)
        assert _comparable(lines) == _comparable(expected_lines)
        assert [line["input"] for line in lines] == sorted(str(p) for p in mixed.iterdir())  # input order
        assert stderr_lines(result)[-1] == stderr_lines(reference)[-1] == f"segtool: {len(SIZES)} done, 1 failed"
        assert partial_files(out) == []


def test_a_bad_file_inside_a_batch_fails_alone(tmp_path, mixed, model_env):
    (mixed / "a0.png").write_bytes(corpus.png(corpus.astronaut())[:300])  # truncated PNG, first of the batch
    result = _run(mixed, tmp_path / "out", model_env, "-b", "8", "-j", "2", "--no-confidence-masks")
    lines = _json_lines(result)
    failed = {Path(line["input"]).name: line["error"] for line in lines if not line["ok"]}
    assert set(failed) == {"a0.png", "c_bad.jpg"}, stderr_lines(result)
    assert all(error.startswith(str(mixed)) for error in failed.values())
    done = [Path(line["input"]).stem for line in lines if line["ok"]]
    assert len(done) == len(SIZES) - 1
    for stem in done:  # every other input of the batch has its masks, at its own size
        with Image.open(tmp_path / "out" / f"{stem}.category.png") as mask, \
                Image.open(next(mixed.glob(f"{stem}.*"))) as picture:
            assert mask.size == picture.size
    assert result.returncode == 1 and f"segtool: {len(SIZES) - 1} done, 2 failed" in stderr_lines(result)


def test_batches_of_one_input_listed_twice_and_skip_existing(tmp_path, mixed, model_env):
    picture = mixed / "a0.png"
    out = tmp_path / "out"
    result = run_segtool(["image", picture, picture, mixed / "b1.jpg", "-o", out, "--category-mask",
                          "--json", "-b", "4", "-j", "3"], model_env)
    assert result.returncode == 0, stderr_lines(result)
    assert [line["input"] for line in _json_lines(result)] == [str(picture), str(picture), str(mixed / "b1.jpg")]
    assert visible(out) == sorted(
        f"{stem}.{kind}" for stem in ("a0", "b1") for kind in ("category.png", "confidence.npy"))
    again = run_segtool(["image", mixed, "-o", out, "--category-mask", "--json", "-b", "4", "--skip-existing"],
                        model_env)
    skipped = {Path(line["input"]).name for line in _json_lines(again) if line["skipped"]}
    assert skipped == {"a0.png", "b1.jpg"}


@pytest.mark.parametrize("lanes", [1, 2])  # 2: two inference calls in flight, as on CUDA
def test_a_full_disk_stops_a_batched_run_cleanly(lanes, mixed, small_tmpfs, model_env):
    folder = mixed.parent / "many"
    pictures = [corpus.chelsea(), corpus.coffee(), corpus.astronaut()]
    corpus.write_tree(folder, {f"img{i:02d}.png": corpus.png(pictures[i % 3]) for i in range(12)})
    out = small_tmpfs / "out"
    run = run_segtool if lanes == 1 else _run_two_lanes
    # One write thread, as in test_disk_full: two files written side by side could fill the disk together.
    result = run(["image", folder, "-o", out, "--category-mask", "-b", str(6 - 2 * lanes), "-j", "1"], model_env)
    assert_stopped_on_full_disk(result, out)
    done = len(list(out.glob("*.confidence.npy")))
    assert 0 < done < 12


# ---- two inference calls in flight (CUDA's choice, forced here on the CPU) ------------------------

TWO_LANES = ("import segtool.segmenter as s; s.ImageSegmenter.concurrent_runs = property(lambda self: 2); "
             "from segtool.cli import main; main()")


def _run_two_lanes(args: list, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TWO_LANES, *[str(a) for a in args]], env=env, capture_output=True,
                          timeout=300)


def test_two_inference_calls_in_flight_write_what_one_image_at_a_time_writes(tmp_path, mixed, model_env):
    reference = _run(mixed, tmp_path / "one", model_env, "-b", "1", "-j", "1")
    expected_files, expected_lines = snapshot(tmp_path / "one"), _json_lines(reference)
    for batch, jobs in ((1, 1), (2, 1), (3, 2), (50, 3)):
        out = tmp_path / f"b{batch}j{jobs}"
        result = _run_two_lanes(["image", mixed, "-o", out, "--category-mask", "--blur", "--json",
                                 "-b", batch, "-j", jobs], model_env)
        assert result.returncode == 1, stderr_lines(result)  # c_bad.jpg, alone
        assert snapshot(out) == expected_files, (batch, jobs)
        assert _comparable(_json_lines(result)) == _comparable(expected_lines)
        assert stderr_lines(result)[-1] == f"segtool: {len(SIZES)} done, 1 failed"
        assert partial_files(out) == []


def test_two_inference_calls_in_flight_and_one_input_listed_many_times(tmp_path, mixed, model_env):
    """Batches may come back out of order: the same input's writes still run one after another,
    and with one thread (-j 1) a write waiting for an earlier one never holds the pool."""
    picture, other = mixed / "a0.png", mixed / "b1.jpg"
    inputs = [picture, other, picture, picture, other, picture, picture]
    out = tmp_path / "out"
    result = _run_two_lanes(["image", *inputs, "-o", out, "--category-mask", "--json", "-b", "2", "-j", "1"],
                            model_env)
    assert result.returncode == 0, stderr_lines(result)
    assert [line["input"] for line in _json_lines(result)] == [str(p) for p in inputs]
    reference = run_segtool(["image", picture, other, "-o", tmp_path / "one", "--category-mask"], model_env)
    assert reference.returncode == 0
    assert snapshot(out) == snapshot(tmp_path / "one")
    assert partial_files(out) == []


# ---- the Python API ---------------------------------------------------------------------------

MODELS = ("selfie", "selfie_landscape", "deeplab", "hair")


@pytest.mark.parametrize("model", MODELS)
def test_segment_batch_equals_segment_for_mixed_sizes(model):
    from segtool import ImageSegmenter, ImageSegmenterOptions

    needs_model(model)
    images = [np.asarray(_picture(i, size)) for i, size in enumerate(SIZES[:5])]
    options = ImageSegmenterOptions(model=model, output_category_mask=True, device="cpu")
    with ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.path.name == "exact"
        singles = [segmenter.segment(image) for image in images]
        batch = segmenter.segment_batch(images)
        assert segmenter.segment_batch([]) == []
    assert len(batch) == len(images)
    for image, one, many in zip(images, singles, batch):
        assert many.category_mask.shape == image.shape[:2]
        assert np.array_equal(one.category_mask, many.category_mask)
        assert np.array_equal(one.confidence_masks, many.confidence_masks)


@pytest.mark.parametrize("path", ["exact", "device-graph"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_segment_batch_in_two_lanes_keeps_every_image_in_its_place(count, path, monkeypatch):
    """On CUDA a batch runs as two calls side by side (on the device graph, which groups images
    of one size within each call); forced here, every result stays in its image's place."""
    from segtool import ImageSegmenter, ImageSegmenterOptions

    monkeypatch.setenv("SEGTOOL_PATH", path)
    images = [np.asarray(_picture(i, size)) for i, size in enumerate(SIZES[:count])]
    options = ImageSegmenterOptions(model="deeplab", output_category_mask=True, device="cpu")
    with ImageSegmenter.create_from_options(options) as segmenter:
        assert segmenter.path.name == path
        singles = [segmenter.segment(image) for image in images]
        calls = []
        run_prepared = segmenter.run_prepared
        monkeypatch.setattr(segmenter, "run_prepared", lambda prepared: calls.append(len(prepared))
                            or run_prepared(prepared))
        monkeypatch.setattr(ImageSegmenter, "concurrent_runs", property(lambda self: 2))
        batch = segmenter.segment_batch(images)
    assert sorted(calls) == sorted([count - count // 2, count // 2] if count > 1 else [1])
    for one, many in zip(singles, batch, strict=True):
        assert np.array_equal(one.category_mask, many.category_mask)
        assert np.array_equal(one.confidence_masks, many.confidence_masks)


def test_concurrent_runs_are_two_on_cuda_alone():
    from segtool.runtime import concurrent_runs

    assert concurrent_runs(["CUDAExecutionProvider", "CPUExecutionProvider"]) == 2
    for providers in (["CPUExecutionProvider"], ["DmlExecutionProvider", "CPUExecutionProvider"]):
        assert concurrent_runs(providers) == 1


def test_category_only_batches_compute_no_confidence_masks():
    from segtool import ImageSegmenter, ImageSegmenterOptions

    images = [np.asarray(_picture(i, size)) for i, size in enumerate(SIZES[:3])]
    options = ImageSegmenterOptions(model="deeplab", output_category_mask=True, output_confidence_masks=False)
    with ImageSegmenter.create_from_options(options) as segmenter:
        results = segmenter.segment_batch(images)
    assert all(r.confidence_masks is None and r.category_mask.dtype == np.uint8 for r in results)
