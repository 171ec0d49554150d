#!/usr/bin/env python3
"""Benchmark: whole-process `launch.py dryrun` on 1,000 and 10,000 cells, and `launch.py job` to its first create.

Baseline, measured in the same run: the approach this toolbox used before (each Job rendered by the template,
parsed back into a dict, then dumped twice with PyYAML's pure-Python emitter: stdout and build/), as a process of
its own on the same project. Prints medians of --repeat runs, peak memory (max RSS) and the ratio.
Targets on a 2-core machine: 1,000 Jobs < 0.25 s, 10,000 Jobs < 2 s and < 300 MB; first create < 2 s for 10,000.
Usage: python bench/bench_render.py [--repeat 3] [--sizes 1000 10000]
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

BASELINE = r"""
import sys, re, yaml
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from kube import config, grid, operations
root = Path(sys.argv[2])
cfg = config.load(root)
rendered = operations.render_grid(grid.build_runs(cfg), cfg.project)

class Dumper(yaml.SafeDumper):
    pass

Dumper.add_representer(str, lambda d, t: d.represent_scalar("tag:yaml.org,2002:str", t,
                       style="|" if "\n" in t and not re.search(r" \n| $", t) else None))
docs = [yaml.load(job.text, Loader=yaml.CSafeLoader) for job in rendered.jobs]
dump = lambda d: yaml.dump(d, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120)
sys.stdout.write("---\n".join(dump(d) for d in docs))
target = root / "build" / "baseline"
target.mkdir(parents=True, exist_ok=True)
for d in docs:
    (target / f"job-{d['metadata']['name']}.yaml").write_text(dump(d))
"""


def make_project(root: Path, cells: int) -> None:
    """One model, two hparam axes whose product is `cells` (names long enough to be truncated)."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: bench\nnamespace: lab\nuser: alice\n"
                                               "api_retry_seconds: 5\n")
    lrs = ", ".join(str(i) for i in range(cells // 10))
    (root / "config" / "launch.yaml").write_text(
        "model:\n  resnet:\n    command: '[](make download file=data/;) python train.py --lr <lr> --seed <seed>'\n"
        f"    hparam: {{lr: [{lrs}], seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}\n"
        "dataset: {cifar: {}}\n")


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak MB) of one whole process, stdout discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def dryrun_scenario(cells: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, cells)
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "toolbox": []}
        for _ in range(repeat):
            runs["baseline"].append(timed([sys.executable, "-c", BASELINE, str(ROOT), str(root)], root))
            runs["toolbox"].append(timed([sys.executable, str(ROOT / "launch.py"), "dryrun"], root))
    med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in runs.items()}
    print(f"dryrun of {cells:,} Jobs, whole process, median of {repeat}:")
    for label in ("baseline", "toolbox"):
        print(f"  {label:8s}: {med[label][0]:6.3f} s  {med[label][0] / cells * 1e6:6.0f} us/Job  "
              f"peak {med[label][1]:5.0f} MB")
    print(f"  ratio baseline/toolbox: {med['baseline'][0] / med['toolbox'][0]:.1f}x")


def first_create(cells: int, repeat: int) -> None:
    """Time from starting `launch.py job` to the first POST the test API server sees (then stop it)."""
    url, stop = start_server()
    control = Control(url)
    samples = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "p"
            make_project(root, cells)
            env = {**os.environ, "KUBECONFIG": str(write_kubeconfig(Path(tmp) / "kubeconfig", url))}
            for _ in range(repeat):
                control.reset()
                start = time.perf_counter()
                proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "job"], cwd=root, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while not any(r["method"] == "POST" for r in control.requests()):
                    if proc.poll() is not None:
                        raise SystemExit("launch.py job ended before any create")
                    time.sleep(0.01)
                samples.append(time.perf_counter() - start)
                proc.kill()
                proc.wait()
    finally:
        stop()
    print(f"make job with {cells:,} new cells: first create after {statistics.median(samples):.2f} s "
          f"(median of {repeat}; target < 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    for cells in args.sizes:
        dryrun_scenario(cells, args.repeat)
    first_create(max(args.sizes), args.repeat)


if __name__ == "__main__":
    main()
