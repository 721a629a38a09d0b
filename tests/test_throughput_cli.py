"""Folders at speed, and segtool in shell pipelines.

run_images with several jobs: the same files and reports, in input order, with a bounded number
of inputs in flight; failures stay per input; a full disk still stops the batch once. The CLI:
paths on stdin (`-`, `-0`), --skip-existing, --json lines for jq, progress only on a terminal,
-q/-v, exit codes 0/1/2 and the closing summary.
"""
from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from segtool.engines import local as engine
from segtool.outputs import ImageOutputs, ItemReport
from segtool.io import InputItem
from segtool_process import run_segtool, segtool_command, snapshot, stderr_lines, visible


def _picture(index: int, size=(72, 96)) -> Image.Image:
    import skimage.data

    names = ("astronaut", "coffee", "chelsea")
    rgb = getattr(skimage.data, names[index % 3])()
    return Image.fromarray(np.roll(rgb, 29 * index, axis=1)).resize(size[::-1])


@pytest.fixture
def folder(tmp_path) -> Path:
    """Seven small pictures, JPEG and PNG, and a damaged file in the middle (c_broken.jpg)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        _picture(i).save(folder / f"{'ab'[i % 2]}{i}.{'jpg' if i % 2 else 'png'}")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


# ---- the CLI, end to end ----------------------------------------------------------------------

def test_jobs_write_the_same_files_and_report_in_input_order(tmp_path, folder, model_env):
    runs = {}
    for jobs in (1, 3):
        out = tmp_path / f"out{jobs}"
        result = run_segtool(["image", folder, "-o", out, "--category-mask", "--blur", "--json", "-j", jobs],
                             model_env)
        assert result.returncode == 1, stderr_lines(result)  # the damaged file
        runs[jobs] = (snapshot(out), _json_lines(result), stderr_lines(result))
    (files1, lines1, err1), (files3, lines3, err3) = runs[1], runs[3]
    assert files1 == files3 and len(files1) == 6 * 3
    inputs = [line["input"] for line in lines3]
    assert inputs == sorted(str(p) for p in folder.iterdir())  # input order, not finishing order
    assert [line["input"] for line in lines1] == inputs
    failed = [line for line in lines3 if not line["ok"]]
    assert [Path(line["input"]).name for line in failed] == ["c_broken.jpg"] and failed[0]["error"]
    assert err1[-1] == err3[-1] == "segtool: 6 done, 1 failed"


def test_paths_on_stdin_one_per_line(tmp_path, folder, model_env):
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    result = run_segtool(["image", "-", "-o", tmp_path / "out", "--json", "-q"], model_env,
                         input="\n".join(map(str, paths)).encode() + b"\n")
    assert result.returncode == 0, stderr_lines(result)
    assert [line["input"] for line in _json_lines(result)] == [str(p) for p in paths]
    assert all((tmp_path / "out" / f"{p.stem}.confidence.npy").is_file() for p in paths)


def test_nul_separated_paths_take_any_file_name(tmp_path, model_env):
    names = ["new\nline.png", "  spaced .png", "tab\there.png", "ünïcode.png"]
    for i, name in enumerate(names):
        _picture(i).save(tmp_path / name)
    listing = b"\0".join(os.fsencode(tmp_path / name) for name in names) + b"\0"
    result = run_segtool(["image", "-", "-0", "-o", tmp_path / "out", "--category-mask", "--no-confidence-masks",
                          "--json", "-q"], model_env, input=listing)
    assert result.returncode == 0, stderr_lines(result)
    assert [line["input"] for line in _json_lines(result)] == [str(tmp_path / n) for n in names]
    for name in names:
        assert (tmp_path / "out" / (name[:-4] + ".category.png")).is_file()


def test_skip_existing_redoes_only_what_is_missing(tmp_path, folder, model_env):
    out = tmp_path / "out"
    args = ["image", folder, "-o", out, "--category-mask", "--json", "-q", "-j", "2"]
    run_segtool(args, model_env)
    (out / "a0.category.png").unlink()
    before = {name: (out / name).stat().st_mtime_ns for name in visible(out)}
    result = run_segtool([*args, "--skip-existing"], model_env)
    lines = {Path(line["input"]).name: line for line in _json_lines(result)}
    assert not lines["a0.png"]["skipped"] and lines["a0.png"]["ok"]
    assert all(lines[n]["skipped"] for n in ("b1.jpg", "a2.png", "b3.jpg", "a4.png", "b5.jpg"))
    assert not lines["c_broken.jpg"]["ok"]  # no outputs to find: tried again, fails again
    after = {name: (out / name).stat().st_mtime_ns for name in visible(out)}
    assert {n: t for n, t in after.items() if n in before and not n.startswith("a0.")} == \
           {n: t for n, t in before.items() if not n.startswith("a0.")}  # skipped files untouched
    assert (out / "a0.category.png").is_file()


def test_json_lines_are_all_stdout_holds_and_jq_reads_them(tmp_path, folder, model_env):
    result = run_segtool(["image", folder, "-o", tmp_path / "out", "--category-mask", "--json"], model_env)
    lines = _json_lines(result)  # every stdout line is one JSON object: no progress, no summary
    assert len(lines) == 7
    for line in lines:
        assert set(line) >= {"input", "ok", "outputs", "categories", "seconds", "error", "skipped"}
        if line["ok"]:
            assert set(line["categories"]) <= {"background", "person"}
            assert abs(sum(line["categories"].values()) - 1) < 1e-5
            assert all(Path(p).is_file() for p in line["outputs"]) and line["seconds"] > 0
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed")
    query = subprocess.run([jq, "-r", "select(.ok) | [.input, .categories.person // 0] | @tsv"],
                           input=result.stdout, capture_output=True, check=True)
    rows = query.stdout.decode().splitlines()
    assert len(rows) == 6 and all(0 <= float(row.split("\t")[1]) <= 1 for row in rows)


def test_stderr_is_quiet_in_a_pipe_and_talks_when_asked(tmp_path, folder, model_env):
    good = [str(p) for p in sorted(folder.glob("*.png"))]
    plain = run_segtool(["image", *good, "-o", tmp_path / "a"], model_env)
    assert plain.stdout == b"" and stderr_lines(plain) == ["segtool: 3 done, 0 failed"]
    quiet = run_segtool(["image", *good, "-o", tmp_path / "b", "-q"], model_env)
    assert quiet.returncode == 0 and quiet.stderr == b""
    verbose = run_segtool(["image", *good, "-o", tmp_path / "c", "-v"], model_env)
    lines = stderr_lines(verbose)
    assert len(lines) == 4 and all(line.startswith(p + ": ") for line, p in zip(lines, good))


def test_progress_bar_only_on_a_terminal(tmp_path, folder, model_env):
    good = [str(p) for p in sorted(folder.glob("*.png"))]
    env = {**model_env, "TERM": "xterm", "COLUMNS": "100"}
    primary, secondary = pty.openpty()
    process = subprocess.Popen([*segtool_command(), "image", *good, "-o", str(tmp_path / "out")], env=env,
                               stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    seen = _read_until_exit(primary, process)
    assert process.returncode == 0
    assert "segmenting" in seen and "3/3" in seen.replace(" ", "")  # the bar, with its count
    assert process.stdout.read() == b""


def _read_until_exit(fd: int, process) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("args, code", [
    (["image"], 2),                                             # no inputs
    (["image", "x.png", "--no-confidence-masks"], 2),           # nothing to write
    (["image", "x.png", "--jobs", "0"], 2),
    (["image", "x.png", "--threads", "-1"], 2),
    (["image", "x.png", "--device", "tpu"], 2),
])
def test_usage_errors_exit_2(tmp_path, model_env, args, code):
    result = run_segtool(args, model_env, cwd=tmp_path)
    assert result.returncode == code, stderr_lines(result)
    assert result.stdout == b""


def test_failures_are_summed_up_at_the_end(tmp_path, model_env):
    for name in ("x.jpg", "y.jpg"):
        (tmp_path / name).write_bytes(b"junk")
    _picture(0).save(tmp_path / "ok.png")
    result = run_segtool(["image", tmp_path / "x.jpg", tmp_path / "ok.png", tmp_path / "y.jpg",
                          "-o", tmp_path / "out"], model_env)
    lines = stderr_lines(result)
    assert result.returncode == 1
    assert lines[-3:] == ["segtool: 1 done, 2 failed", f"  failed: {tmp_path / 'x.jpg'}",
                          f"  failed: {tmp_path / 'y.jpg'}"]


# ---- run_images itself, with a stand-in for the work of one input -----------------------------

class _Recorder:
    """A process_image stand-in: sleeps a little, notes how many run at once, may fail on cue."""

    def __init__(self, stop_at=None, delay=0.01):
        self.lock = threading.Lock()
        self.running = self.most_running = self.started = 0
        self.stop_at, self.delay = stop_at, delay
        self.spans = {}

    def __call__(self, item, segmenter, outputs, target=None):
        with self.lock:
            self.running += 1
            self.started += 1
            self.most_running = max(self.most_running, self.running)
        begun = time.perf_counter()
        time.sleep(self.delay * (1 + int(item.path.stem) % 3))  # finishing order != input order
        with self.lock:
            self.running -= 1
            self.spans.setdefault(item.path, []).append((begun, time.perf_counter()))
        if self.stop_at is not None and int(item.path.stem) >= self.stop_at:
            return ItemReport(item.path, error=f"{item.path}: No space left on device", stops_batch=True)
        return ItemReport(item.path, outputs=(item.path,))


def _items(count, pulled):
    for i in range(count):
        pulled.append(i)
        yield InputItem(Path(f"{i}.png"), PurePath(f"{i}.png"))


def _outputs(tmp_path):
    return ImageOutputs(out_dir=tmp_path, confidence_masks=False, category_mask=True)


@pytest.mark.parametrize("jobs", [2, 4])
def test_in_order_with_a_bounded_number_in_flight(tmp_path, monkeypatch, jobs):
    recorder = _Recorder()
    monkeypatch.setattr(engine, "process_image", recorder)
    pulled, ahead = [], []
    reported = []

    def on_item(report):
        reported.append(report)
        ahead.append(len(pulled) - len(reported))

    engine.run_images(_items(40, pulled), None, _outputs(tmp_path), on_item, jobs=jobs)
    assert [r.input.stem for r in reported] == [str(i) for i in range(40)]
    assert recorder.most_running == jobs
    assert max(ahead) <= 2 * jobs  # inputs read but not yet reported: memory stays flat


def test_a_full_disk_stops_the_batch_once(tmp_path, monkeypatch):
    recorder = _Recorder(stop_at=5)
    monkeypatch.setattr(engine, "process_image", recorder)
    pulled = []
    reports = []
    engine.run_images(_items(100, pulled), None, _outputs(tmp_path), reports.append, jobs=3)
    stems = [int(r.input.stem) for r in reports]
    assert stems[:6] == list(range(6)) and stems == sorted(stems)
    assert [r.stops_batch for r in reports].count(True) == 1  # one line about the disk, not one per job
    assert recorder.started < 15 and len(pulled) < 15  # the rest is never started


def test_an_input_listed_twice_is_not_written_by_two_threads_at_once(tmp_path, monkeypatch):
    recorder = _Recorder(delay=0.02)
    monkeypatch.setattr(engine, "process_image", recorder)
    same = InputItem(Path("7.png"), PurePath("7.png"))
    items = [same, InputItem(Path("1.png"), PurePath("1.png")), same, same]
    reports = []
    engine.run_images(items, None, _outputs(tmp_path), reports.append, jobs=4)
    assert [r.input for r in reports] == [i.path for i in items] and all(r.ok for r in reports)
    spans = sorted(recorder.spans[same.path])
    assert len(spans) == 3 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_clashing_outputs_still_fail_the_second_input(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "process_image", _Recorder())
    items = [InputItem(Path("d1/3.png"), PurePath("3.png")), InputItem(Path("d2/3.jpg"), PurePath("3.jpg"))]
    reports = []
    engine.run_images(items, None, _outputs(tmp_path), reports.append, jobs=2)
    assert reports[0].ok and not reports[1].ok and "would overwrite" in reports[1].error


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_jobs_share_opencv_threads_out_and_give_them_back(tmp_path, monkeypatch, jobs):
    """Inputs in flight keep the cores busy; OpenCV's pool is shared out among them (its idle
    workers spin), and the process's setting is back as it was afterwards."""
    import cv2

    from segtool.runtime import usable_cpus

    seen = []

    def process(item, segmenter, outputs, target=None):
        seen.append(cv2.getNumThreads())
        return ItemReport(item.path, outputs=(item.path,))

    monkeypatch.setattr(engine, "process_image", process)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(5)
        engine.run_images(_items(6, []), None, _outputs(tmp_path), lambda report: None, jobs=jobs)
        assert set(seen) == ({5} if jobs == 1 else {max(1, usable_cpus() // jobs)})
        assert cv2.getNumThreads() == 5
    finally:
        cv2.setNumThreads(before)
