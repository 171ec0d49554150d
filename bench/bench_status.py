#!/usr/bin/env python3
"""Benchmark: `make status` on a 1,000-cell grid against the test API server (tests/kube_api/).

Counts the API calls (target: a constant, whatever the grid size) and times the command. The baseline, measured
in the same run, is the per-cell way: one `get job` and one `list pods` per cell.
Usage: python bench/bench_status.py [--cells 1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
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
from tests.kube_fixtures import Control, start_server, write_kubeconfig  # noqa: E402


def seed(control: Control, root: Path) -> list[str]:
    """Submit the grid, then give every job a pod in one of several states, as a cluster would report."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert launch.main(["job", "--root", str(root)]) == 0
    names = []
    for i, job in enumerate(control.objects("jobs")):
        name = job["metadata"]["name"]
        names.append(name)
        phase = ("Running", "Succeeded", "Failed", "Pending")[i % 4]
        state = {"Running": {"running": {}}, "Succeeded": {"terminated": {"exitCode": 0}},
                 "Failed": {"terminated": {"exitCode": 1, "reason": "Error"}}, "Pending": {"waiting": {
                     "reason": "ImagePullBackOff"}}}[phase]
        control.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{name}-x", "namespace": "lab", "labels": {**job["metadata"]["labels"], "job-name": name}},
            "spec": {"nodeName": f"node-{i % 7}"}, "status": {"phase": phase, "containerStatuses": [
                {"name": "main", "state": state}]}})
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url, stop = start_server()
    control = Control(url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "bench"
            (root / "config").mkdir(parents=True)
            (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n")
            seeds = ", ".join(map(str, range(args.cells)))
            (root / "config" / "launch.yaml").write_text(
                f"model: {{m: {{command: echo <seed>, hparam: {{seed: [{seeds}]}}}}}}\ndataset: {{d: {{}}}}\n")
            os.environ["KUBECONFIG"] = str(write_kubeconfig(Path(tmp) / "kubeconfig", url))
            names = seed(control, root)
            from kubernetes import client, config as kconfig
            kconfig.load_kube_config(config_file=os.environ["KUBECONFIG"])
            batch, core = client.BatchV1Api(), client.CoreV1Api()
            times = {"toolbox": [], "baseline": []}
            calls = {}
            for _ in range(args.repeat):
                control.clear_requests()
                start = time.perf_counter()
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    assert launch.main(["status", "--json", "--root", str(root)]) == 0
                times["toolbox"].append(time.perf_counter() - start)
                calls["toolbox"] = len(control.requests())
                cells = json.loads(out.getvalue())["cells"]
                assert len(cells) == args.cells
                control.clear_requests()
                start = time.perf_counter()
                runs = grid.build_runs(config.load(root))
                for run in runs:
                    batch.read_namespaced_job(run.name, "lab", _preload_content=False)
                    core.list_namespaced_pod("lab", label_selector=f"job-name={run.name}", _preload_content=False)
                times["baseline"].append(time.perf_counter() - start)
                calls["baseline"] = len(control.requests())
    finally:
        stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"status of a {args.cells}-cell grid, {args.repeat} repeats (medians)")
    print(f"  toolbox : {med['toolbox']:6.2f} s  {calls['toolbox']} API calls (one list per kind: jobs, pods, events, nodes; a call per 500 objects)")
    print(f"  baseline: {med['baseline']:6.2f} s  {calls['baseline']} API calls (get job + list pods per cell)")
    print(f"  ratio baseline/toolbox: {med['baseline'] / med['toolbox']:.1f}x")


if __name__ == "__main__":
    main()
