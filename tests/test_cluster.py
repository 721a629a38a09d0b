"""`segtool image --engine ray` on a real two-node Ray cluster (token authentication on).

The same job as the local engine, compared as users read it: the files, byte for byte; the
--json lines; one stderr line per bad input; the exit status. Then what a cluster adds: a
worker killed with -9 mid-run, a driver killed mid-run and the rerun that completes the set,
and S3 prefixes read and written by the actors.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time

import imageio.v3 as iio
import pytest

from segtool_process import partial_files, run_on_terminal, run_segtool, segtool_command, start_segtool, snapshot, stderr_lines

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
pytest.importorskip("ray.data", reason="Ray Data is the cluster engine (pip install -e '.[dev]')")
JOB = ["--category-mask", "--blur"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "coffee.jpg", skdata.coffee(), quality=90)
    iio.imwrite(folder / "chelsea.png", skdata.chelsea())
    (folder / "truncated.jpg").write_bytes((folder / "coffee.jpg").read_bytes()[:3000])
    return folder


@pytest.fixture(scope="module")
def many(tmp_path_factory, photos):
    """Sixteen copies of one photo: long enough a run to kill something in the middle of it."""
    folder = tmp_path_factory.mktemp("many")
    for index in range(16):
        shutil.copy(photos / "astronaut.png", folder / f"astronaut{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def one_local(tmp_path_factory, photos):
    """What the local engine writes for the photo `many` is made of: {suffix: bytes}."""
    out = tmp_path_factory.mktemp("one-local")
    env = dict(os.environ, NO_COLOR="1")
    subprocess.run(segtool_command() + ["image", str(photos / "astronaut.png"), *JOB, "-o", str(out)],
                   env=env, check=True, capture_output=True)
    return {name.removeprefix("astronaut"): data for name, data in snapshot(out).items()}


def ray_env(model_env, ray_cluster) -> dict:
    return {**model_env, **ray_cluster.env}


def reports(done) -> dict[str, dict]:
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for line in lines:
        line.pop("seconds")
    return {line["input"]: line for line in lines}


def expected_many(one_local: dict, count: int = 16) -> dict[str, bytes]:
    return {f"astronaut{i:02d}{suffix}": data for i in range(count) for suffix, data in one_local.items()}


def start(args: list, env: dict) -> subprocess.Popen:
    return start_segtool(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_outputs(folder, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.blur.png"))) < count:
        assert process.poll() is None, "the run ended before anything could be killed"
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.1)


def test_ray_engine_writes_what_the_local_engine_writes(photos, tmp_path, model_env, ray_cluster):
    # The input is named relative to where segtool starts, as users type it.
    where = {"cwd": photos.parent}
    local = run_segtool(["image", photos.name, *JOB, "--json", "-o", tmp_path / "local"], model_env, **where)
    done = run_segtool(["image", photos.name, *JOB, "--json", "-o", tmp_path / "ray", "--engine", "ray", "-j", "2"],
                       ray_env(model_env, ray_cluster), **where)
    assert done.returncode == local.returncode == 1
    assert stderr_lines(done) == stderr_lines(local) == [
        f"segtool: {photos.name}/truncated.jpg: truncated image (the pixel data ends early: Premature end of JPEG file)",
        "segtool: 3 done, 1 failed"]
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")
    ray_lines = {name: {**line, "outputs": [o.replace(str(tmp_path / "ray"), str(tmp_path / "local"))
                                            for o in line["outputs"]]} for name, line in reports(done).items()}
    assert ray_lines == reports(local)  # the same lines, in any order


def test_a_worker_killed_mid_run_is_retried_and_the_job_completes_whole(many, one_local, tmp_path, model_env,
                                                                         ray_cluster):
    out = tmp_path / "out"
    run = start(["image", many, *JOB, "-o", out, "--engine", "ray", "-j", "2", "--json"],
                ray_env(model_env, ray_cluster))
    wait_for_outputs(out, 2, run)
    victims = ray_cluster.map_workers()
    assert victims, "no Ray Data actor was running a batch"
    os.kill(victims[0], signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr.decode()
    assert stderr.decode().splitlines() == ["segtool: 16 done, 0 failed"]
    assert sorted(json.loads(line)["input"] for line in stdout.decode().splitlines()) == \
        sorted(str(p) for p in many.iterdir())
    assert snapshot(out) == expected_many(one_local)
    assert partial_files(out) == []


def test_rerun_with_skip_existing_after_the_driver_is_killed_completes_the_set(many, one_local, tmp_path,
                                                                               model_env, ray_cluster):
    out = tmp_path / "out"
    job = ["image", many, *JOB, "-o", out, "--engine", "ray", "-j", "2", "--skip-existing", "--json"]
    env = {**ray_env(model_env, ray_cluster), "TMPDIR": str(tmp_path)}  # where the killed driver's notes stay
    first = start(job, env)
    wait_for_outputs(out, 2, first)
    first.kill()
    first.communicate()
    done_before = len(list(out.glob("*.blur.png")))
    again = run_segtool(job, env)
    assert again.returncode == 0, again.stderr
    skipped = [r for r in reports(again).values() if r["skipped"]]
    assert len(skipped) >= min(done_before, 2) and len(reports(again)) == 16
    for name, data in expected_many(one_local).items():
        assert (out / name).read_bytes() == data, name  # every file whole, none half-written


def test_actors_read_and_write_s3_prefixes(photos, tmp_path, model_env, ray_cluster, s3_server):
    fs = s3_server.filesystem()
    bucket = f"segtool-{secrets.token_hex(4)}"
    fs.mkdir(bucket)
    for path in photos.iterdir():
        fs.pipe_file(f"{bucket}/in/{path.name}", path.read_bytes())
    local = run_segtool(["image", photos, *JOB, "-o", tmp_path / "local"], model_env)
    done = run_segtool(["image", f"s3://{bucket}/in/", *JOB, "-o", f"s3://{bucket}/out/", "--engine", "ray"],
                       {**ray_env(model_env, ray_cluster), **s3_server.env})
    assert done.returncode == local.returncode == 1
    assert stderr_lines(done) == [f"segtool: s3://{bucket}/in/truncated.jpg: truncated image (the pixel data "
                                  "ends early: Premature end of JPEG file)", "segtool: 3 done, 1 failed"]
    stored = {name.split("/out/", 1)[1]: fs.cat_file(name) for name in fs.find(f"{bucket}/out")}
    assert stored == snapshot(tmp_path / "local")


def test_a_terminal_shows_a_progress_bar_with_images_per_second(photos, tmp_path, model_env, ray_cluster):
    status, shown = run_on_terminal(["image", photos, *JOB, "-o", tmp_path, "--engine", "ray"],
                                    ray_env(model_env, ray_cluster), timeout=300)
    text = shown.decode(errors="replace")
    assert status == 1 and "segmenting" in text and re.search(r"\d+\.\d/s", text), text[-2000:]
    assert "segtool: 3 done, 1 failed" in text and "(raylet)" not in text
