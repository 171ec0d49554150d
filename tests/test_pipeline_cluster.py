"""Pipelines on the test API server: stage Jobs chained per cell by the driver, which decides from what the cluster
shows only. A Job completes or fails when the test seeds its status, as the Job controller would."""
from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT, run, with_status
from tests.kube_fixtures import Control, Kubectl
from tests.manifest_checks import validate_manifest

# 4 cells (2 datasets x 2 seeds) of fetch -> train -> eval: CPU stages next to a GPU one.
PIPELINE = """\
project_name: example
model:
  m:
    command: python src/avg.py <_fn> --seed <seed>
    stages:
      - {name: fetch, command: 'make download file=data/', gpu_count: 0, cpu_count: 1, memory: 2}
      - {name: train, gpu_count: 1}
      - {name: eval, command: 'python src/med.py <_fn>', gpu_count: 0, file: [data/1.txt]}
dataset:
  data1: {hparam: {_fn: data/1.txt, seed: [1, 2]}}
  data2: {hparam: {_fn: data/2.txt, seed: [1, 2]}}
"""
STAGES = ("fetch", "train", "eval")
KINDS = ("jobs", "pods", "secrets", "configmaps", "serviceaccounts", "roles", "rolebindings")


@pytest.fixture
def pipeline(project: Path) -> Path:
    (project / "config" / "launch.yaml").write_text(PIPELINE)
    return project


def stage_jobs(kube: Control, stage: str) -> dict[str, dict]:
    """cell id -> its Job of that stage."""
    return {j["metadata"]["labels"]["cell"]: j for j in kube.objects("jobs")
            if j["metadata"]["labels"].get("stage") == stage}


def finish(kube: Control, job: dict, ok: bool = True) -> None:
    """What the Job controller writes when the pod of a Job ended."""
    if ok:
        kube.seed(with_status(job, succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))
    else:
        kube.seed(with_status(job, failed=1, conditions=[{"type": "Failed", "status": "True",
                                                          "reason": "BackoffLimitExceeded"}]))


def wait_for(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def driver(root: Path, *args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """`make job wait=1` (or the driver Job's command) as its own process, which a test may kill."""
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "job", *args], cwd=cwd or root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def posts(kube: Control) -> int:
    return sum(r["method"] == "POST" and r["path"] == "/apis/batch/v1/namespaces/lab/jobs" for r in kube.requests())


def test_the_driver_chains_each_cell_and_can_be_killed_and_started_again(pipeline, kube):
    code, out, _ = run(pipeline, "job")
    assert code == 0 and "4 cells (12 stage Jobs): 4 created, 0 failed" in out
    fetch = stage_jobs(kube, "fetch")
    assert len(kube.objects("jobs")) == 4 and len(fetch) == 4
    a, b, c, d = sorted(fetch)
    for cell in (a, b):
        finish(kube, fetch[cell])
    proc = driver(pipeline, "--wait", "--poll", "0.1")
    try:
        trains = wait_for(lambda: stage_jobs(kube, "train") if len(stage_jobs(kube, "train")) >= 2 else None)
        assert sorted(trains) == [a, b]                      # exactly the two cells whose fetch completed
        finish(kube, trains[a], ok=False)
        finish(kube, trains[b])
        evals = wait_for(lambda: stage_jobs(kube, "eval"))
        time.sleep(0.5)                                      # a few more polls: nothing else may come
        assert sorted(evals) == [b] and sorted(stage_jobs(kube, "train")) == [a, b]
        assert stage_jobs(kube, "train")[a]["metadata"]["uid"] == trains[a]["metadata"]["uid"]   # not retried
        assert proc.poll() is None                          # c and d still wait for their fetch
    finally:
        proc.send_signal(signal.SIGKILL)                    # killed mid-way
        proc.wait()
    finish(kube, fetch[c])
    proc = driver(pipeline, "--wait", "--poll", "0.1")
    try:
        wait_for(lambda: c in stage_jobs(kube, "train"))
        finish(kube, stage_jobs(kube, "eval")[b])
        for job in (stage_jobs(kube, "train")[c], fetch[d]):
            finish(kube, job)
        wait_for(lambda: len(stage_jobs(kube, "eval")) == 2 and len(stage_jobs(kube, "train")) == 4)
        for job in (stage_jobs(kube, "eval")[c], stage_jobs(kube, "train")[d]):
            finish(kube, job)
        finish(kube, wait_for(lambda: stage_jobs(kube, "eval").get(d)))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err                        # a cell stopped at a failed stage
    assert f"stopped: stage train 2/3 failed (BackoffLimitExceeded)" in out
    assert "Followed 4 cells: 3 completed, 1 stopped: " in out and "(train)" in out
    jobs = kube.objects("jobs")
    assert len(jobs) == 4 + 4 + 3 and posts(kube) == len(jobs)       # each stage Job created once, no second try
    code, out, _ = run(pipeline, "job")                     # a plain resubmission leaves the failure alone
    assert code == 0 and "4 cells (12 stage Jobs): 0 created, 4 unchanged" in out
    assert "(stage train 2/3) failed. Left alone; resume the cell at this stage with only=failed." in out
    code, out, _ = run(pipeline, "job", "--only", "failed")
    assert code == 0 and out.count("Replacing the job.") == 1 and "1 cell (3 stage Jobs): 0 created, 1 replaced" in out
    train = stage_jobs(kube, "train")[a]
    assert train["metadata"]["uid"] != trains[a]["metadata"]["uid"] and "status" not in train or not train["status"]
    assert stage_jobs(kube, "fetch")[a]["metadata"]["uid"] == fetch[a]["metadata"]["uid"]   # completed: kept
    assert len(kube.objects("jobs")) == 11
    code, out, _ = run(pipeline, "delete", "--yes")
    assert code == 0 and {k: kube.objects(k) for k in KINDS} == {k: [] for k in KINDS}


def test_status_shows_each_cells_stage_and_logs_reach_a_stage(pipeline, kube):
    run(pipeline, "job")
    fetch = stage_jobs(kube, "fetch")
    a, b, c, _ = sorted(fetch)
    finish(kube, fetch[a])
    finish(kube, fetch[b], ok=False)
    finish(kube, fetch[c])
    run(pipeline, "job")
    train = stage_jobs(kube, "train")[a]
    kube.seed(with_status(train, active=1, ready=1))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{train['metadata']['name']}-x1", "namespace": "lab",
        "labels": {**train["metadata"]["labels"], "job-name": train["metadata"]["name"]}},
        "spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}}
    kube.seed(pod)
    kube.set_log("lab", pod["metadata"]["name"], "epoch 1\n")
    kube.clear_requests()
    code, out, _ = run(pipeline, "status")
    assert code == 0 and len(kube.requests()) == 3             # jobs, pods, nodes: whatever the stages
    rows = {next(w for w in line.split() if w.startswith("example-")): line
            for line in out.splitlines() if "example-m-" in line}
    by_cell = {name.rsplit("-", 1)[1]: line for name, line in rows.items()}
    assert "train 2/3 running" in by_cell[a] and "fetch 1/3 failed" in by_cell[b]
    assert "train 2/3 pending" in by_cell[c] and "fetch 1/3 pending" in by_cell[sorted(fetch)[3]]
    assert "4 cells: 2 pending, 1 running, 1 failed" in out
    cells = json.loads(run(pipeline, "status", "--json")[1])["cells"]
    assert sorted(c["stage"] for c in cells) == ["fetch 1/3", "fetch 1/3", "train 2/3", "train 2/3"]
    cell = next(name for name in rows if name.endswith(a))
    code, out, _ = run(pipeline, "logs", "--name", cell, "--stage", "train")
    assert code == 0 and out == "epoch 1\n"
    assert run(pipeline, "logs", "--name", cell)[1] == "epoch 1\n"        # a cell's newest stage
    code, _, err = run(pipeline, "logs", "--name", cell, "--stage", "upload")
    assert code == 2 and "has no stage 'upload' (its stages: fetch, train, eval)" in err


def validate_1_33(obj: dict) -> None:
    try:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    except kubernetes_validate.ValidationError as err:
        raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {'.'.join(map(str, err.path))}: "
                             f"{err.message}") from None


def test_every_stage_is_rendered_as_a_valid_job_and_dryrun_takes_one_stage(pipeline, kube):
    code, text, _ = run(pipeline, "dryrun")
    jobs = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Job"]
    assert code == 0 and len(jobs) == 12 and kube.requests() == []
    for job in jobs:
        validate_1_33(job)
        validate_manifest(job)
    resources = {j["metadata"]["labels"]["stage"]: j["spec"]["template"]["spec"]["containers"][0]["resources"]
                 for j in jobs}
    assert resources["train"]["limits"]["nvidia.com/gpu"] == "1" and "nvidia.com/gpu" not in resources["fetch"]["limits"]
    code, text, _ = run(pipeline, "dryrun", "--stage", "eval")
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(text) if d and d["kind"] == "Job"]
    assert len(names) == 4 and all("-eval-" in n for n in names)


def test_kubectl_reads_the_stage_labels(pipeline, kube, kubectl: Kubectl):
    run(pipeline, "job")
    fetch = stage_jobs(kube, "fetch")
    cell = sorted(fetch)[0]
    finish(kube, fetch[cell])
    run(pipeline, "job")
    assert kubectl("get", "jobs", "-l", "stage=train", "-o", "name").split() == [
        f"job.batch/{stage_jobs(kube, 'train')[cell]['metadata']['name']}"]
    both = kubectl("get", "jobs", "-l", f"cell={cell}", "-o", "jsonpath={.items[*].metadata.labels.stage}")
    assert sorted(both.split()) == ["fetch", "train"]


# --- driver: cluster --------------------------------------------------------------------------------------------

def calls_of(requests: list[dict]) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of each request, as RBAC reads them."""
    out = set()
    for r in requests:
        parts = r["path"].strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        if rest[:1] == ["namespaces"]:
            rest = rest[2:]
        named = len(rest) > 1
        verb = {"GET": "get" if named else "watch" if r["query"].get("watch") else "list", "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete" if named else "deletecollection"}[r["method"]]
        out.add((group, rest[0], verb))
    return out


def test_driver_in_the_cluster_holds_only_the_verbs_it_uses_and_goes_with_make_delete(pipeline, kube, tmp_path):
    launch = pipeline / "config" / "launch.yaml"
    launch.write_text(launch.read_text() + "driver: {where: cluster, poll: 1}\n")
    code, out, err = run(pipeline, "job")
    assert code == 0, err
    [driver_job] = [j for j in kube.objects("jobs") if j["metadata"]["labels"].get("role") == "driver"]
    name = driver_job["metadata"]["name"]
    assert f"job.batch/{name} created: the driver follows these cells in the cluster" in out
    [account], [role], [binding] = (kube.objects(k) for k in ("serviceaccounts", "roles", "rolebindings"))
    for obj in (account, role, binding):
        assert obj["metadata"]["name"] == name and obj["metadata"]["labels"] == {"user": "my-user", "project": "example"}
        assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                       "uid": driver_job["metadata"]["uid"]}]
    pod = driver_job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name and binding["roleRef"]["name"] == name
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "lab"}]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"}
    for obj in (driver_job, account, role, binding):            # as rendered, against the strict 1.33 schema
        sent = {k: v for k, v in obj.items() if k != "status"}
        sent["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels",
                                                                               "annotations")}
        if sent["kind"] == "Job":
            sent["spec"] = {k: v for k, v in sent["spec"].items() if k not in ("selector",)}
            sent["spec"]["template"]["metadata"]["labels"] = driver_job["metadata"]["labels"]
        validate_1_33(sent)
    assert run(pipeline, "job")[1].count(f"job.batch/{name} unchanged") == 1       # left alone while it runs
    for job in stage_jobs(kube, "fetch").values():
        finish(kube, job)
    # The pod: the project's checkout (no .env file: its values come from the Secret) running the Job's command.
    image = tmp_path / "checkout"
    shutil.copytree(pipeline, image, ignore=shutil.ignore_patterns(".env", "build", "results"))
    env = {**os.environ, **{e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}}
    [secret] = kube.objects("secrets")
    env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    words = shlex.split(pod["containers"][0]["command"][2].strip().splitlines()[-1])
    assert words[:7] == ["python", "src/toolbox/launch.py", "job", "--wait", "--follow-only", "--poll", "1"]
    configmaps = len(kube.objects("configmaps"))
    kube.clear_requests()
    proc = driver(image, *words[3:], env=env, cwd=image)
    try:
        for stage in ("train", "eval"):
            for job in wait_for(lambda: len(stage_jobs(kube, stage)) == 4 and stage_jobs(kube, stage)).values():
                finish(kube, job)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Followed 4 cells: 4 completed, 0 stopped" in out
    used = calls_of(kube.requests())
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert used == granted == {("batch", "jobs", "list"), ("batch", "jobs", "create")}
    assert len(kube.objects("configmaps")) == configmaps           # it rendered the same files: no new object
    code, out, _ = run(pipeline, "delete", "--yes")
    assert code == 0 and f"job.batch/{name} deleted" in out
    assert {k: kube.objects(k) for k in KINDS} == {k: [] for k in KINDS}


def test_a_bad_stage_is_refused_before_any_api_call(pipeline, kube):
    launch = pipeline / "config" / "launch.yaml"
    launch.write_text(launch.read_text().replace("name: eval", "name: Eval"))
    code, out, err = run(pipeline, "job", "--wait")
    assert code == 2 and out == "" and kube.requests() == []
    assert err == ("error: config/launch.yaml: model.m.stages[2].name: expected a stage name of lowercase letters, "
                   "digits and '-' (at most 20), got 'Eval'\n")


def test_wait_follows_a_grid_without_stages_under_its_usual_names(project, kube):
    """A model without stages is one stage: `wait=1` follows its Jobs, named and labelled as always."""
    import threading

    def controller() -> None:
        jobs = wait_for(lambda: kube.objects("jobs") if len(kube.objects("jobs")) == 4 else None)
        for i, job in enumerate(sorted(jobs, key=lambda j: j["metadata"]["name"])):
            finish(kube, job, ok=i != 0)
    thread = threading.Thread(target=controller)
    thread.start()
    code, out, _ = run(project, "job", "--wait", "--poll", "0.1")
    thread.join()
    names = sorted(j["metadata"]["name"] for j in kube.objects("jobs"))
    assert code == 1 and "4 jobs" not in out and "4 cells: 4 created, 0 failed" in out
    assert f"{names[0]} stopped: its Job failed (BackoffLimitExceeded)" in out
    assert "Followed 4 cells: 3 completed, 1 stopped" in out
    from tests.helpers import job_names
    assert names == sorted(job_names(project))
    assert all("stage" not in j["metadata"]["labels"] for j in kube.objects("jobs"))


def test_overwrite_starts_a_cell_again_from_its_first_stage(pipeline, kube):
    run(pipeline, "job", "--only", "dataset=data1 seed=1")
    [(cell, fetch)] = stage_jobs(kube, "fetch").items()
    finish(kube, fetch)
    run(pipeline, "job", "--only", "dataset=data1 seed=1")
    assert list(stage_jobs(kube, "train")) == [cell]
    code, out, _ = run(pipeline, "job", "--only", "dataset=data1 seed=1", "--overwrite")
    assert code == 0 and "the cell starts again from its first stage (overwrite)" in out and "1 replaced" in out
    assert stage_jobs(kube, "train") == {} and stage_jobs(kube, "fetch")[cell]["metadata"]["uid"] != \
        fetch["metadata"]["uid"]
