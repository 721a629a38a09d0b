"""The ledger under load: many processes and threads writing one folder, compaction forced often.

Whatever the interleaving, every file segtool wrote stays recognised: a `--skip-existing` rerun
through the real CLI skips every input, and a rerun may replace each file. Writers start together
(a file they all wait for), each process compacts as soon as its threshold allows, and in the
Ray-like case every process starts with a ledger already due for compaction, so all of them try
to compact at once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from segtool.io.ledger import COMPACT_AFTER_LINES, LEDGER_NAME
from segtool_process import partial_files, run_segtool, segtool_command, stderr_lines

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")

# One writer process: waits for the start signal, then its threads write their category masks,
# each several times over (every rewrite makes an earlier line dead, so compaction has work).
WRITER = """
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from segtool import io as sio
out, go, first, count, threads, rounds = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
while not os.path.exists(go):
    time.sleep(0.001)
def write(index):
    mask = np.full((8, 8), index % 7, np.uint8)
    for _ in range(rounds):
        sio.write_category_png(os.path.join(out, f"img{index:04d}.category.png"), mask)
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(write, range(first, first + count)))
"""


def ledger_lines(folder: Path) -> list[bytes]:
    return [line for line in (folder / LEDGER_NAME).read_bytes().splitlines() if line]


def dead_lines(count: int) -> bytes:
    """Lines of a ledger whose files are long gone: a ledger due for compaction."""
    return b"".join(json.dumps([f"gone{i}.category.png", 10, 1, i]).encode() + b"\n" for i in range(count))


def write_together(out: Path, go: Path, processes: int, per_process: int, *, threads: int, rounds: int,
                   env: dict) -> None:
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(go), str(p * per_process),
                                 str(per_process), str(threads), str(rounds)], env=env)
               for p in range(processes)]
    time.sleep(1.0)  # every interpreter imports segtool before the start
    go.touch()
    assert [w.wait(timeout=300) for w in workers] == [0] * processes


def inputs_for(folder: Path, count: int) -> Path:
    """`count` small pictures named as the writers named their outputs (img0000.png, ...)."""
    folder.mkdir()
    picture = skdata.astronaut()[::16, ::16]
    for index in range(count):
        iio.imwrite(folder / f"img{index:04d}.png", picture)
    return folder


def assert_rerun_skips_all(inputs: Path, out: Path, count: int, env: dict, *flags: str) -> None:
    rerun = run_segtool(["image", inputs, "--category-mask", "--no-confidence-masks", "-o", out,
                         "--skip-existing", "--json", *flags], env)
    assert rerun.returncode == 0, stderr_lines(rerun)
    reports = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert len(reports) == count
    not_skipped = [r["input"] for r in reports if not r["skipped"]]
    assert not_skipped == [], f"{len(not_skipped)} of {count} outputs were forgotten: {not_skipped[:5]}"


@pytest.mark.parametrize("prefilled", [0, 300], ids=["growing", "due-at-start"])
def test_many_processes_and_threads_lose_no_entry_with_compaction_forced(tmp_path, model_env, prefilled):
    out, count = tmp_path / "out", 6 * 20
    out.mkdir()
    (out / LEDGER_NAME).write_bytes(dead_lines(prefilled))
    env = {**model_env, "SEGTOOL_LEDGER_COMPACT_AFTER": "8"}
    write_together(out, tmp_path / "go", 6, 20, threads=4, rounds=4, env=env)
    assert partial_files(out) == []
    lines = ledger_lines(out)
    # 480 writes (+ the dead lines): compaction ran, and kept the ledger near its live size
    assert len(lines) < 4 * count, len(lines)
    assert b"gone" not in b"".join(lines)
    assert_rerun_skips_all(inputs_for(tmp_path / "in", count), out, count, model_env)
    # and each file is still one segtool may replace: a plain rerun rewrites them all
    again = run_segtool(["image", tmp_path / "in", "--category-mask", "--no-confidence-masks", "-o", out],
                        model_env)
    assert again.returncode == 0, stderr_lines(again)


def test_the_compaction_threshold_is_the_environments_and_zero_turns_it_off(tmp_path, model_env):
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER_NAME).write_bytes(dead_lines(50))
    env = {**model_env, "SEGTOOL_LEDGER_COMPACT_AFTER": "0"}
    write_together(out, tmp_path / "go", 2, 5, threads=2, rounds=3, env=env)
    assert len(ledger_lines(out)) == 50 + 2 * 5 * 3  # never compacted: every line is still there
    env["SEGTOOL_LEDGER_COMPACT_AFTER"] = "20"
    write_together(out, tmp_path / "go2", 1, 10, threads=1, rounds=1, env=env)
    assert len(ledger_lines(out)) <= 20 + 1


def test_two_cli_runs_into_one_folder_due_for_compaction_keep_every_output(tmp_path, model_env):
    """The issue's case: concurrent runs writing a folder whose ledger is over the default size."""
    count = 24
    inputs = inputs_for(tmp_path / "in", count)
    halves = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for index, half in enumerate(halves):
        half.mkdir()
        for picture in sorted(inputs.iterdir())[index::3]:
            os.link(picture, half / picture.name)
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER_NAME).write_bytes(dead_lines(COMPACT_AFTER_LINES + 100))
    runs = [subprocess.Popen(segtool_command() + ["image", str(half), "--category-mask", "--no-confidence-masks",
                                                  "-o", str(out), "-j", "2"], env=model_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for half in halves]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [r[1] for r in results]
    assert len(ledger_lines(out)) <= count  # compacted once, by whichever run got there first
    assert_rerun_skips_all(inputs, out, count, model_env)


def test_a_ray_job_whose_actors_compact_at_once_keeps_every_output(tmp_path, model_env, ray_cluster):
    pytest.importorskip("ray.data", reason="Ray Data is the cluster engine (pip install -e '.[dev]')")
    count = 16
    inputs = inputs_for(tmp_path / "in", count)
    out = tmp_path / "out"
    out.mkdir()
    (out / LEDGER_NAME).write_bytes(dead_lines(COMPACT_AFTER_LINES + 100))
    env = {**model_env, **ray_cluster.env}
    done = run_segtool(["image", inputs, "--category-mask", "--no-confidence-masks", "-o", out,
                        "--engine", "ray", "-j", "2"], env)
    assert done.returncode == 0, stderr_lines(done)
    assert len(ledger_lines(out)) <= count
    assert_rerun_skips_all(inputs, out, count, env, "--engine", "ray", "-j", "2")


def test_threads_of_one_process_writing_and_compacting(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from segtool import io as sio
    from segtool.io import ledger

    monkeypatch.setenv("SEGTOOL_LEDGER_COMPACT_AFTER", "4")
    names = [f"t{i:03d}.category.png" for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            list(pool.map(lambda n: sio.write_category_png(tmp_path / n, np.zeros((4, 4), np.uint8)), names))
    ledger._known.clear()  # as a new run would start: only the ledger file counts
    assert all(sio.may_replace(tmp_path / n) and sio.existing([tmp_path / n]) for n in names)
    assert len(ledger_lines(tmp_path)) < 3 * len(names)
