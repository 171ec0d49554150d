#!/usr/bin/env python3
"""Benchmark: `make report` on a 10,000-cell grid whose cells all left metrics.json and exit_status (budget: 2 s).

Times the whole command (read the configs, expand the grid, read 10,000 results folders, write build/report.html)
and, apart, building the page from rows already read. The baseline, measured in the same run, is
`make results format=csv` on the same cells: the same reading with the cheapest output there is.
Usage: python bench/bench_report.py [--cells 10000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import launch  # noqa: E402
from kube import config, grid, report, results  # noqa: E402

BUDGET_SECONDS = 2.0


def project(root: Path, cells: int) -> int:
    """A grid of about `cells` cells (lr x seed over two models and datasets), every cell with its results."""
    side = max(1, int(math.sqrt(cells / 4)))
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n")
    lrs = ", ".join(f"{(i + 1) / 10000:g}" for i in range(side))
    seeds = ", ".join(str(i) for i in range(side))
    (root / "config" / "launch.yaml").write_text(
        "model:\n  mlp: {command: python train.py <lr> <seed>}\n  cnn: {command: python train.py <lr> <seed>}\n"
        f"dataset:\n  small: {{hparam: {{lr: [{lrs}], seed: [{seeds}]}}}}\n"
        f"  large: {{hparam: {{lr: [{lrs}], seed: [{seeds}]}}}}\n")
    runs = grid.build_runs(config.load(root))
    for i, run in enumerate(runs):
        target = results.folder(run)
        target.mkdir(parents=True)
        (target / results.EXIT_FILE).write_text("0\n" if i % 7 else "1\n")
        if i % 11:
            (target / results.METRICS_FILE).write_text(json.dumps({"val_loss": 1 / (i + 1), "acc": (i % 100) / 100,
                                                                   "epochs": i % 30}))
    return len(runs)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert launch.main(argv) == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        n = project(root, args.cells)
        base = ["--root", str(root)]
        rows, _ = results.collect(grid.build_runs(config.load(root)))
        whole = [timed(["report", *base]) for _ in range(args.repeat)]
        metric = [timed(["report", "--metric", "val_loss", *base]) for _ in range(args.repeat)]
        csv = [timed(["results", "--format", "csv", *base]) for _ in range(args.repeat)]
        page = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            text = report.build(rows, metric="val_loss", title="bench")
            page.append(time.perf_counter() - start)
        size = (root / "build" / report.REPORT_FILE).stat().st_size
    median = statistics.median
    print(f"{n} cells, median of {args.repeat} runs")
    print(f"  make report                  {median(whole):6.3f} s  (budget {BUDGET_SECONDS:g} s, "
          f"{'within' if median(whole) < BUDGET_SECONDS else 'OVER'}); page {size / 1e6:.1f} MB")
    print(f"  make report metric=val_loss  {median(metric):6.3f} s")
    print(f"  building the page alone      {median(page):6.3f} s  ({len(text) / 1e6:.1f} MB of HTML)")
    print(f"  baseline: make results format=csv  {median(csv):6.3f} s  "
          f"(report / baseline: {median(whole) / median(csv):.2f}x)")


if __name__ == "__main__":
    main()
