"""Real services the storage and cluster tests start on this machine, once per test session.

- ``s3_server``: moto's standalone S3 server on 127.0.0.1 (a free port), its request log kept,
  so tests can count what segtool asked the store;
- ``ray_cluster``: a Ray cluster of two nodes of one CPU each (``ray start --head`` and a second
  ``ray start --address``), token authentication on, each node with its own temporary folder.
  The nodes' environment carries the S3 endpoint and credentials, as cluster nodes carry their
  own. Both are always stopped at the end, whatever happened.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_group(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group we started (the service and its children), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.3)


# ---- S3 ---------------------------------------------------------------------------------------

@dataclass
class S3Server:
    endpoint: str
    log: Path

    @property
    def env(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "segtool-test",
                "AWS_SECRET_ACCESS_KEY": "segtool-test", "AWS_DEFAULT_REGION": "us-east-1"}

    def requests(self) -> list[str]:
        """Every request the server answered so far, as 'METHOD /path?query'."""
        text = self.log.read_text(errors="replace")
        return re.findall(r'"([A-Z]+ \S+) HTTP/[0-9.]+"', text)

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, key="segtool-test", secret="segtool-test",
                                 skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    pytest.importorskip("moto", reason="moto[server] is the local S3 server (pip install -e '.[dev]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "requests.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: _listening(port) or server.poll() is not None, 30, "moto_server")
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
        yield S3Server(f"http://127.0.0.1:{port}", log)
    finally:
        _stop_group(server)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# ---- Ray --------------------------------------------------------------------------------------

@dataclass
class RayCluster:
    address: str
    env: dict  # what a driver needs: the address and the token (token auth is on)
    token: str

    def owns(self, pid: int) -> bool:
        """True for a process of this cluster (its environment holds this cluster's token)."""
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"RAY_AUTH_TOKEN={self.token}".encode() in environ

    def map_workers(self) -> list[int]:
        """Pids of the Ray Data actors (ray::MapWorker...) running a batch right now."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    title = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::MapWorker") and b".submit" in title and self.owns(int(entry.name)):
                    found.append(int(entry.name))
        return found


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    pytest.importorskip("ray.data", reason="Ray Data is the cluster engine (pip install -e '.[dev]')")
    token = secrets.token_hex(16)
    folders = [Path(tempfile.mkdtemp(prefix="segray-")) for _ in range(2)]  # short: socket paths
    env = {**os.environ, **s3_server.env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    try:
        nodes.append(_start_node(["--head", "--port", str(port), "--include-dashboard", "false",
                                  "--ray-client-server-port", str(free_port())], folders[0], env))
        _wait_for(lambda: _nodes_alive(address, env) >= 1, 90, "the Ray head node")
        nodes.append(_start_node(["--address", address], folders[1], env))
        _wait_for(lambda: _nodes_alive(address, env) >= 2, 90, "the second Ray node")
        yield RayCluster(address, {"RAY_ADDRESS": address, "RAY_AUTH_MODE": "token",
                                   "RAY_AUTH_TOKEN": token}, token)
    finally:
        for node in reversed(nodes):
            _stop_group(node)
            _kill_session(node.pid)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _start_node(args: list, folder: Path, env: dict) -> subprocess.Popen:
    command = [str(BIN / "ray"), "start", "--block", "--num-cpus", "1", "--temp-dir", str(folder),
               "--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats", *args]
    with open(folder / "node.log", "wb") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _nodes_alive(address: str, env: dict) -> int:
    probe = ("import ray, logging; ray.init(address=%r, logging_level=logging.ERROR); "
             "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    return int(lines[-1]) if done.returncode == 0 and lines and lines[-1].isdigit() else 0


def _kill_session(leader: int) -> None:
    """SIGKILL what is left of a node: Ray's workers leave its process group, not its session."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                session = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
                if session == leader:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue
