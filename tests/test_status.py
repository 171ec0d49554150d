"""Status classification from objects shaped as a real API server reports them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kube import present, status
from kube.settings import Run
from kube.provenance import ANNOTATION_COMMIT, ANNOTATION_DIRTY

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name, conditions=(), active=0, succeeded=0, commit="abc123", dirty=False, model="m", dataset="d"):
    return {"metadata": {"name": name, "creationTimestamp": ts(30), "labels": {"model": model, "dataset": dataset},
                         "annotations": {ANNOTATION_COMMIT: commit, ANNOTATION_DIRTY: str(dirty).lower()}},
            "status": {"active": active, "succeeded": succeeded,
                       "conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]}}


def pod(job_name, phase, node="", container=None, conditions=(), created=20):
    st = {"phase": phase, "conditions": list(conditions)}
    if container:
        st["containerStatuses"] = [{"name": "main", "state": container}]
    return {"metadata": {"name": f"{job_name}-x1", "creationTimestamp": ts(created), "labels": {"job-name": job_name}},
            "spec": {"nodeName": node} if node else {}, "status": st}


def run(name):
    return Run(index=0, name=name, model="m", dataset="d", hparams={}, labels={})


UNSCHED = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
           "message": "0/12 nodes are available: 3 Insufficient nvidia.com/gpu, 9 node(s) didn't match "
                      "Pod's node affinity/selector."}
CASES = [
    ("not-submitted", None, [], [], "not submitted", ""),
    ("succeeded", job("j", [("Complete", "")], succeeded=1), [pod("j", "Succeeded", "n1")], [], "succeeded", ""),
    ("running", job("j", active=1), [pod("j", "Running", "n1", {"running": {}})], [], "running", ""),
    ("unschedulable-gpu", job("j", active=1), [pod("j", "Pending", conditions=[UNSCHED])], [], "pending",
     "Unschedulable: insufficient nvidia.com/gpu"),
    ("affinity", job("j", active=1), [pod("j", "Pending", conditions=[{
        **UNSCHED, "message": "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."}])],
     [], "pending", "Unschedulable: affinity matches no node"),
    ("image-pull", job("j", active=1), [pod("j", "Pending", "n1", {"waiting": {"reason": "ImagePullBackOff"}})],
     [], "pending", "ImagePullBackOff"),
    ("oom", job("j", [("Failed", "BackoffLimitExceeded")]),
     [pod("j", "Failed", "n2", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})], [], "failed", "OOMKilled"),
    ("exit-code", job("j", [("Failed", "BackoffLimitExceeded")]),
     [pod("j", "Failed", "n2", {"terminated": {"exitCode": 3, "reason": "Error"}})], [], "failed", "exit code 3"),
    ("failed-no-pod", job("j", [("Failed", "DeadlineExceeded")]), [], [], "failed", "DeadlineExceeded"),
    ("event-only", job("j", active=1), [pod("j", "Pending")],
     [{"involvedObject": {"name": "j-x1"}, "reason": "FailedScheduling", "type": "Warning",
       "message": "0/3 nodes are available: 3 Insufficient memory."}], "pending", "Unschedulable: insufficient memory"),
]


@pytest.mark.parametrize("j, pods, events, state, reason", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_cell_state_and_reason(j, pods, events, state, reason):
    grid, orphans = status.cells([run("j")], [j] if j else [], pods, events, {"n1": "NVIDIA-A10"}, "abc123", NOW)
    assert (grid[0].state, grid[0].reason) == (state, reason)
    assert orphans == []


def test_node_gpu_age_and_orphans():
    grid, orphans = status.cells([run("j")], [job("j", active=1), job("old", [("Complete", "")], model="x")],
                                 [pod("j", "Running", "n1", {"running": {}})], [], {"n1": "NVIDIA-A10"}, "abc123", NOW)
    assert (grid[0].node, grid[0].gpu, present.age_text(grid[0].age)) == ("n1", "NVIDIA-A10", "30m")
    assert [o.name for o in orphans] == ["old"] and orphans[0].model == "x"


def test_stale_when_commit_differs_or_dirty():
    jobs = [job("a", active=1, commit="old"), job("b", active=1, commit="new", dirty=True), job("c", active=1, commit="new")]
    grid, _ = status.cells([run("a"), run("b"), run("c")], jobs, [], [], {}, "new", NOW)
    assert [c.stale for c in grid] == [True, True, False]
    assert "(marked *)" in present.totals(grid)
    assert "running *" in present.status_table(grid)


def test_table_groups_and_totals():
    rows = [status.Cell("n1", "m1", "d1", "running"), status.Cell("n2", "m1", "d1", "failed", reason="OOMKilled"),
            status.Cell("n3", "m2", "d1", "not submitted")]
    text = present.status_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["MODEL", "DATASET", "NAME", "STATE", "AGE", "NODE", "GPU", "REASON"]
    assert lines[1].startswith("m1") and lines[2].startswith(" ") and lines[3].startswith("m2")
    assert present.totals(rows) == "3 cells: 1 not submitted, 1 running, 1 failed"


def test_failure_summary_suggests_blacklisting_a_bad_node():
    rows = [status.Cell(f"n{i}", "m", "d", "failed", node="bad-node" if i < 3 else "ok", reason="exit code 1")
            for i in range(4)]
    text = present.failure_summary(rows)
    assert "   4  exit code 1" in text
    assert "hostname_blacklist: [bad-node]" in text
    assert present.failure_summary([status.Cell("a", "m", "d", "running")]) == ""


def test_on_a_terminal_the_reason_is_cut_to_fit_and_a_pipe_gets_it_whole():
    long = "Unschedulable: insufficient nvidia.com/gpu, nvidia.com/a100, memory, cpu, ephemeral-storage, pods"
    rows = [status.Cell("example-m-d-lr-0-001-abcdefgh", "m", "d", "pending", 30.0, reason=long)]
    wide = present.status_table(rows)
    assert long in wide
    fitted = present.status_table(rows, width=100)
    assert all(len(line) <= 100 for line in fitted.splitlines())
    assert fitted.splitlines()[1].endswith("…") and "example-m-d-lr-0-001-abcdefgh" in fitted   # names never cut
