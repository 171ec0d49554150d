"""A cluster shared by many: time limits, arrays with a cap, preemption, placement, secrets, scratch, sidecar, packing."""
from __future__ import annotations

import base64
import gzip
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from kube import config, grid, operations, workloads
from kube.errors import ConfigError
from tests.helpers import ROOT, launch, make_project
from tests.manifest_checks import validate_manifest
from tests.helpers import pod_for, run, with_status

GOLDEN = Path(__file__).parent / "golden"
KUBE = {"project_name": "example", "namespace": "lab", "user": "alice"}
SIX = {"model": {"m": {"command": "python train.py --seed <seed>", "hparam": {"seed": [0, 1, 2, 3, 4, 5]}}}}


def rendered(launch_data: dict, root: Path = ROOT) -> tuple[list, operations.RenderedGrid]:
    cfg = config.from_mappings(KUBE, launch_data, {}, root)
    runs = grid.build_runs(cfg)
    return runs, operations.render_grid(runs, cfg.project)


def pod_of(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def validate_both(obj: dict) -> None:
    """Valid for the oldest and the newest Kubernetes the toolbox supports."""
    import kubernetes_validate
    kubernetes_validate.validate(obj, "1.33.0", strict=True)
    validate_manifest(obj)


SETTINGS = {
    "max-runtime": ({"max_runtime": "90m"}, lambda j: j["spec"]["activeDeadlineSeconds"] == 5400),
    "max-runtime-seconds": ({"max_runtime": 3600}, lambda j: j["spec"]["activeDeadlineSeconds"] == 3600),
    "preemption": ({}, lambda j: j["spec"]["podFailurePolicy"]["rules"][0] == {
        "action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        and j["spec"]["podFailurePolicy"]["rules"][1]["action"] == "FailJob"),
    "no-fail-fast": ({"fail_fast": False}, lambda j: len(j["spec"]["podFailurePolicy"]["rules"]) == 1),
    "priority": ({"priority_class": "low"}, lambda j: pod_of(j)["priorityClassName"] == "low"),
    "node-selector": ({"node_selector": {"disk": "ssd"}}, lambda j: pod_of(j)["nodeSelector"] == {"disk": "ssd"}),
    "service-account": ({"service_account": "trainer"}, lambda j: pod_of(j)["serviceAccountName"] == "trainer"),
    "queue": ({"queue": "team-a"}, lambda j: j["spec"]["suspend"] is True and
              j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"),
    "secret-env": ({"secret_env": {"WANDB_API_KEY": "wandb/api-key"}}, lambda j: {
        "name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}}}
        in pod_of(j)["containers"][0]["env"]),
    "scratch": ({"scratch": 50, "scratch_class": "nvme"}, lambda j: pod_of(j)["volumes"][-1] == {
        "name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}},
            "storageClassName": "nvme"}}}} and {"name": "scratch", "mountPath": "/scratch"}
        in pod_of(j)["containers"][0]["volumeMounts"]),
    "server": ({"server": {"command": "tensorboard --logdir runs --port 6006", "port": 6006}},
               lambda j: pod_of(j)["initContainers"][0]["restartPolicy"] == "Always" and
               pod_of(j)["initContainers"][0]["ports"] == [{"name": "server", "containerPort": 6006}] and
               pod_of(j)["initContainers"][0]["command"][2].endswith("tensorboard --logdir runs --port 6006\n")),
}


@pytest.mark.parametrize("extra, check", [pytest.param(*c, id=k) for k, c in SETTINGS.items()])
def test_each_setting_renders_valid_jobs(extra, check):
    _, out = rendered({**extra, "model": {"m": {"command": "echo hi"}}})
    job = out.jobs[0].manifest
    validate_both(job)
    assert check(job)


def test_settings_override_per_model():
    _, out = rendered({"max_runtime": "6h", "model": {"a": {"command": "a"}, "b": {"command": "b",
                                                                                 "max_runtime": "2d"}}})
    assert [j.manifest["spec"]["activeDeadlineSeconds"] for j in out.jobs] == [21600, 172800]


BAD = {
    "runtime-zero": ({"max_runtime": "0h"}, "max_runtime: expected a duration"),
    "runtime-words": ({"max_runtime": "5 minutes"}, "max_runtime: expected a duration"),
    "server-no-port": ({"server": {"command": "x"}}, "server: expected null or a mapping with command"),
    "secret-no-key": ({"secret_env": {"X": "wandb"}}, "secret_env: expected a mapping of variable names"),
    "shared-negative": ({"shared": -1}, "shared: expected a whole number of cells per Job"),
    "parallel-text": ({"max_parallel": "two"}, "max_parallel: expected a whole number >= 1 or null"),
    "selector-list": ({"node_selector": ["ssd"]}, "node_selector: expected a mapping of label keys to label values"),
}


@pytest.mark.parametrize("extra, message", [pytest.param(*c, id=k) for k, c in BAD.items()])
def test_bad_settings_are_one_line(extra, message):
    with pytest.raises(ConfigError, match=message):
        rendered({**extra, "model": {"m": {"command": "echo"}}})


def test_interactive_pod_requests_are_capped(tmp_path):
    make_project(tmp_path, "gpu_count: 8\ncpu_count: 64\nmemory: 256\nmodel: {m: {command: echo}}\n")
    result = launch(tmp_path, "pod", "--dry-run")
    assert result.returncode == 0, result.stderr
    import yaml
    pod = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Pod")
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "16", "memory": "32Gi", "ephemeral-storage": "100Gi", "nvidia.com/gpu": "2"}


# --- arrays and packs ----------------------------------------------------------------------------------------------

def test_array_mode_is_one_indexed_job_with_its_cells_in_a_configmap():
    runs, out = rendered({"max_parallel": 2, "backoff_limit": 1, **SIX})
    assert len(out.jobs) == 1
    job = out.jobs[0].manifest
    validate_both(job)
    assert {k: job["spec"][k] for k in ("completionMode", "completions", "parallelism", "backoffLimitPerIndex")} == {
        "completionMode": "Indexed", "completions": 6, "parallelism": 2, "backoffLimitPerIndex": 1}
    assert "backoffLimit" not in job["spec"] and job["spec"]["podFailurePolicy"]["rules"][1]["action"] == "FailIndex"
    ids = [workloads.cell_id(r.name) for r in runs]
    assert job["metadata"]["annotations"][workloads.ANNOTATION_CELLS] == " ".join(ids)
    cm = next(o for o in out.objects if o["kind"] == "ConfigMap")
    validate_both(cm)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(cm["binaryData"]["cells.tgz"])))) as tar:
        scripts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert sorted(scripts) == sorted([f"{i}.sh" for i in range(6)] + [f"{i}.cell" for i in range(6)])
    assert scripts["4.cell"] == runs[4].name                         # which cell an index runs
    assert scripts["4.sh"].endswith("python train.py --seed 4\n")
    assert {"name": "cells", "configMap": {"name": cm["metadata"]["name"]}} in pod_of(job)["volumes"]


def test_array_index_runs_its_own_cell(tmp_path):
    runs, out = rendered({"max_parallel": 3, "model": {"m": {"command": "echo cell <seed> > out-<seed>",
                                                            "hparam": {"seed": [10, 11, 12]}}}})
    w = workloads.plan_workloads(runs, runs[0].project)[0]
    (tmp_path / "cells.tgz").write_bytes(workloads.cells_archive(w))
    script = workloads.array_dispatch().replace(workloads.CELLS_MOUNT, str(tmp_path))
    for index in (2, 0):
        subprocess.run(["bash", "-c", script], cwd=tmp_path, env={"JOB_COMPLETION_INDEX": str(index),
                                                                  "PATH": "/usr/bin:/bin"}, check=True)
    assert sorted(p.name for p in tmp_path.glob("out-*")) == ["out-10", "out-12"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted([runs[0].name, runs[2].name])


def test_packed_cells_run_at_once_prefixed_and_fail_together(tmp_path):
    runs, out = rendered({"shared": 3, "model": {"m": {
        "command": "echo start <seed>; sleep 0.3; echo end <seed>; exit <status>",
        "hparam": {"seed": [1, 2, 3, 4], "status": [0]}}, "bad": {"command": "echo oops; exit 3"}}})
    assert [j.workload for j in out.jobs] == ["pack", "pack"]
    w = workloads.plan_workloads(runs, runs[0].project)
    packs = [x for x in w if x.kind == "pack"]
    assert [len(p.units[0]) for p in packs] == [3, 2]            # 5 cells with equal settings, 3 a Job
    validate_both(out.jobs[0].manifest)
    results = tmp_path / "termination-log"
    script = workloads.unit_script(packs[1].units[0])
    import time
    start = time.monotonic()
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={"KUBE_TOOLBOX_RESULTS": str(results), "PATH": "/usr/bin:/bin"})
    assert time.monotonic() - start < 1.0                          # concurrently, not one after the other
    names = [r.name for r in packs[1].units[0]]
    assert done.returncode == 1
    assert f"[{names[0]}] start 4" in done.stdout and f"[{names[1]}] oops" in done.stdout
    assert results.read_text().splitlines() == [f"{names[0]}=0", f"{names[1]}=3"]


def test_golden_array_and_packed_jobs():
    import os
    for name, data in (("array-job.yaml", {"max_parallel": 2, **SIX}), ("packed-job.yaml", {"shared": 3, **SIX})):
        text = rendered(data)[1].jobs[0].text
        if os.environ.get("UPDATE_GOLDEN"):
            (GOLDEN / name).write_text(text)
        assert text == (GOLDEN / name).read_text(), name


# --- against the test API server -----------------------------------------------------------------------------------

@pytest.fixture
def six(project):
    lf = project / "config" / "launch.yaml"
    lf.write_text("max_parallel: 2\nmodel:\n  m:\n    command: python train.py --seed <seed>\n"
                  "    hparam: {seed: [0, 1, 2, 3, 4, 5]}\n")
    return project


def _status_cells(root):
    code, out, err = run(root, "status", "--json")
    assert code == 0, err
    import json
    return json.loads(out)["cells"]


def test_array_flow_status_by_cell_and_resubmit_only_failed(six, kube):
    code, out, err = run(six, "job")
    assert code == 0, err
    # list, Secret, ConfigMap, Job, then both marked used (a concurrent make delete leaves them)
    assert out.splitlines()[-1] == "1 job (6 cells): 1 created, 0 failed (6 API calls)"
    jobs = kube.objects("jobs")
    assert len(jobs) == 1 and jobs[0]["spec"]["completions"] == 6 and jobs[0]["spec"]["parallelism"] == 2
    job = jobs[0]
    kube.seed(with_status(job, completedIndexes="0,2-3,5", failedIndexes="1,4", succeeded=4, failed=2))
    for index, node in ((1, "node-a"), (4, "node-b")):
        pod = pod_for(job, "Failed", node, {"terminated": {"exitCode": 2, "reason": "Error"}})
        pod["metadata"]["name"] = f"{job['metadata']['name']}-{index}-x"
        pod["metadata"].setdefault("annotations", {})["batch.kubernetes.io/job-completion-index"] = str(index)
        pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] = str(index)
        kube.seed(pod)
    cells = _status_cells(six)
    assert [c["state"] for c in cells] == ["succeeded", "failed", "succeeded", "succeeded", "failed", "succeeded"]
    assert cells[1]["reason"] == "exit code 2" and cells[1]["index"] == 1
    code, out, err = run(six, "status")
    assert "6 cells: 4 succeeded, 2 failed" in out
    kube.set_log("lab", f"{job['metadata']['name']}-4-x", "loss went nan\n")
    code, out, err = run(six, "logs", "--name", cells[4]["name"])
    assert code == 0 and out == "loss went nan\n"
    code, out, err = run(six, "job", "--only", "failed")
    assert code == 0, err
    new = [j for j in kube.objects("jobs") if j["metadata"]["name"] != job["metadata"]["name"]]
    assert len(new) == 1 and new[0]["spec"]["completions"] == 2
    failed_ids = [workloads.cell_id(cells[i]["name"]) for i in (1, 4)]
    assert new[0]["metadata"]["annotations"][workloads.ANNOTATION_CELLS] == " ".join(failed_ids)
    states = [c["state"] for c in _status_cells(six)]
    assert states == ["succeeded", "pending", "succeeded", "succeeded", "pending", "succeeded"]
    code, out, _ = run(six, "job")                     # the full array again: left alone
    assert code == 0 and "has failed cells" not in out and "0 created" in out


def test_deadline_exceeded_is_the_reason(project, kube):
    (project / "config" / "launch.yaml").write_text("max_runtime: 1h\n" + (project / "config" / "launch.yaml")
                                                    .read_text())
    run(project, "job")
    job = kube.objects("jobs")[0]
    kube.seed(with_status(job, failed=1, conditions=[{"type": "Failed", "status": "True",
                                                      "reason": "DeadlineExceeded"}]))
    cells = _status_cells(project)
    assert [c["reason"] for c in cells if c["state"] == "failed"] == ["DeadlineExceeded"]


def test_secret_env_references_are_checked_before_any_job(project, kube):
    lf = project / "config" / "launch.yaml"
    lf.write_text("secret_env: {WANDB_API_KEY: wandb/api-key}\n" + lf.read_text())
    code, out, err = run(project, "job")
    assert code == 1 and "secret_env.WANDB_API_KEY: no Secret 'wandb' in namespace lab" in err
    assert kube.objects("jobs") == []
    kube.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wandb", "namespace": "lab"},
               "data": {"other": "eA=="}})
    code, out, err = run(project, "job")
    assert code == 1 and "Secret 'wandb' has no key 'api-key'" in err and kube.objects("jobs") == []
    kube.fail("GET", "/secrets/wandb$", 403, times=5)
    code, out, err = run(project, "job")                  # may not read Secrets: the check is skipped
    assert code == 0, err
    assert len(kube.objects("jobs")) == 4


COMPAT = {
    "server-named": ({"server": {"tb": {"command": "tensorboard", "port": 6006, "memory": 4}}},
                     lambda j: pod_of(j)["initContainers"][0]["resources"]["requests"]["memory"] == "4Gi"),
    "shared-fraction": ({"shared": 0.5, "model": {"m": {"command": "e <s>", "hparam": {"s": [1, 2, 3, 4]}}}},
                        lambda j: j["metadata"]["annotations"][workloads.ANNOTATION_CELLS].count("+") == 1),
    "extra-startup": ({"extra_startup_script": "source /opt/env.sh"},
                      lambda j: re.search(r"source /opt/env\.sh\nexport RESULTS_DIR=[^\n]*\necho hi\n$",
                                          pod_of(j)["containers"][0]["command"][2])),
}


@pytest.mark.parametrize("extra, check", [pytest.param(*c, id=k) for k, c in COMPAT.items()])
def test_keys_of_the_public_toolbox_keep_working(extra, check):
    data = {"model": {"m": {"command": "echo hi"}}, **extra}
    job = rendered(data)[1].jobs[0].manifest
    validate_both(job)
    assert check(job)


def test_every_new_setting_is_accepted_by_the_test_api_server(project, kube):
    lf = project / "config" / "launch.yaml"
    lf.write_text("""\
max_runtime: 6h
priority_class: low
node_selector: {disk: ssd}
service_account: trainer
queue: team-a
secret_env: {WANDB_API_KEY: wandb/api-key}
scratch: 20
scratch_class: nvme
server: {command: tensorboard --logdir runs, port: 6006}
""" + lf.read_text())
    kube.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wandb", "namespace": "lab"},
               "data": {"api-key": "eA=="}})
    code, out, err = run(project, "job")
    assert code == 0, err
    jobs = kube.objects("jobs")
    assert len(jobs) == 4 and all(j["spec"]["suspend"] is True for j in jobs)
    assert all(j["spec"]["template"]["spec"]["initContainers"][0]["name"] == "server" for j in jobs)
    lf.write_text("shared: 2\nmax_parallel: 1\n" + lf.read_text())
    code, out, err = run(project, "job")
    assert code == 0, err
    array = [j for j in kube.objects("jobs") if j["spec"].get("completionMode") == "Indexed"]
    assert len(array) == 1 and array[0]["spec"]["completions"] == 2 and array[0]["spec"]["parallelism"] == 1


def test_forward_needs_the_cells_sidecar(project, kube):
    kube.controller(True)
    run(project, "job")
    cell = kube.objects("jobs")[0]["metadata"]["name"]
    code, _, err = run(project, "forward", "--name", cell)
    assert code == 1 and "has no server sidecar" in err
    code, _, err = run(project, "forward", "--name", "model=nope")
    assert code == 2 and "selects no combination" in err and len(err.splitlines()) == 1


# --- the API server's limits and the total cap, before the first call ------------------------------------------------

def test_max_parallel_is_the_cap_in_total_across_arrays():
    """Cells whose settings differ form several arrays: together they never run more than max_parallel."""
    data = {"max_parallel": 5, "model": {
        "small": {"command": "echo <seed>", "memory": 8, "hparam": {"seed": list(range(60))}},
        "big": {"command": "echo <seed>", "memory": 16, "hparam": {"seed": list(range(40))}}}}
    _, out = rendered(data)
    arrays = [j.manifest["spec"] for j in out.jobs]
    assert len(arrays) == 2 and sum(a["parallelism"] for a in arrays) == 5
    assert sorted(a["parallelism"] for a in arrays) == [2, 3] and all(a["parallelism"] >= 1 for a in arrays)


def test_more_arrays_than_the_cap_is_refused_in_one_line(tmp_path):
    make_project(tmp_path, """\
        max_parallel: 1
        model:
          a: {command: echo a, memory: 8}
          b: {command: echo b, memory: 16}
        """)
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "max_parallel" in result.stderr and "expected at least 2" in result.stderr
    assert not (tmp_path / "build").exists()


def test_max_parallel_zero_is_refused():
    with pytest.raises(ConfigError, match=r"max_parallel: expected a whole number >= 1 or null"):
        rendered({"max_parallel": 0, **SIX})


def test_an_array_too_big_for_one_configmap_is_split_into_arrays_that_fit():
    import random
    rng = random.Random(0)
    blobs = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6000)) for _ in range(300)]
    data = {"max_parallel": 10, "model": {"m": {"command": "echo <blob>", "hparam": {"_blob": blobs}}}}
    runs, out = rendered(data)
    maps = [o for o in out.objects if o["kind"] == "ConfigMap"]
    assert len(out.jobs) >= 2 and len(maps) == len(out.jobs)
    assert all(len(json.dumps(m)) < 1024 * 1024 for m in maps)          # each under the object size limit
    assert sum(j.manifest["spec"]["completions"] for j in out.jobs) == len(runs) == 300
    assert sum(j.manifest["spec"]["parallelism"] for j in out.jobs) <= 10
    for job in out.jobs:
        validate_both(job.manifest)


@pytest.mark.parametrize("data, key, expected", [
    ({"volumes": {"ram": "/dev/shm"}}, "volumes.ram", "expected a mount path of its own; /dev/shm"),
    ({"scratch": 10, "volumes": {"data": "/scratch/"}}, "volumes.data", "expected a mount path of its own; /scratch"),
    ({"volumes": {"a": "/data", "b": "/data"}}, "volumes.b", "expected a mount path of its own; /data"),
    ({"node_selector": {"bad key!": "x"}}, "node_selector.bad key!", "expected a label key"),
    ({"node_selector": {"disk": "fast ssd"}}, "node_selector.disk", "expected a label value"),
    ({"service_account": "My_Account"}, "service_account", "expected a DNS name"),
    ({"priority_class": "High"}, "priority_class", "expected a DNS name"),
    ({"image_pull_secrets": "pull secret"}, "image_pull_secrets", "expected a DNS name"),
    ({"cpu_count": 0.0001}, "cpu_count", "expected at least 0.001 (1m): 0.0001 rounds to zero"),
    ({"memory": 0.0001}, "memory", "expected at least 0.001 (1Mi): 0.0001 rounds to zero"),
])
def test_what_the_api_server_would_reject_is_refused_before_any_call(tmp_path, data, key, expected):
    import yaml
    make_project(tmp_path, yaml.safe_dump({**data, "model": {"m": {"command": "echo hi"}}}))
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{key}: {expected}" in result.stderr
    assert not (tmp_path / "build").exists()


def test_annotations_over_the_api_server_limit_are_refused(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo hi, hparam: {_x: ['%s']}}}\n" % ("a" * 300_000))
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and "metadata.annotations: the annotations add up to" in result.stderr
    assert "expected at most 256 KiB" in result.stderr


def test_a_dotenv_too_large_for_a_secret_is_refused(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo hi}}\n",
                 dotenv="".join(f"BIG{i}=%s\n" % ("x" * 95_000) for i in range(10)))
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and result.stderr.startswith("error: .env: the values add up to")
