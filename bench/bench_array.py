#!/usr/bin/env python3
"""Benchmark: a 10,000-cell sweep submitted in array mode (one Indexed Job) vs one Job per cell.

Both through `launch.py job` against the test API server (tests/kube_api/) with a 20 ms round trip per
request, as with a remote API server. Baseline, measured in the same run: the same grid without max_parallel.
Prints wall time and API calls (medians), and the ratios.
Usage: python bench/bench_array.py [--cells 10000] [--repeat 3] [--latency-ms 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kube_fixtures import Control, start_server, write_kubeconfig  # noqa: E402


def make_project(root: Path, cells: int, array: bool) -> None:
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n")
    seeds = ", ".join(str(i) for i in range(cells))
    (root / "config" / "launch.yaml").write_text(
        ("max_parallel: 50\n" if array else "") +
        f"model: {{m: {{command: 'python train.py --seed <seed>', hparam: {{seed: [{seeds}]}}}}}}\n")


def submit(root: Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "launch.py"), "job"], cwd=root, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"launch.py job failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    url, stop = start_server(args.latency_ms)
    control = Control(url)
    times: dict[str, list[float]] = {"one Job per cell": [], "array mode": []}
    calls: dict[str, list[int]] = {k: [] for k in times}
    objects: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "KUBECONFIG": str(write_kubeconfig(Path(tmp) / "kubeconfig", url))}
            for label, array in (("one Job per cell", False), ("array mode", True)):
                root = Path(tmp) / label.replace(" ", "-")
                make_project(root, args.cells, array)
                for _ in range(args.repeat):
                    control.reset()
                    times[label].append(submit(root, env))
                    calls[label].append(len(control.requests()))
                    objects[label] = len(control.objects("jobs"))
    finally:
        stop()
    print(f"make job, {args.cells:,} cells, API round trip +{args.latency_ms:g} ms, median of {args.repeat}:")
    for label in times:
        print(f"  {label:17s}: {statistics.median(times[label]):7.2f} s  {statistics.median(calls[label]):7.0f} "
              f"API calls  {objects[label]:6d} Job objects")
    base, arr = (statistics.median(times[k]) for k in times)
    base_calls, arr_calls = (statistics.median(calls[k]) for k in calls)
    print(f"  array mode is {base / arr:.1f}x faster with {base_calls / arr_calls:.0f}x fewer API calls")


if __name__ == "__main__":
    main()
