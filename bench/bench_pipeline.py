#!/usr/bin/env python3
"""Benchmark: the pipeline driver (`make job wait=1`, the loop the driver Job runs) following a grid of cells x 3
stages through the test API server with 20 ms per request, while stages complete in batches.

Measured: API calls per poll (requests, and how many of them start a list of the user's Jobs: one a poll,
whatever the grid size; a list of more than 500 Jobs takes a request per page), the duration of a poll, and the
time from a stage's completion (its status written, as the Job controller does) to the create of the next stage
(goal: under two poll intervals). Baseline, in the same run: a driver that asks for each cell's current Job by
name every poll (one GET per cell, 8 at a time, the way a loop of per-cell waits would). Medians.
Usage: python bench/bench_pipeline.py [--cells 100 1000] [--poll 2.0] [--batch 100] [--latency-ms 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kube import config, driver, grid, operations, stages  # noqa: E402
from kube.cluster import Gateway  # noqa: E402
from tests.kube_fixtures import Control, start_server, write_kubeconfig  # noqa: E402

STAGES = ("fetch", "train", "eval")
DONE = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}


def make_project(root: Path, cells: int) -> None:
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n")
    seeds = ", ".join(str(i) for i in range(cells))
    (root / "config" / "launch.yaml").write_text(
        "model:\n  m:\n    command: python train.py --seed <seed>\n"
        f"    hparam: {{seed: [{seeds}]}}\n"
        "    stages:\n      - {name: fetch, command: make download file=data/, gpu_count: 0}\n"
        "      - {name: train, gpu_count: 1}\n      - {name: eval, command: python eval.py, gpu_count: 0}\n"
        "dataset: {d: {}}\n")


def follow_once(control: Control, root: Path, cells: int, poll: float, batch: int) -> dict:
    """Seed every cell's first stage, follow in a thread, complete the stages batch by batch; what was seen."""
    cfg = config.load(root)
    runs = grid.build_runs(cfg)
    rendered = operations.render_grid(stages.flatten(runs), cfg.project)
    by_name = {j.name: j for j in rendered.jobs}
    control.seed_many([by_name[r.stages[0].name].manifest for r in runs])
    gw = Gateway.for_project(cfg.project, workers=operations.WORKERS)
    created: dict[str, float] = {}

    def heard(event: driver.Event) -> None:
        if event.kind == "created":
            created[event.step.unit.name] = time.monotonic()

    control.clear_requests()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        report=driver.follow(gw, cfg.project, runs, by_name, poll, heard)))
    thread.start()
    completed: dict[str, float] = {}                     # a stage's Job -> when its completion was written
    for position, stage in enumerate(STAGES):
        for start in range(0, cells, batch):
            group = runs[start:start + batch]
            if position:
                deadline = time.monotonic() + 60
                while not all(r.stages[position].name in created for r in group):
                    assert time.monotonic() < deadline, "the driver did not create the next stages"
                    time.sleep(0.02)
            control.seed_many([{**by_name[r.stages[position].name].manifest, "status": DONE} for r in group])
            now = time.monotonic()
            completed.update((r.stages[position].name, now) for r in group)
            time.sleep(poll / 2)
    thread.join(timeout=120)
    report: driver.FollowReport = result["report"]
    lists = [r for r in control.requests() if r["method"] == "GET" and r["path"].endswith("/namespaces/lab/jobs")]
    delays = [created[r.stages[i + 1].name] - completed[r.stages[i].name] for r in runs for i in range(2)]
    return {"polls": report.polls, "calls": report.calls, "starts": sum("continue" not in r["query"] for r in lists),
            "pages": len(lists), "delays": delays, "done": len(report.done)}


def baseline_poll(root: Path) -> float:
    """One poll of the per-cell way: a GET of each cell's current Job (8 at a time)."""
    cfg = config.load(root)
    runs = grid.build_runs(cfg)
    gw = Gateway.for_project(cfg.project, workers=operations.WORKERS)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=operations.WORKERS) as pool:
        list(pool.map(lambda r: gw.get("Job", r.stages[-1].name), runs))
    return time.perf_counter() - start


def toolbox_poll(root: Path) -> float:
    cfg = config.load(root)
    gw = Gateway.for_project(cfg.project, workers=operations.WORKERS)
    start = time.perf_counter()
    driver.list_jobs(gw, cfg.project)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--poll", type=float, default=2.0, help="the driver's seconds between polls")
    parser.add_argument("--batch", type=int, default=100, help="cells whose stage completes at once")
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    print(f"pipeline driver, 3 stages a cell, poll {args.poll:g} s, {args.latency_ms:g} ms per request, "
          f"stages completing {args.batch} cells at a time; medians")
    for cells in args.cells:
        url, stop = start_server(latency_ms=args.latency_ms)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "bench"
                make_project(root, cells)
                os.environ["KUBECONFIG"] = str(write_kubeconfig(Path(tmp) / "kubeconfig", url))
                seen = follow_once(Control(url), root, cells, args.poll, args.batch)
                ours = statistics.median(toolbox_poll(root) for _ in range(3))
                theirs = statistics.median(baseline_poll(root) for _ in range(3))
        finally:
            stop()
        quiet = [c for c in seen["calls"] if c] or [0]
        delays = sorted(seen["delays"])
        print(f"  {cells} cells ({3 * cells} stage Jobs), {seen['done']} completed in {seen['polls']} polls:")
        print(f"    list calls per poll      {seen['starts'] / seen['polls']:.2f}  "
              f"(requests of a list: {seen['pages'] / seen['polls']:.1f}, pages of 500)")
        print(f"    API requests per poll    median {statistics.median(quiet):.0f}, max {max(quiet)} "
              f"(list pages + the creates of that poll)")
        print(f"    completion -> next stage median {statistics.median(delays):.2f} s "
              f"({statistics.median(delays) / args.poll:.2f} polls), p90 {delays[int(len(delays) * 0.9)]:.2f} s, "
              f"max {delays[-1] / args.poll:.2f} polls")
        print(f"    one poll: toolbox {ours * 1000:.0f} ms (one list), baseline {theirs * 1000:.0f} ms "
              f"({cells} GETs); ratio {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
