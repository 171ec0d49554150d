#!/usr/bin/env python3
"""Benchmark: submit a 1,000-combination grid to the test API server (tests/kube_api/, own process).

Baseline, measured in the same run: what a hand-written loop does, one `kubectl get job` then `kubectl create`
per job, sequentially, through the same official client. Prints time, API calls per job, and the ratio.
Two scenarios: the loopback server as is (its own CPU bounds both sides), and a 20 ms round trip per request,
as with a real, remote API server.
Usage: python bench/bench_job.py [--jobs 1000] [--repeat 3] [--latency-ms 0 20]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import launch  # noqa: E402
from kube import config, grid  # noqa: E402
from kube.operations import render_grid  # noqa: E402
from tests.kube_fixtures import Control, start_server, write_kubeconfig  # noqa: E402


def make_project(root: Path, jobs: int) -> None:
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n")
    seeds = ", ".join(str(i) for i in range(jobs))
    (root / "config" / "launch.yaml").write_text(
        f"model: {{m: {{command: python train.py --seed <seed>, hparam: {{seed: [{seeds}]}}}}}}\n"
        "dataset: {d: {}}\n")


def toolbox_submit(root: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = launch.main(["job", "--root", str(root)])
    assert code == 0, out.getvalue()[-2000:]


def baseline_submit(root: Path) -> None:
    from kubernetes import client, config as kconfig
    kconfig.load_kube_config(config_file=os.environ["KUBECONFIG"])
    batch = client.BatchV1Api()
    cfg = config.load(root)
    for manifest in (job.manifest for job in render_grid(grid.build_runs(cfg), cfg.project).jobs):
        try:
            batch.read_namespaced_job(manifest["metadata"]["name"], "lab")
        except client.ApiException as err:
            if err.status != 404:
                raise
            batch.create_namespaced_job("lab", manifest)


def scenario(jobs: int, repeat: int, latency_ms: float) -> None:
    url, stop = start_server(latency_ms)
    control = Control(url)
    results: dict[str, list[float]] = {"toolbox": [], "baseline": []}
    calls: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "bench"
            make_project(root, jobs)
            os.environ["KUBECONFIG"] = str(write_kubeconfig(Path(tmp) / "kubeconfig", url))
            for _ in range(repeat):
                for label, fn in (("baseline", baseline_submit), ("toolbox", toolbox_submit)):
                    control.reset()
                    start = time.perf_counter()
                    fn(root)
                    results[label].append(time.perf_counter() - start)
                    calls[label] = len(control.requests())
                    assert len(control.objects("jobs")) == jobs
    finally:
        stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"submitting {jobs} jobs, API round trip +{latency_ms:g} ms, {repeat} repeats (medians)")
    for label in ("baseline", "toolbox"):
        print(f"  {label:8s}: {med[label]:6.2f} s  {jobs / med[label]:7.1f} jobs/s  "
              f"{calls[label] / jobs:.3f} API calls per job ({calls[label]} in all)")
    print(f"  throughput ratio toolbox/baseline: {med['baseline'] / med['toolbox']:.1f}x (target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 20])
    args = parser.parse_args()
    for latency in args.latency_ms:
        scenario(args.jobs, args.repeat, latency)


if __name__ == "__main__":
    main()
