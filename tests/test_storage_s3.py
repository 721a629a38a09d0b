"""`segtool image` on object storage: an S3 prefix in, an S3 prefix out (moto's S3 server).

What a user reads back with the store's own client equals, byte for byte, what the same job
writes to a local folder; a prefix is listed once, outputs are whole uploads, and
--skip-existing resumes from one listing per output prefix.
"""
from __future__ import annotations

import json
import secrets

import imageio.v3 as iio
import pytest

from segtool_process import partial_files, run_segtool, snapshot, stderr_lines, visible

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
JOB = ["-r", "--category-mask", "--blur"]
PROBE = ".segtool-write-check"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three photos, one in a sub-folder, and a file that only claims to be a JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "cats").mkdir()
    iio.imwrite(folder / "astronaut.png", skdata.astronaut())
    iio.imwrite(folder / "coffee.jpg", skdata.coffee(), quality=90)
    iio.imwrite(folder / "cats" / "chelsea.png", skdata.chelsea())
    (folder / "notes.jpg").write_bytes(b"not a jpeg at all")
    return folder


@pytest.fixture
def bucket(s3_server):
    fs = s3_server.filesystem()
    name = f"segtool-{secrets.token_hex(4)}"
    fs.mkdir(name)
    return name


def upload(fs, folder, url: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{url}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def objects(fs, url: str) -> dict[str, bytes]:
    root = url.split("://", 1)[1].rstrip("/")
    return {name[len(root) + 1:]: fs.cat_file(name) for name in sorted(fs.find(root))}


def s3_env(model_env, s3_server) -> dict:
    return {**model_env, **s3_server.env}


def listings(requests: list[str], prefix: str) -> list[str]:
    return [r for r in requests if r.startswith("GET ") and "list-type=2" in r and f"prefix={prefix}" in r]


def test_s3_prefix_in_s3_prefix_out_equals_the_local_job(photos, tmp_path, bucket, s3_server, model_env):
    fs = s3_server.filesystem()
    upload(fs, photos, f"{bucket}/in")
    local = run_segtool(["image", photos, *JOB, "-o", tmp_path / "local"], model_env)
    before = len(s3_server.requests())
    done = run_segtool(["image", f"s3://{bucket}/in/", *JOB, "-o", f"s3://{bucket}/out/", "--json"],
                       s3_env(model_env, s3_server))
    assert done.returncode == local.returncode == 1
    assert stderr_lines(done)[:-1] == [f"segtool: s3://{bucket}/in/notes.jpg: not an image, or a format "
                                       "segtool cannot read"]
    assert objects(fs, f"s3://{bucket}/out") == snapshot(tmp_path / "local")
    reports = {r["input"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert sorted(reports) == [f"s3://{bucket}/in/{n}" for n in
                               ("astronaut.png", "cats/chelsea.png", "coffee.jpg", "notes.jpg")]
    assert f"s3://{bucket}/out/cats/chelsea.category.png" in reports[f"s3://{bucket}/in/cats/chelsea.png"]["outputs"]
    asked = s3_server.requests()[before:]
    assert len(listings(asked, "in/")) == 1, "the input prefix is listed once"
    puts = [r for r in asked if r.startswith("PUT ") and PROBE not in r]  # (the write check: its own test)
    assert len(puts) == len(snapshot(tmp_path / "local")), "one whole upload per output"
    assert not [r for r in asked if "uploads" in r or ".part" in r], "no multipart pieces, no .part objects"


def test_skip_existing_resumes_from_one_listing_per_prefix(photos, tmp_path, bucket, s3_server, model_env):
    fs = s3_server.filesystem()
    upload(fs, photos, f"{bucket}/in")
    env = s3_env(model_env, s3_server)
    job = ["image", f"s3://{bucket}/in/", *JOB, "-o", f"s3://{bucket}/out/", "--json", "--skip-existing"]
    run_segtool(job, env)
    complete = objects(fs, f"s3://{bucket}/out")
    fs.rm_file(f"{bucket}/out/coffee.blur.jpg")  # as if the run had been cut short there
    before = len(s3_server.requests())
    again = run_segtool(job, env)
    asked = s3_server.requests()[before:]
    reports = {r["input"].rsplit("/", 1)[1]: r for r in map(json.loads, again.stdout.splitlines())}
    assert [n for n, r in sorted(reports.items()) if r["skipped"]] == ["astronaut.png", "chelsea.png"]
    assert reports["coffee.jpg"]["ok"] and not reports["coffee.jpg"]["skipped"]
    assert objects(fs, f"s3://{bucket}/out") == complete
    assert len(listings(asked, "out/&")) == 1 and len(listings(asked, "out/cats/")) == 1
    # existence comes from the listings; each object that exists is asked once whether segtool
    # wrote it (its metadata), as a folder's ledger is: skipped inputs' outputs and those about
    # to be replaced; the missing one is not asked about
    heads = sorted(r for r in asked if r.startswith("HEAD ") and PROBE not in r)
    assert heads == sorted(f"HEAD /{bucket}/out/{name}" for name in complete if name != "coffee.blur.jpg")
    assert sorted(r for r in asked if r.startswith("PUT ") and PROBE not in r) == [f"PUT /{bucket}/out/coffee.blur.jpg",
                                                                f"PUT /{bucket}/out/coffee.category.png",
                                                                f"PUT /{bucket}/out/coffee.confidence.npy"]


def test_an_object_segtool_did_not_write_is_never_replaced(photos, bucket, s3_server, model_env):
    fs = s3_server.filesystem()
    upload(fs, photos, f"{bucket}/in")
    fs.pipe_file(f"{bucket}/out/astronaut.category.png", b"the user's own file")
    env = s3_env(model_env, s3_server)
    job = ["image", f"s3://{bucket}/in/astronaut.png", f"s3://{bucket}/in/coffee.jpg", "--category-mask",
           "-o", f"s3://{bucket}/out/"]
    first = run_segtool(job, env)
    assert first.returncode == 1
    assert [line for line in stderr_lines(first) if line.startswith("segtool: s3")] == [
        f"segtool: s3://{bucket}/out/astronaut.category.png: an object segtool did not write is there; "
        "not overwriting it (move it away or choose another --output)"]
    assert fs.cat_file(f"{bucket}/out/astronaut.category.png") == b"the user's own file"
    assert fs.metadata(f"{bucket}/out/coffee.category.png").get("written-by") == "segtool"
    fs.rm_file(f"{bucket}/out/astronaut.category.png")
    again = run_segtool(job, env)  # a rerun replaces segtool's own objects
    assert again.returncode == 0, stderr_lines(again)


def test_missing_objects_and_file_urls(photos, tmp_path, bucket, s3_server, model_env):
    env = s3_env(model_env, s3_server)
    done = run_segtool(["image", f"s3://{bucket}/nowhere.jpg", f"s3://{bucket}/empty/",
                        f"file://{photos}/astronaut.png", "--category-mask", "-o", f"file://{tmp_path}/out"], env)
    assert done.returncode == 1
    assert stderr_lines(done)[:2] == [f"segtool: s3://{bucket}/nowhere.jpg: no such object",
                                      f"segtool: s3://{bucket}/empty: no such object"]
    assert visible(tmp_path / "out") == ["astronaut.category.png",
                                                                     "astronaut.confidence.npy"]
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("engine", [[], ["-b", "3"], ["--engine", "ray"]], ids=["local", "batched", "ray"])
def test_skip_existing_decides_as_the_ledger_does_for_every_engine(photos, tmp_path, bucket, s3_server, model_env,
                                                                   engine, request):
    """An output key that holds an object segtool did not write is refused, with or without
    --skip-existing, as a local folder's ledger decides for a file segtool did not write."""
    fs = s3_server.filesystem()
    upload(fs, photos, f"{bucket}/in")
    env = s3_env(model_env, s3_server)
    if "ray" in engine:
        env.update(request.getfixturevalue("ray_cluster").env)
    job = ["image", f"s3://{bucket}/in/astronaut.png", f"s3://{bucket}/in/coffee.jpg", "--category-mask",
           "--no-confidence-masks", "-o", f"s3://{bucket}/out/", *engine]
    assert run_segtool(job, env).returncode == 0
    fs.pipe_file(f"{bucket}/out/astronaut.category.png", b"the user's own file, put over segtool's")
    refused = f"segtool: s3://{bucket}/out/astronaut.category.png: an object segtool did not write is there; " \
              "not overwriting it (move it away or choose another --output)"
    for flags in ([], ["--skip-existing"]):
        again = run_segtool(job + flags + ["--json"], env)
        assert again.returncode == 1, flags
        assert refused in stderr_lines(again), flags
        reports = {r["input"].rsplit("/", 1)[1]: r for r in map(json.loads, again.stdout.splitlines())}
        assert not reports["astronaut.png"]["ok"] and not reports["astronaut.png"]["skipped"], flags
        assert reports["coffee.jpg"]["ok"] and reports["coffee.jpg"]["skipped"] == bool(flags), flags
        assert fs.cat_file(f"{bucket}/out/astronaut.category.png") == b"the user's own file, put over segtool's"
    # the same job on a local folder, where the ledger decides
    local = ["image", photos / "astronaut.png", photos / "coffee.jpg", "--category-mask", "--no-confidence-masks",
             "-o", tmp_path / "out", *[e for e in engine if e not in ("--engine", "ray")]]
    assert run_segtool(local, model_env).returncode == 0
    (tmp_path / "out" / "astronaut.category.png").write_bytes(b"the user's own file, put over segtool's")
    for flags in ([], ["--skip-existing"]):
        again = run_segtool(local + flags, model_env)
        assert again.returncode == 1 and any("not overwriting it" in line for line in stderr_lines(again)), flags


# ---- an output location that cannot take objects ends the run before any work --------------------

@pytest.mark.parametrize("engine", [[], ["--engine", "ray", "-j", "2"]], ids=["local", "ray"])
def test_a_missing_output_bucket_is_one_line_before_any_work(photos, tmp_path, s3_server, model_env, engine, request):
    env = s3_env(model_env, s3_server)
    if engine:
        pytest.importorskip("ray.data", reason="Ray Data is the cluster engine")
        env = {**env, **request.getfixturevalue("ray_cluster").env}
    missing = f"segtool-missing-{secrets.token_hex(4)}"
    done = run_segtool(["image", photos, *JOB, "-o", f"s3://{missing}/out/", *engine], env)
    assert done.returncode == 1
    assert stderr_lines(done) == [f"segtool: s3://{missing}/out: no such bucket ({missing}); "
                                  "create it or choose another --output"]
    # that line alone: notes.jpg, which fails whenever it is decoded, never was (nor anything else)


def test_the_write_check_leaves_nothing_behind_and_is_made_once(photos, tmp_path, bucket, s3_server, model_env):
    done = run_segtool(["image", photos, *JOB, "-o", f"s3://{bucket}/out/"], s3_env(model_env, s3_server))
    assert done.returncode == 1  # notes.jpg
    names = objects(s3_server.filesystem(), f"s3://{bucket}/out")
    assert ".segtool-write-check" not in names and "cats/chelsea.blur.png" in names
    probes = [r for r in s3_server.requests() if f"/{bucket}/out/.segtool-write-check" in r]
    assert [r.split(" ")[0] for r in probes if r.startswith("PUT")] == ["PUT"]  # once, not per input


def test_credentials_the_store_refuses_are_one_line_before_any_work(photos, tmp_path, model_env):
    """A store that checks identities (moto with IAM on) and an identity it does not know."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from services import _listening, _stop_group, _wait_for, free_port

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},  # IAM checked from the first request
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _listening(port), 30, "moto_server")
        env = {**model_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "nobody",
               "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_DEFAULT_REGION": "us-east-1"}
        done = run_segtool(["image", photos, *JOB, "-o", "s3://locked/out/"], env)
    finally:
        _stop_group(server)
    assert done.returncode == 1
    assert stderr_lines(done) == ["segtool: s3://locked/out: access denied: cannot write objects there"]
