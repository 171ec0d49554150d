#!/usr/bin/env python3
"""Benchmark: expand, process and name a 10,000-combination grid (target: under 1 s on 2 cores).

Baseline measured in the same run: expansion alone (cartesian product of the hparam lists), so the ratio
shows what config merging, command processing and naming cost on top of the bare product.
Usage: python bench/bench_grid.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kube import config, grid  # noqa: E402

LAUNCH = """\
model:
  a-really-long-model-name-that-forces-every-job-name-to-be-truncated:
    command: >-
      [](make download file=data/;) python train.py --lr <lr> --wd <wd> --data <_fn> ##a comment##
    hparam:
      lr: [{lrs}]
      wd: [{wds}]
dataset:
  cifar: {{hparam: {{_fn: data/cifar}}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config").mkdir()
        (root / "config" / "kube.yaml").write_text("project_name: example\nnamespace: lab\nuser: alice\n")
        lrs = [i / 10_000 for i in range(100)]
        wds = list(range(100))
        (root / "config" / "launch.yaml").write_text(LAUNCH.format(lrs=", ".join(map(str, lrs)),
                                                                   wds=", ".join(map(str, wds))))
        full, base = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            runs = grid.build_runs(config.load(root))
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare = [dict(lr=a, wd=b) for a, b in itertools.product(lrs, wds)]
            base.append(time.perf_counter() - start)
        assert len(runs) == len(bare) == 10_000 and len({r.name for r in runs}) == 10_000
    med, med_base = statistics.median(full), statistics.median(base)
    print(f"grid of {len(runs)} combinations, {args.repeat} repeats")
    print(f"  load + expand + commands + names: median {med * 1000:.0f} ms  (target < 1000 ms: "
          f"{'met' if med < 1 else 'MISSED'})")
    print(f"  baseline bare cartesian product:  median {med_base * 1000:.1f} ms  (ratio {med / med_base:.0f}x)")
    print(f"  per combination: {med / len(runs) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
