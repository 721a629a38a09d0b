#!/usr/bin/env python
"""The local engine against the Ray engine on one and on two nodes: same images, same run.

    flock /tmp/segtool-bench.lock python scripts/bench_cluster.py [--images 64] [--rounds 1]

One folder of 1920x1080 JPEGs (scripts/bench.py's pictures), the job of bench.py's folder run
(`--category-mask --no-confidence-masks --blur`, selfie), run in alternation, round after
round, so every engine sees the same background load on a shared machine:

- local `-j 1 --threads 1` against Ray with one node of 1 CPU (one actor, one thread);
- local `-j 2` (the default here) against Ray with two nodes of 1 CPU each (two actors).

The Ray cluster is real (`ray start --head` and `ray start --address`, token auth on), started
once, the second node joined for the two-node rounds. Per run: start-up seconds (command start
to the first --json line: connecting, actors, model load, first image or batch), images/s
steady (from the first batch of lines to the last) and over the whole run, and CPU seconds per
image: the command's own plus, for Ray, every process of the cluster's nodes (from /proc, so
Ray's daemons count too), over the whole run and once started (between the first batch of
lines and the last). Overhead per image = Ray's CPU per image once started over the local
engine's, minus 1: on a machine shared with other jobs CPU time is the fair measure, since wall
time favours whichever engine runs more processes (each gets its share of the cores).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from bench import segtool_cli, write_jpegs  # noqa: E402  (bench.py's pictures and command)
from services import _kill_session, _nodes_alive, _start_node, _stop_group, free_port  # noqa: E402

JOB = ["--model", "selfie", "--category-mask", "--no-confidence-masks", "--blur", "--json", "-q"]
TICK = os.sysconf("SC_CLK_TCK")


class ClusterCpu:
    """CPU seconds used by every process of some sessions (Ray nodes), sampled while running."""

    def __init__(self, sessions: list[int]):
        self.sessions = sessions
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def total(self) -> float:
        self._sample()
        return sum(self.seen.values())

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) in self.sessions:
                    cpu = (int(fields[11]) + int(fields[12])) / TICK
                    self.seen[int(entry.name)] = max(cpu, self.seen.get(int(entry.name), 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run(command: list, env: dict, count: int, cluster: ClusterCpu | None) -> dict:
    """One run: start-up s, steady and wall images/s, CPU s per image (whole run, once started).

    CPU once started: the command's and (Ray) the cluster's CPU between the end of the first
    batch of lines and the last line, sampled as those lines arrive, over the images between.
    """
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_cluster = cluster.total() if cluster else 0.0
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    arrivals, cpu_at = [], []
    for line in process.stdout:
        if line.startswith("{"):
            arrivals.append(time.perf_counter() - started)
            cpu_at.append(process_cpu(process.pid) + (cluster.total() if cluster else 0.0))
    if process.wait() != 0 or len(arrivals) != count:
        raise RuntimeError(f"{' '.join(command)}: exit {process.returncode}, {len(arrivals)} of {count} lines")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
    if cluster:
        cpu += cluster.total() - before_cluster
    # Ray hands back a batch's lines together: rates count from the end of the first batch.
    first = sum(1 for arrival in arrivals if arrival - arrivals[0] < 0.05)
    return {"startup": arrivals[0], "steady": (count - first) / max(1e-9, arrivals[-1] - arrivals[0]),
            "wall": count / wall, "cpu": cpu / count,
            "steady_cpu": (cpu_at[-1] - cpu_at[first - 1]) / max(1, count - first)}


def start_cluster(env: dict, folders: list[Path]) -> tuple[str, list]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = _start_node(["--head", "--port", str(port), "--include-dashboard", "false",
                        "--ray-client-server-port", str(free_port())], folders[0], env)
    wait_nodes(address, env, 1)
    return address, [head]


def wait_nodes(address: str, env: dict, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _nodes_alive(address, env) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} Ray node(s) did not come up")
        time.sleep(0.5)


def idle_rate(cpu: ClusterCpu, seconds: float = 5.0) -> float:
    """CPU seconds per second the cluster's own processes use with no job running."""
    time.sleep(2)  # let the node settle after start or after the previous run
    before = cpu.total()
    time.sleep(seconds)
    return (cpu.total() - before) / seconds


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def table(results: dict, count: int) -> str:
    lines = ["| engine | CPUs | start-up s | images/s, steady | images/s, wall | CPU s / image, whole run | "
             "CPU s / image, once started | overhead / image, once started (CPU) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    pairs = {"ray, 1 node": "local -j 1", "ray, 2 nodes": "local -j 2"}
    for name, rows in results.items():
        reference = results.get(pairs.get(name, ""))
        overhead = (f"{median(rows, 'steady_cpu') / median(reference, 'steady_cpu') - 1:+.1%}" if reference else "")
        cpus = 1 if name in ("local -j 1", "ray, 1 node") else 2
        lines.append(f"| {name} | {cpus} | {median(rows, 'startup'):.1f} | {median(rows, 'steady'):.2f} | "
                     f"{median(rows, 'wall'):.2f} | {median(rows, 'cpu'):.3f} | {median(rows, 'steady_cpu'):.3f} | "
                     f"{overhead} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="segtool-bench-cluster-"))
    folders = [Path(tempfile.mkdtemp(prefix="segray-")) for _ in range(2)]
    token = secrets.token_hex(16)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "NO_COLOR": "1"}
    env.pop("RAY_ADDRESS", None)
    load = os.getloadavg()[0]
    nodes = []
    try:
        write_jpegs(scratch / "jpegs", args.images)
        address, nodes = start_cluster(env, folders)
        ray_env = {**env, "RAY_ADDRESS": address}

        def command(out: str, *extra: str) -> list:
            shutil.rmtree(scratch / out, ignore_errors=True)
            return [*segtool_cli(), "image", str(scratch / "jpegs"), "-o", str(scratch / out), *JOB, *extra]

        idle = {}
        results: dict[str, list] = {name: [] for name in ("local -j 1", "ray, 1 node", "local -j 2", "ray, 2 nodes")}
        with ClusterCpu([n.pid for n in nodes]) as cpu:
            idle["1 node"] = idle_rate(cpu)
            for _ in range(args.rounds):
                results["local -j 1"].append(run(command("l1", "-j", "1", "--threads", "1"), env, args.images, None))
                results["ray, 1 node"].append(run(command("r1", "--engine", "ray"), ray_env, args.images, cpu))
        nodes.append(_start_node(["--address", address], folders[1], env))
        wait_nodes(address, env, 2)
        with ClusterCpu([n.pid for n in nodes]) as cpu:
            idle["2 nodes"] = idle_rate(cpu)
            for _ in range(args.rounds):
                results["local -j 2"].append(run(command("l2", "-j", "2"), env, args.images, None))
                results["ray, 2 nodes"].append(run(command("r2", "--engine", "ray"), ray_env, args.images, cpu))
        same = all((scratch / "l1" / p.name).read_bytes() == p.read_bytes() for p in (scratch / "r2").iterdir())
    finally:
        for node in reversed(nodes):
            _stop_group(node)
            _kill_session(node.pid)
        for folder in (*folders, scratch):
            shutil.rmtree(folder, ignore_errors=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    import ray

    print(f"Measured {stamp} by `flock /tmp/segtool-bench.lock python scripts/bench_cluster.py "
          f"--images {args.images} --rounds {args.rounds}` on {platform.machine()}, {os.cpu_count()} cores "
          f"(load average at start {load:.1f}), Ray {ray.__version__}; {args.images} JPEGs of 1920x1080, "
          f"median of {args.rounds} runs; Ray outputs byte-identical to the local engine's: {same}.\n")
    print(table(results, args.images))
    print("Ray's own processes with no job running: " + ", ".join(f"{rate:.3f} CPU s per second ({name})"
                                                             for name, rate in idle.items()) + ".\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
