#!/usr/bin/env python3
"""Benchmark: `make status` of a large grid (a Job and a pod per cell) against the test API server, side by side
with `kubectl get jobs -l user=...,project=...` (the public toolbox's way to see a sweep) on the same server.

Both are timed as whole commands (start-up included) on loopback and behind 20 ms of latency per request; the
toolbox's peak memory is read from the kernel's accounting of the child process. Medians of --repeat runs.
Usage: python bench/bench_status.py [--cells 10000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kube import config, grid, operations  # noqa: E402
from tests.kube_fixtures import Control, start_server, write_kubeconfig  # noqa: E402

STATES = (("Running", {"running": {}}), ("Succeeded", {"terminated": {"exitCode": 0}}),
          ("Failed", {"terminated": {"exitCode": 1, "reason": "Error"}}),
          ("Pending", {"waiting": {"reason": "ImagePullBackOff"}}))


def seed(control: Control, root: Path) -> int:
    """Every cell's Job as `make job` renders it, with a status, and a pod in one of four states."""
    cfg = config.load(root)
    rendered = operations.render_grid(grid.build_runs(cfg), cfg.project)
    jobs, pods = [], []
    for i, job in enumerate(rendered.jobs):
        manifest = dict(job.manifest)
        phase, state = STATES[i % 4]
        manifest["status"] = {"active": 1} if phase in ("Running", "Pending") else (
            {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]} if phase == "Succeeded" else
            {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
        jobs.append(manifest)
        template = manifest["spec"]["template"]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{job.name}-x", "namespace": "lab",
            "labels": {**manifest["metadata"]["labels"], "job-name": job.name}},
            "spec": {**template["spec"], "nodeName": f"node-{i % 7}"},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}})
    control.seed_many(jobs)
    control.seed_many(pods)
    return len(jobs)


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak resident MB) of one run of a command, its output discarded. The peak comes from GNU time
    (a child forked from this big process would inherit its high-water mark); 0 when GNU time is missing."""
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    wrapper = [gnu_time, "-f", "%M", "-o", "/dev/stderr"] if gnu_time else []
    start = time.perf_counter()
    done = subprocess.run(wrapper + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {done.stderr[-500:]}")
    lines = done.stderr.strip().splitlines()
    return took, int(lines[-1]) / 1024 if gnu_time and lines and lines[-1].isdigit() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    kubectl = shutil.which("kubectl")
    print(f"status of a {args.cells}-cell grid (a Job and a pod per cell), {args.repeat} runs each, medians")
    for latency in (0, 20):
        url, stop = start_server(latency_ms=latency)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "bench"
                (root / "config").mkdir(parents=True)
                (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n"
                                                           "gpu_count: 0\n")
                seeds = ", ".join(map(str, range(args.cells)))
                (root / "config" / "launch.yaml").write_text(
                    f"model: {{m: {{command: echo <seed>, hparam: {{seed: [{seeds}]}}}}}}\ndataset: {{d: {{}}}}\n")
                env = {**os.environ, "KUBECONFIG": str(write_kubeconfig(Path(tmp) / "kubeconfig", url)),
                       "HOME": tmp}
                seed(Control(url), root)
                toolbox = [sys.executable, str(ROOT / "launch.py"), "status", "--root", str(root)]
                runs = {"toolbox": [timed(toolbox, env) for _ in range(args.repeat)]}
                if kubectl:
                    get = [kubectl, "--cache-dir", f"{tmp}/kube-cache", "get", "jobs", "-n", "lab",
                           "-l", "user=alice,project=bench"]
                    timed(get, env)                               # discovery cached, as on a user's machine
                    runs["kubectl"] = [timed(get, env) for _ in range(args.repeat)]
        finally:
            stop()
        med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for k, v in runs.items()}
        print(f"  latency {latency:>2} ms:")
        for name, (took, peak) in med.items():
            print(f"    {name:8s} {took:6.2f} s  peak {peak:5.0f} MB")
        if "kubectl" in med:
            print(f"    ratio kubectl/toolbox: {med['kubectl'][0] / med['toolbox'][0]:.2f}x")


if __name__ == "__main__":
    main()
