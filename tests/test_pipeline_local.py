"""`make local` of a pipeline: each cell's stages in order, a failed stage stops its cell only, `stage=` alone."""
from __future__ import annotations

import json
import re

from tests.helpers import launch, make_project

# The pipeline of tests/test_pipeline_cluster.py: 4 cells of fetch -> train -> eval; cell 2 fails in train.
PIPELINE = """\
model:
  m:
    command: echo "train <_n>" >> "$RESULTS_DIR/log"; [ <_n> != 2 ] || exit 4
    stages:
      - {name: fetch, command: 'echo "fetch <_n> <stage>" > "$RESULTS_DIR/log"', gpu_count: 0}
      - {name: train, gpu_count: 2}
      - {name: eval, command: 'echo "eval <_n>" >> "$RESULTS_DIR/log"; echo "METRICS {\\"n\\": <_n>}"'}
dataset:
  d1: {hparam: {_n: 1}}
  d2: {hparam: {_n: 2}}
  d3: {hparam: {_n: 3}}
  d4: {hparam: {_n: 4}}
"""


def cells(root):
    return sorted(p.name for p in (root / "results").iterdir())


def test_stages_run_in_order_per_cell_and_a_failed_stage_stops_its_cell_only(tmp_path):
    make_project(tmp_path, PIPELINE)
    result = launch(tmp_path, "local")
    assert result.returncode == 1
    order = re.findall(r"^Stage (\w+) \((\d)/3\) of (example-m-d\d)-", result.stdout, re.M)
    assert order == [("fetch", "1", "example-m-d1"), ("train", "2", "example-m-d1"), ("eval", "3", "example-m-d1"),
                     ("fetch", "1", "example-m-d2"), ("train", "2", "example-m-d2"),
                     ("fetch", "1", "example-m-d3"), ("train", "2", "example-m-d3"), ("eval", "3", "example-m-d3"),
                     ("fetch", "1", "example-m-d4"), ("train", "2", "example-m-d4"), ("eval", "3", "example-m-d4")]
    failed = next(c for c in cells(tmp_path) if "-d2-" in c)
    assert f"{failed} failed at stage train with exit status 4" in result.stdout
    assert result.stderr.strip() == f"error: 3 succeeded, 1 failed: {failed} (stage train)"
    logs = {c.split("-")[2]: (tmp_path / "results" / c / "log").read_text() for c in cells(tmp_path)}
    assert logs["d1"] == "fetch 1 fetch\ntrain 1\neval 1\n" and logs["d2"] == "fetch 2 fetch\ntrain 2\n"
    metrics = {c.split("-")[2]: json.loads((tmp_path / "results" / c / "metrics.json").read_text())
               for c in cells(tmp_path) if "-d2-" not in c}
    assert metrics == {"d1": {"n": 1}, "d3": {"n": 3}, "d4": {"n": 4}}       # a later stage keeps the folder


def test_one_stage_alone_and_the_dry_run(tmp_path):
    make_project(tmp_path, PIPELINE)
    launch(tmp_path, "local", "--only", "dataset=d1")
    result = launch(tmp_path, "local", "--stage", "eval", "--only", "dataset=d1,d2")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^Stage (\w+)", result.stdout, re.M) == ["eval", "eval"]
    assert result.stdout.rstrip().endswith("2 succeeded, 0 failed")
    d1 = next(c for c in cells(tmp_path) if "-d1-" in c)
    assert (tmp_path / "results" / d1 / "log").read_text() == "fetch 1 fetch\ntrain 1\neval 1\neval 1\n"
    dry = launch(tmp_path, "local", "--dry-run", "--only", "dataset=d1").stdout.splitlines()
    assert [line for line in dry if line.startswith("#")] == [f"# {d1}: stage {s}" for s in ("fetch", "train", "eval")]
    assert dry[1] == 'echo "fetch 1 fetch" > "$RESULTS_DIR/log"'
    result = launch(tmp_path, "local", "--stage", "upload")
    assert result.returncode == 2 and "no selected cell has a stage 'upload' (stages: eval, fetch, train)" in result.stderr
