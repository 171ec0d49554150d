"""Cells on several nodes against the test API server: make job, status, logs, delete and only=failed, with
Indexed Jobs and their Services, and with PyTorchJobs where the cluster serves them; kubectl reads back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, names, run
from tests.kube_fixtures import Control, Kubectl
from tests.manifest_checks import validate_pytorchjob

THREE = """\
model:
  train:
    command: python train.py --seed <seed>
    nodes: 3
    hparam: {seed: [1, 2]}
"""
PYTORCH = THREE.replace("nodes: 3", "nodes: 3\n    engine: pytorchjob")


@pytest.fixture
def grid3(project: Path) -> Path:
    (project / "config" / "launch.yaml").write_text(THREE)
    return project


def calls(kube: Control) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in kube.requests()]


def cells(root: Path) -> list[dict]:
    code, out, err = run(root, "status", "--json")
    assert code == 0, err
    return json.loads(out)["cells"]


def test_make_job_creates_a_job_and_its_service_per_cell(grid3: Path, kube: Control, kubectl: Kubectl):
    code, out, err = run(grid3, "job")
    assert code == 0, err
    jobs = {j["metadata"]["name"]: j for j in kube.objects("jobs")}
    assert len(jobs) == 2 and all(f"job.batch/{name} created" in out.splitlines() for name in jobs)
    made = calls(kube)
    per_cell = [("POST", "/apis/batch/v1/namespaces/lab/jobs"), ("POST", "/api/v1/namespaces/lab/services")]
    [secret] = names(kube, "secrets")
    marked = ("PATCH", f"/api/v1/namespaces/lab/secrets/{secret}")      # the .env Secret, marked used afterwards
    assert made[:3] == [("GET", "/apis/batch/v1/namespaces/lab/jobs"), ("GET", "/version"),
                        ("POST", "/api/v1/namespaces/lab/secrets")] and made[-1] == marked
    assert sorted(made[3:-1]) == sorted(per_cell * 2)
    assert len(made) <= (3 + 2 + 1) * len(jobs)
    assert out.splitlines()[-1] == "2 jobs: 2 created, 0 failed (8 API calls)"
    found = kubectl.json("jobs,services", "-l", "user=my-user,project=example")["items"]
    services = {s["metadata"]["name"]: s for s in found if s["kind"] == "Service"}
    assert sorted(services) == sorted(jobs)
    for name, job in jobs.items():
        service = services[name]
        assert service["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                            "uid": job["metadata"]["uid"]}]
        assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
        assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name,
                                               "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}
        assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
        assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
        assert job["spec"]["template"]["spec"]["subdomain"] == name
    table = kubectl("get", "services", "-l", "user=my-user")
    assert all(name in table for name in jobs) and "None" in table
    kube.clear_requests()
    code, out, _ = run(grid3, "job")                       # nothing to do: one list, no version, no Service
    assert code == 0 and "2 unchanged" in out and calls(kube) == [("GET", "/apis/batch/v1/namespaces/lab/jobs")]


def test_an_older_server_gets_no_success_policy(grid3: Path, kube: Control):
    kube.server_version(32)
    code, out, err = run(grid3, "job")
    assert code == 0, err
    assert all("successPolicy" not in j["spec"] for j in kube.objects("jobs"))
    assert all(j["spec"]["completionMode"] == "Indexed" for j in kube.objects("jobs"))
    code, out, _ = run(grid3, "dryrun")
    assert out.count("# successPolicy (the cell succeeds when node 0 does) needs Kubernetes 1.33 or later") == 2


def indexed_pod(job: dict, index: int, phase: str, ready: bool = False, state: dict | None = None,
                conditions: tuple = ()) -> dict:
    name = job["metadata"]["name"]
    key = "batch.kubernetes.io/job-completion-index"
    status: dict = {"phase": phase, "conditions": [*conditions, *([{"type": "Ready", "status": "True"}] if ready else [])]}
    if state:
        status["containerStatuses"] = [{"name": "main", "state": state}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{index}-abcde", "namespace": "lab",
                         "labels": {**job["metadata"]["labels"], "job-name": name, key: str(index)},
                         "annotations": {key: str(index)},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                              "uid": job["metadata"]["uid"]}]},
            "spec": {"nodeName": f"node-{index}", "hostname": f"{name}-{index}", "subdomain": name,
                     "containers": [{"name": "main", "image": "x"}]},
            "status": status}


def test_status_shows_nodes_ready_and_a_failed_node_fails_the_cell(grid3: Path, kube: Control):
    run(grid3, "job")
    first, second = sorted(kube.objects("jobs"), key=lambda j: j["metadata"]["name"])
    first["status"] = {"active": 3, "ready": 2}
    kube.seed(first)
    kube.seed(indexed_pod(first, 0, "Running", ready=True))
    kube.seed(indexed_pod(first, 1, "Running", ready=True))
    kube.seed(indexed_pod(first, 2, "Pending", conditions=({
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/9 nodes are available: 9 Insufficient nvidia.com/gpu."},)))
    second["status"] = {"failed": 1, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"},
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
         "message": "Container main for pod lab/x-1 failed with exit code 3 matching FailJob rule at index 1"}]}
    kube.seed(second)
    kube.seed(indexed_pod(second, 0, "Failed", state={"terminated": {"exitCode": 137, "reason": "Error"}}))
    kube.seed(indexed_pod(second, 1, "Failed", state={"terminated": {"exitCode": 3, "reason": "Error"}}))
    kube.seed(indexed_pod(second, 2, "Failed", state={"terminated": {"exitCode": 143, "reason": "Error"}}))
    by_name = {c["name"]: c for c in cells(grid3)}
    waiting, failed = by_name[first["metadata"]["name"]], by_name[second["metadata"]["name"]]
    assert waiting["state"] == "pending"
    assert waiting["reason"] == "nodes 2/3 ready; Unschedulable: insufficient nvidia.com/gpu"
    assert (failed["state"], failed["reason"]) == ("failed", "node 1: exit code 3")
    code, out, _ = run(grid3, "status")
    assert "nodes 2/3 ready" in out and "2 cells: 1 pending, 1 failed" in out
    kube.seed(indexed_pod(first, 2, "Running", ready=True))
    assert cells(grid3)[0]["reason"] == "nodes 3/3 ready" and cells(grid3)[0]["state"] == "running"


def test_one_failed_node_names_itself(grid3: Path, kube: Control):
    run(grid3, "job")
    job = kube.objects("jobs")[0]
    job["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}
    kube.seed(job)
    kube.seed(indexed_pod(job, 0, "Running", ready=True))
    kube.seed(indexed_pod(job, 2, "Failed", state={"terminated": {"exitCode": 3, "reason": "Error"}}))
    cell = next(c for c in cells(grid3) if c["name"] == job["metadata"]["name"])
    assert (cell["state"], cell["reason"]) == ("failed", "node 2: exit code 3")


def test_logs_of_one_node(grid3: Path, kube: Control):
    kube.controller(True)                                     # one pod per index, as the Job controller makes them
    run(grid3, "job")
    job = kube.objects("jobs")[0]
    name = job["metadata"]["name"]
    pods = {p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]: p["metadata"]["name"]
            for p in kube.objects("pods") if p["metadata"]["labels"].get("job-name") == name}
    assert sorted(pods) == ["0", "1", "2"]
    for index, pod in pods.items():
        kube.set_log("lab", pod, f"log of node {index}\n")
    assert run(grid3, "logs", "--name", name) == (0, "log of node 0\n", "")
    assert run(grid3, "logs", "--name", name, "--node", "2") == (0, "log of node 2\n", "")
    code, _, err = run(grid3, "logs", "--name", name, "--node", "3")
    assert code == 2 and err == f"error: node=3: cell '{name}' runs on 3 nodes; expected node=0..2\n"


def test_make_logs_takes_node(grid3: Path, kube: Control):
    kube.controller(True)
    run(grid3, "job")
    name = kube.objects("jobs")[0]["metadata"]["name"]
    pod = next(p["metadata"]["name"] for p in kube.objects("pods")
               if p["metadata"]["name"].startswith(f"{name}-1-"))
    kube.set_log("lab", pod, "node one here\n")
    for link in ("Makefile", "launch.py"):
        (grid3 / link).symlink_to(ROOT / link)
    result = subprocess.run(["make", "--no-print-directory", "logs", f"name={name}", "node=1",
                             f"PYTHON={sys.executable}"], cwd=grid3, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "node one here\n", result.stderr


def test_a_failed_cell_is_replaced_with_a_new_service(grid3: Path, kube: Control):
    run(grid3, "job")
    job = kube.objects("jobs")[0]
    job["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}
    kube.seed(job)
    code, out, err = run(grid3, "job", "--only", "failed")
    assert code == 0 and "1 replaced" in out, err
    new = next(j for j in kube.objects("jobs") if j["metadata"]["name"] == job["metadata"]["name"])
    service = next(s for s in kube.objects("services") if s["metadata"]["name"] == job["metadata"]["name"])
    assert new["metadata"]["uid"] != job["metadata"]["uid"]
    assert [o["uid"] for o in service["metadata"]["ownerReferences"]] == [new["metadata"]["uid"]]
    assert len(kube.objects("services")) == 2


def test_make_delete_leaves_nothing(grid3: Path, kube: Control, kubectl: Kubectl):
    kube.controller(True)
    run(grid3, "job")
    assert len(kube.objects("pods")) == 6 and len(kube.objects("services")) == 2
    orphaned = kube.objects("jobs")[0]["metadata"]["name"]
    kubectl("delete", "job", orphaned, "--cascade=orphan")          # its Service stays, owned by nothing
    service = next(s for s in kube.objects("services") if s["metadata"]["name"] == orphaned)
    assert "ownerReferences" not in service["metadata"]
    code, out, err = run(grid3, "delete", "--yes")
    assert code == 0, err
    assert f"service/{orphaned} deleted" in out.splitlines()
    for plural in ("jobs", "services", "secrets", "configmaps"):
        assert kube.objects(plural) == [], plural
    assert [p for p in kube.objects("pods") if p["metadata"].get("ownerReferences")] == []


# --- engine: pytorchjob ------------------------------------------------------------------------------------------

@pytest.fixture
def torch2(project: Path) -> Path:
    (project / "config" / "launch.yaml").write_text(PYTORCH)
    return project


def test_pytorchjob_without_the_crd_is_refused_with_nothing_created(torch2: Path, kube: Control):
    code, out, err = run(torch2, "job")
    assert code == 1 and [line for line in err.splitlines() if not line.startswith("warning:")] == [
        "error: engine: pytorchjob needs the PyTorchJob API (kubeflow.org/v1 pytorchjobs), which this cluster does "
        "not serve: install the Kubeflow training operator, or use engine: job"]
    assert [m for m, _ in calls(kube)] == ["GET", "GET"]                     # the Job list, then discovery
    assert ("GET", "/apis/kubeflow.org/v1") in calls(kube)
    for plural in ("jobs", "secrets", "services"):
        assert kube.objects(plural) == []


def ptj_pod(obj: dict, kind: str, index: int, phase: str, ready: bool = False, state: dict | None = None) -> dict:
    name = obj["metadata"]["name"]
    status: dict = {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}] if ready else []}
    if state:
        status["containerStatuses"] = [{"name": "pytorch", "state": state}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{kind}-{index}", "namespace": "lab",
                         "labels": {**obj["metadata"]["labels"], "training.kubeflow.org/job-name": name,
                                    "training.kubeflow.org/replica-type": kind,
                                    "training.kubeflow.org/replica-index": str(index)},
                         "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": name,
                                              "uid": obj["metadata"]["uid"]}]},
            "spec": {"containers": [{"name": "pytorch", "image": "x"}]}, "status": status}


def test_pytorchjob_cells_through_status_logs_only_failed_and_delete(torch2: Path, kube: Control, kubectl: Kubectl):
    kube.crd("pytorchjobs")
    code, out, err = run(torch2, "job")
    assert code == 0, err
    made = kube.objects("pytorchjobs")
    assert len(made) == 2 and kube.objects("jobs") == [] and kube.objects("services") == []
    assert all(f"pytorchjob.kubeflow.org/{o['metadata']['name']} created" in out.splitlines() for o in made)
    for obj in made:
        validate_pytorchjob({k: v for k, v in obj.items() if k != "status"} |
                            {"metadata": {"name": obj["metadata"]["name"]}})
        assert obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    assert sorted(o["metadata"]["name"] for o in kubectl.json("pytorchjobs")["items"]) == \
        sorted(o["metadata"]["name"] for o in made)
    running, failed = sorted(made, key=lambda o: o["metadata"]["name"])
    kube.seed(running | {"status": {"conditions": [{"type": "Created", "status": "True"},
                                                   {"type": "Running", "status": "True"}]}})
    kube.seed(ptj_pod(running, "master", 0, "Running", ready=True))
    kube.seed(ptj_pod(running, "worker", 0, "Running", ready=True))
    kube.seed(ptj_pod(running, "worker", 1, "Pending"))
    kube.seed(failed | {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}]}})
    kube.seed(ptj_pod(failed, "worker", 0, "Failed", state={"terminated": {"exitCode": 2, "reason": "Error"}}))
    by_name = {c["name"]: c for c in cells(torch2)}
    assert (by_name[running["metadata"]["name"]]["state"], by_name[running["metadata"]["name"]]["reason"]) == \
        ("pending", "nodes 2/3 ready")
    assert (by_name[failed["metadata"]["name"]]["state"], by_name[failed["metadata"]["name"]]["reason"]) == \
        ("failed", "node 1: exit code 2")
    kube.set_log("lab", f"{running['metadata']['name']}-worker-1", "second worker\n")
    assert run(torch2, "logs", "--name", running["metadata"]["name"], "--node", "2") == (0, "second worker\n", "")
    kube.clear_requests()
    code, out, err = run(torch2, "job", "--only", "failed")
    assert code == 0 and out.splitlines()[:2] == [
        f"Job '{failed['metadata']['name']}' failed. Replacing the job.",
        f"pytorchjob.kubeflow.org/{failed['metadata']['name']} replaced"], err
    assert ("DELETE", f"/apis/kubeflow.org/v1/namespaces/lab/pytorchjobs/{failed['metadata']['name']}") in calls(kube)
    assert len(kube.objects("pytorchjobs")) == 2
    code, out, err = run(torch2, "delete", "--yes")
    assert code == 0 and out.count("pytorchjob.kubeflow.org/") == 4, out       # listed, then deleted
    for plural in ("pytorchjobs", "jobs", "services", "secrets"):
        assert kube.objects(plural) == [], plural
    assert names(kube, "pods") == []


@pytest.mark.parametrize("engine, plural, done", [
    pytest.param("job", "jobs", {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                                {"type": "Complete", "status": "True"}]}, id="indexed-job"),
    pytest.param("pytorchjob", "pytorchjobs", {"conditions": [{"type": "Succeeded", "status": "True"}]},
                 id="pytorchjob"),
])
def test_smoke_run_of_a_multi_node_cell(project: Path, kube: Control, engine: str, plural: str, done: dict):
    import threading
    import time
    (project / "config" / "launch.yaml").write_text(THREE.replace("nodes: 3", f"nodes: 3\n    engine: {engine}"))
    kube.crd("pytorchjobs")

    def succeed_soon() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = kube.objects(plural)
            if found:
                kube.seed(found[0] | {"status": done})
                return
            time.sleep(0.05)
    thread = threading.Thread(target=succeed_soon)
    thread.start()
    code, out, err = run(project, "smoke", "--poll", "0.1", "--timeout", "20")
    thread.join()
    assert code == 0 and "Smoke test succeeded" in out, out + err
    kind = "job.batch" if engine == "job" else "pytorchjob.kubeflow.org"
    assert out.splitlines()[0].startswith(f"{kind}/{kube.objects(plural)[0]['metadata']['name']} created (smoke test")
    assert len(kube.objects(plural)) == 1 and len(kube.objects("services")) == (engine == "job")
