"""kubectl, a second and independent client, against the test API server: it seeds other users' objects and reads
back what `make` created, so a toolbox that only agrees with itself (or a server only the official Python client
understands) fails here."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from tests.kube_fixtures import Control, Kubectl, kubectl_version


def other_job(name: str, user: str = "bob") -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "labels": {"user": user, "project": "example"}},
                       "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                           {"name": "main", "image": "python:3.12-slim", "command": ["true"]}]}}}})


@pytest.fixture
def project(tmp_path: Path, kubeconfig: Path) -> Path:
    """The quick start as a user sets it up (Makefile and launch.py linked in), as user alice in namespace lab."""
    root = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    kube_yaml = root / "config" / "kube.yaml"
    kube_yaml.write_text(kube_yaml.read_text().replace("my-namespace", "lab").replace("my-user", "alice"))
    (root / ".env").write_text("S3_BUCKET_NAME=example\nAWS_SECRET_ACCESS_KEY=hush\n")
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)
    return root


def make(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`make TARGET` in the project, with this interpreter (KUBECONFIG comes from the kubeconfig fixture)."""
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def made(root: Path, *args: str) -> str:
    result = make(root, *args)
    assert result.returncode == 0, f"make {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def job_lists(kube: Control) -> list[dict]:
    """The query of each request that listed the Jobs of namespace lab (one per page)."""
    return [r["query"] for r in kube.requests()
            if r["method"] == "GET" and r["path"] == "/apis/batch/v1/namespaces/lab/jobs"]


def test_kubectl_uses_aggregated_discovery(kubectl: Kubectl, kube: Control):
    rows = {line.split()[0]: line.split()[1:] for line in kubectl("api-resources", "--no-headers").splitlines()}
    assert rows["jobs"] == ["batch/v1", "true", "Job"]
    assert rows["pods"] == ["po", "v1", "true", "Pod"] and rows["nodes"] == ["no", "v1", "false", "Node"]
    paths = {r["path"] for r in kube.requests()}
    if kubectl_version() >= (1, 27):         # older kubectl only knows the per-group documents
        assert "/api/v1" not in paths and "/apis/batch/v1" not in paths


def test_kubectl_falls_back_to_legacy_discovery(kubectl: Kubectl, kube: Control):
    kube.aggregated_discovery(False)
    assert kubectl("create", "-f", "-", input=other_job("bob-job")) == "job.batch/bob-job created\n"
    assert kubectl("get", "jobs", "-o", "name") == "job.batch/bob-job\n"
    assert {"/api", "/apis", "/api/v1", "/apis/batch/v1"} <= {r["path"] for r in kube.requests()}


def test_kubectl_get_delete_logs_and_typed_create(kubectl: Kubectl, kube: Control):
    """The everyday commands, including `create configmap`, which kubectl sends as protobuf."""
    kube.controller(True)
    kubectl("create", "-f", "-", input=other_job("bob-job"))
    table = kubectl("get", "jobs").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["bob-job", "Running", "0/1"]
    [pod] = kubectl("get", "pods", "-l", "job-name=bob-job", "-o", "name").split()
    kube.set_log("lab", pod.removeprefix("pod/"), "hello from bob\n")
    assert kubectl("logs", "job/bob-job") == "hello from bob\n"
    kubectl("create", "configmap", "bob-config", "--from-literal=lr=0.1")
    kubectl("label", "configmap", "bob-config", "user=bob")
    assert kubectl.json("configmap", "bob-config")["data"] == {"lr": "0.1"}
    assert kubectl("delete", "job", "bob-job") == 'job.batch "bob-job" deleted\n'
    assert kubectl("get", "jobs,pods", "-o", "name") == ""              # the pod went with its Job
    result = kubectl.run("get", "job", "bob-job", check=False)
    assert result.returncode == 1 and 'jobs.batch "bob-job" not found' in result.stderr


def test_make_job_output_read_back_by_kubectl(project: Path, kubectl: Kubectl, kube: Control):
    kube.controller(True)
    kubectl("create", "-f", "-", input=other_job("bob-job"))
    made(project, "job")
    names = kubectl("get", "jobs", "-l", "user=alice,project=example", "-o", "name").split()
    assert len(names) == 4 and all(n.startswith("job.batch/example-") for n in names)
    jobs = kubectl.json("jobs", "-l", "user=alice,project=example")["items"]
    assert {(j["metadata"]["labels"]["model"], j["metadata"]["labels"]["dataset"]) for j in jobs} == \
        {(m, d) for m in ("average", "median") for d in ("data1", "data2")}
    for job in jobs:
        assert any(key.startswith("kube-toolbox/") for key in job["metadata"]["annotations"])
        assert "ownerReferences" not in job["metadata"]
        [secret] = [e["secretRef"]["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["envFrom"]]
        assert kubectl.json("secret", secret)["metadata"]["labels"]["user"] == "alice"
        owners = kubectl("get", "pods", "-l", f"job-name={job['metadata']['name']}", "-o",
                         "jsonpath={.items[*].metadata.ownerReferences[0].uid}")
        assert owners == job["metadata"]["uid"]
    assert kubectl("get", "jobs", "-l", "user=bob", "-o", "name") == "job.batch/bob-job\n"


def test_job_deleted_by_kubectl_is_not_submitted_in_status(project: Path, kubectl: Kubectl, kube: Control):
    made(project, "job")
    first = kubectl("get", "jobs", "-o", "name").split()[0].removeprefix("job.batch/")
    kubectl("delete", "job", first)
    cells = {c["name"]: c["state"] for c in json.loads(made(project, "status", "json=1"))["cells"]}
    assert cells[first] == "not submitted"
    assert len(cells) == 4 and list(cells.values()).count("not submitted") == 1


def test_dryrun_output_is_accepted_by_kubectl(project: Path, kubectl: Kubectl, kube: Control):
    manifests = made(project, "dryrun")
    jobs = [d["metadata"]["name"] for d in yaml.safe_load_all(manifests) if d and d.get("kind") == "Job"]
    out = kubectl("create", "--dry-run=client", "-f", "-", "-o", "name", input=manifests)
    assert len(jobs) == 4 and out.split() == [f"job.batch/{name}" for name in jobs]
    assert kube.objects("jobs") == [] and kube.objects("secrets") == []


def test_make_job_and_status_read_lists_of_several_pages(project: Path, kubectl: Kubectl, kube: Control):
    kube.paging(2)                               # the server answers at most 2 items per page
    for i in range(3):
        kubectl("create", "-f", "-", input=other_job(f"example-bob-{i}"))
    assert "4 created" in made(project, "job")
    kube.clear_requests()
    out = made(project, "job")
    assert "0 created" in out and "4 unchanged" in out
    pages = job_lists(kube)
    assert len(pages) >= 2 and all(p.get("limit") for p in pages) and sum("continue" in p for p in pages) >= 1
    kube.clear_requests()
    report = json.loads(made(project, "status", "json=1"))
    assert len(report["cells"]) == 4 and "not submitted" not in report["totals"]
    assert len(job_lists(kube)) >= 2


def test_make_delete_leaves_other_users_objects(project: Path, kubectl: Kubectl, kube: Control):
    kube.controller(True)
    kubectl("create", "-f", "-", input=other_job("bob-job"))
    kubectl("create", "configmap", "bob-config", "--from-literal=a=b")
    kubectl("label", "configmap", "bob-config", "user=bob", "project=example")
    made(project, "job")
    made(project, "delete", "yes=1")
    left = kubectl("get", "jobs,pods,secrets,configmaps", "-o", "name").split()
    assert sorted(left) == sorted(["job.batch/bob-job", "configmap/bob-config"] +
                                  kubectl("get", "pods", "-l", "job-name=bob-job", "-o", "name").split())
