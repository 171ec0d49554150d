"""make status / logs / smoke and provenance, against the test API server seeded like a real cluster."""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from kube.provenance import ANNOTATION_COMMIT, ANNOTATION_DIRTY
from tests.helpers import pod_for, run, with_status


def jobs_by_model(kube):
    return {(j["metadata"]["labels"]["model"], j["metadata"]["labels"]["dataset"]): j for j in kube.objects("jobs")}


@pytest.fixture
def seeded(project, kube):
    run(project, "job")
    jobs = jobs_by_model(kube)
    ok, pending = jobs[("average", "data1")], jobs[("median", "data1")]
    oom, running = jobs[("average", "data2")], jobs[("median", "data2")]
    kube.seed(with_status(ok, succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))
    kube.seed(pod_for(ok, "Succeeded", "node-a", {"terminated": {"exitCode": 0, "reason": "Completed"}}))
    kube.seed(with_status(pending, active=1))
    kube.seed(pod_for(pending, "Pending", conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/9 nodes are available: 9 Insufficient nvidia.com/gpu."}]))
    kube.seed(with_status(oom, failed=1, conditions=[{"type": "Failed", "status": "True",
                                                      "reason": "BackoffLimitExceeded"}]))
    kube.seed(pod_for(oom, "Failed", "node-b", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))
    kube.seed(with_status(running, active=1, ready=1))
    kube.seed(pod_for(running, "Running", "node-a", {"running": {"startedAt": "2026-11-24T10:00:00Z"}}))
    kube.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "labels": {
        "nvidia.com/gpu.product": "NVIDIA-A10"}}})
    kube.seed({"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "example-old-cell-abcdefgh", "namespace": "lab",
        "labels": {"user": "my-user", "project": "example", "model": "old", "dataset": "data1"}}, "spec": {}})
    kube.set_log("lab", f"{oom['metadata']['name']}-abcde", "".join(f"line {i}\n" for i in range(100)))
    return {"ok": ok, "pending": pending, "oom": oom, "running": running}


def test_status_table_states_reasons_and_orphans(project, kube, seeded):
    kube.clear_requests()
    code, out, _ = run(project, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "DATASET", "NAME", "STATE", "AGE", "NODE", "GPU", "REASON"]
    def row(name):
        return next(line for line in lines if name in line)
    assert "succeeded" in row(seeded["ok"]["metadata"]["name"]) and "NVIDIA-A10" in row(seeded["ok"]["metadata"]["name"])
    assert "Unschedulable: insufficient nvidia.com/gpu" in row(seeded["pending"]["metadata"]["name"])
    assert "failed" in row(seeded["oom"]["metadata"]["name"]) and "OOMKilled" in row(seeded["oom"]["metadata"]["name"])
    assert "running" in row(seeded["running"]["metadata"]["name"])
    assert "4 cells: 1 pending, 1 running, 1 succeeded, 1 failed" in out
    assert "no longer in the grid" in out and "example-old-cell-abcdefgh" in out
    assert "Failures (1):" in out and "OOMKilled" in out
    assert len(kube.requests()) == 3          # jobs, pods, nodes: no pending pod needs its events


def test_events_are_read_only_for_a_pending_pod_that_says_nothing(project, kube, seeded):
    name = seeded["pending"]["metadata"]["name"]
    pod = next(p for p in kube.objects("pods") if p["metadata"]["name"].startswith(name))
    pod["status"] = {"phase": "Pending"}
    kube.seed(pod)
    kube.seed({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "lab"},
               "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": "lab"},
               "reason": "FailedScheduling", "type": "Warning",
               "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."})
    kube.clear_requests()
    code, out, _ = run(project, "status")
    assert code == 0 and "Unschedulable: insufficient nvidia.com/gpu" in out
    events = [r for r in kube.requests() if r["path"].endswith("/events")]
    assert len(events) == 1 and pod["metadata"]["name"] in events[0]["query"]["fieldSelector"]


def test_status_json_and_constant_calls_for_a_bigger_grid(project, kube, seeded):
    code, out, _ = run(project, "status", "--json")
    data = json.loads(out)
    assert data["totals"] == {"succeeded": 1, "pending": 1, "failed": 1, "running": 1}
    assert data["api_calls"] == 3 and [c["name"] for c in data["not_in_grid"]] == ["example-old-cell-abcdefgh"]
    lf = project / "config" / "launch.yaml"
    lf.write_text(lf.read_text().replace("gpu_count: 0\n", "gpu_count: 0\n    hparam: {seed: [%s]}\n" %
                                         ", ".join(map(str, range(25))), 1))
    code, out, _ = run(project, "status", "--json")
    data = json.loads(out)
    assert len(data["cells"]) == 2 * 25 + 2 and data["api_calls"] == 3
    assert data["totals"]["not submitted"] == 50


def test_status_when_nodes_are_forbidden(project, kube, seeded):
    kube.fail("GET", "/api/v1/nodes$", 403)
    code, out, _ = run(project, "status", "--json")
    assert code == 0 and all(c["gpu"] == "" for c in json.loads(out)["cells"])


def test_logs_of_a_failed_cell_default_to_the_tail(project, kube, seeded):
    code, out, err = run(project, "logs", "--name", "model=average dataset=data2")
    assert code == 0 and "OOMKilled" in err
    assert out.splitlines() == [f"line {i}" for i in range(50, 100)]
    code, out, _ = run(project, "logs", "--name", seeded["oom"]["metadata"]["name"], "--tail", "3")
    assert out.splitlines() == ["line 97", "line 98", "line 99"]


def test_logs_selection_must_pick_one_cell(project, kube, seeded):
    code, _, err = run(project, "logs", "--name", "model=average")
    assert code == 2 and "selects 2 cells; expected exactly one" in err


def finish_later(kube, outcome, delay=0.5):
    def work():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            jobs = [j for j in kube.objects("jobs") if "-smoke-" in j["metadata"]["name"]]
            if jobs:
                job = jobs[0]
                time.sleep(delay)
                if outcome == "ok":
                    kube.seed(with_status(job, succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))
                else:
                    kube.seed(with_status(job, failed=1, conditions=[{"type": "Failed", "status": "True",
                                                                      "reason": "BackoffLimitExceeded"}]))
                    pod = pod_for(job, "Failed", "node-b", {"terminated": {"exitCode": 2, "reason": "Error"}})
                    kube.seed(pod)
                    kube.set_log("lab", pod["metadata"]["name"], "Traceback...\nValueError: bad config\n")
                return
            time.sleep(0.05)
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_smoke_success_then_grid(project, kube):
    lf = project / "config" / "launch.yaml"
    lf.write_text(lf.read_text() + "smoke: {max_steps: 10}\n")
    lf.write_text(lf.read_text().replace("python src/avg.py <fn>", "python src/avg.py <fn> --steps <max_steps>"))
    lf.write_text(lf.read_text().replace("python src/med.py <fn>", "python src/med.py <fn> --steps <max_steps>")
                  .replace("      _fn: data/1.txt", "      _fn: data/1.txt\n      max_steps: 1000"))
    thread = finish_later(kube, "ok")
    code, out, _ = run(project, "job", "--only", "dataset=data1", "--smoke", "--poll", "0.1", "--timeout", "20")
    thread.join()
    assert code == 0 and "Smoke test succeeded" in out and "2 created" in out
    smoke = [j for j in kube.objects("jobs") if "-smoke-" in j["metadata"]["name"]]
    assert len(smoke) == 1 and "max-steps-10" in smoke[0]["metadata"]["name"]
    assert "--steps 10" in smoke[0]["spec"]["template"]["spec"]["containers"][0]["command"][2]


def test_smoke_failure_stops_the_grid_and_shows_why(project, kube):
    thread = finish_later(kube, "fail")
    code, out, err = run(project, "job", "--smoke", "--poll", "0.1", "--timeout", "20")
    thread.join()
    assert code == 1 and "Smoke test failed: exit code 2" in out and "ValueError: bad config" in out
    assert "The grid was not launched." in err
    assert all("-smoke-" in j["metadata"]["name"] for j in kube.objects("jobs"))


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=root, check=True,
                   capture_output=True)


def test_provenance_annotations_dirty_warning_and_stale_cells(project, kube):
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "one")
    run(project, "job", "--only", "dataset=data1")
    job = kube.objects("jobs")[0]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert job["metadata"]["annotations"][ANNOTATION_COMMIT] == head
    assert job["metadata"]["annotations"][ANNOTATION_DIRTY] == "false"
    (project / "src" / "avg.py").write_text("print('changed')\n")
    code, out, err = run(project, "job", "--only", "dataset=data2")
    assert "uncommitted changes" in err
    git(project, "commit", "-qam", "two")
    code, out, _ = run(project, "status")
    stale = [line for line in out.splitlines() if " * " in line or line.rstrip().endswith(" *")]
    assert len(stale) == 4 and "ran code other than HEAD" in out   # old commit (data1) and dirty tree (data2)


def test_job_warns_until_the_commit_is_pushed(project, kube, tmp_path):
    code, _, err = run(project, "job", "--only", "dataset=data1 model=average")
    assert code == 0 and "not a git repository with a commit" in err
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "one")
    code, _, err = run(project, "job", "--only", "dataset=data1 model=average")
    assert code == 0 and "HEAD is on no remote branch" in err
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(project, "remote", "add", "origin", str(tmp_path / "remote.git"))
    git(project, "push", "-q", "origin", "main")
    code, _, err = run(project, "job", "--only", "dataset=data1 model=average")
    assert code == 0 and "remote branch" not in err and "git repository" not in err


def test_text_from_the_cluster_reaches_the_terminal_escaped(project, kube, seeded):
    """Any user of the namespace can create an Event: its text must not retitle or clear the victim's terminal."""
    name = seeded["pending"]["metadata"]["name"]
    pod = next(p for p in kube.objects("pods") if p["metadata"]["name"].startswith(name))
    pod["status"] = {"phase": "Pending"}
    kube.seed(pod)
    kube.seed({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "evil", "namespace": "lab"},
               "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": "lab"},
               "reason": "\x1b]0;owned\x07\x1b[2JPwned", "type": "Warning", "message": "x"})
    oom = seeded["oom"]["metadata"]["name"]
    failed = next(p for p in kube.objects("pods") if p["metadata"]["name"].startswith(oom))
    failed["spec"]["nodeName"] = "node-\x1b[31mred"
    kube.seed(failed)
    code, out, _ = run(project, "status")
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2JPwned" in out and "node-\\x1b[31mred" in out
