"""Results of cluster runs: the lines a job runs after its command upload `results/<cell>/` (keys mirror the project
path), and `make results` on another machine fetches just those small files from a real S3 server."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from kube import config, grid, operations
from tests.helpers import KUBE, ROOT, launch, make_project

GRID = """\
model:
  m:
    command: 'python -c "import json, os; json.dump({\\"val_loss\\": 1.0 / <lr>}, open(os.environ[\\"RESULTS_DIR\\"] + \\"/metrics.json\\", \\"w\\"))"'
    hparam: {lr: [1, 4]}
"""


def test_cluster_results_go_through_the_bucket_to_make_results(tmp_path, s3):
    pod_side = make_project(tmp_path / "pod", GRID, kube=KUBE + "conda_home: /nowhere\ncode: image\n")
    (pod_side / "src").mkdir()
    (pod_side / "src" / "toolbox").symlink_to(ROOT)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    runs = grid.build_runs(config.load(pod_side))
    for run in runs:                                     # each "pod": the Job's own command, in the checkout
        script = operations.render_job(run).manifest["spec"]["template"]["spec"]["containers"][0]["command"][2]
        done = subprocess.run(["bash", "-c", script], cwd=pod_side, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    keys = sorted(s3.keys())
    assert keys == sorted(f"results/{r.name}/{f}" for r in runs for f in ("exit_status", "metrics.json"))
    laptop = make_project(tmp_path / "laptop", GRID)                 # another machine: nothing local
    result = launch(laptop, "results", "--format", "csv", env=env)
    assert result.returncode == 0, result.stderr
    assert "4 result files of cluster runs fetched from the bucket" in result.stderr
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert {n: float(r["val_loss"]) for n, r in rows.items()} == {runs[0].name: 1.0, runs[1].name: 0.25}
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    again = launch(laptop, "results", "--format", "csv", env=env)     # now local: nothing fetched twice
    assert "fetched" not in again.stderr and again.stdout == result.stdout
