"""Checkpoints on the cluster side: the rendered Job (schema, golden file, failure policy, sidecar), the pod's
restore -> command -> final sync run as local processes against a real S3 server (a preemption in the middle, then
a second pod that resumes), and restarts after a disruption or a requeue shown by `make status`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kube import checkpoints, config, grid, operations
from kube.provenance import ANNOTATION_COMMIT, ANNOTATION_DIRTY
from tests.helpers import KUBE, ROOT, make_project, run
from tests.test_shared_cluster import validate_both

GOLDEN = ROOT / "tests" / "golden"
LAUNCH = """\
checkpoint: {path: checkpoints, every: 2, keep: 2}
requeue_exit_code: 85
termination_grace: 60
model:
  m: {command: python train.py, gpu_count: 0}
dataset:
  d: {}
"""


def job_of(root: Path, commit: str = "c0ffee" * 6 + "c0ff") -> dict:
    runs = grid.build_runs(config.load(root))
    return operations.render_job(runs[0], {ANNOTATION_COMMIT: commit, ANNOTATION_DIRTY: "false"}).manifest


def test_a_checkpointed_job_is_valid_and_matches_its_golden_file(tmp_path):
    make_project(tmp_path, LAUNCH)
    runs = grid.build_runs(config.load(tmp_path))
    text = operations.render_job(runs[0], {ANNOTATION_COMMIT: "c0ffee" * 6 + "c0ff",
                                           ANNOTATION_DIRTY: "false"}).text
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "checkpoint-job.yaml").write_text(text)
    assert text == (GOLDEN / "checkpoint-job.yaml").read_text()
    job = job_of(tmp_path)
    validate_both(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 60
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert [r["action"] for r in rules] == ["Ignore", "Ignore", "FailJob"]       # requeue before fail_fast
    assert rules[1]["onExitCodes"] == {"containerName": "main", "operator": "In", "values": [85]}
    sidecar = pod["initContainers"][0]
    assert sidecar["name"] == "checkpoint" and sidecar["restartPolicy"] == "Always"
    assert "checkpoint sync checkpoints/\"$cell\"" in sidecar["command"][2] and "--keep 2" in sidecar["command"][2]
    assert "--final-timeout 45" in sidecar["command"][2]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["checkpoints"] == f"{checkpoints.MOUNT}/checkpoints" == \
        {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}["checkpoints"]
    script = pod["containers"][0]["command"][2]
    assert script.index("checkpoint restore") < script.index("python train.py")


@pytest.mark.parametrize("extra, key, expected", [
    ("shared: 2\n", "checkpoint", "expected one cell per pod"),
    ("termination_grace: 10\n", "termination_grace", "expected more than 15 s with checkpoint"),
    ("checkpoint: ../elsewhere\n", "checkpoint", "expected a folder inside the project"),
    ("checkpoint: {path: c, every: soon}\n", "checkpoint", "expected a folder (checkpoints/) or {path, every"),
    ("requeue_exit_code: 300\n", "requeue_exit_code", "expected an exit status 1-255"),
    ("code: newest\n", "code", "expected commit, latest or image"),
])
def test_checkpoint_settings_are_checked_in_one_line(tmp_path, extra, key, expected):
    from tests.helpers import launch
    make_project(tmp_path, extra + ("checkpoint: cp\n" if "checkpoint" not in extra else "") +
                 "model:\n  m: {command: python train.py}\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and f"{key}: {expected}" in result.stderr, result.stderr


def test_make_local_gets_the_same_checkpoint_folder(tmp_path):
    from tests.helpers import launch
    make_project(tmp_path, "checkpoint: checkpoints/\nmodel: {m: {command: 'echo $CHECKPOINT_DIR'}}\n")
    result = launch(tmp_path, "local")
    name = grid.build_runs(config.load(tmp_path))[0].name
    assert result.returncode == 0 and f"{tmp_path}/checkpoints/{name}" in result.stdout


# --- the pod's sequence as local processes, against a real S3 server --------------------------------------------------

TRAIN = """\
import os, signal, sys, time
folder = os.environ["CHECKPOINT_DIR"]
done = sorted(int(n.split("_")[1]) for n in os.listdir(folder) if n.startswith("step_"))
start = done[-1] + 1 if done else 1
print("resumed at", start, flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
for step in range(start, start + 100):
    os.makedirs(os.path.join(folder, f"step_{step}"), exist_ok=True)
    tmp = os.path.join(folder, f"step_{step}", "model.tmp")
    with open(tmp, "w") as fh:
        fh.write(f"weights {step}\\n")
    os.replace(tmp, os.path.join(folder, f"step_{step}", "model.bin"))
    if step == 3 and os.environ.get("FINISH_AT_3"):
        sys.exit(0)
    for _ in range(10):
        if stop:
            sys.exit(143)                       # preempted: the checkpoint is on disk
        time.sleep(0.1)
"""


def pod_scripts(job: dict, mount: Path) -> tuple[str, str]:
    """(the main container's script, the sidecar's), with the checkpoint mount moved into `mount`."""
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]["command"][2].replace(checkpoints.MOUNT, str(mount))
    side = pod["initContainers"][0]["command"][2].replace(checkpoints.MOUNT, str(mount))
    return main, side


def one_pod(project: Path, job: dict, env: dict, preempt_after: float | None) -> tuple[str, int]:
    """One pod's life: the sidecar starts first, the command restores and runs, then the pod is told to stop (a
    preemption) or the command ends; the sidecar gets SIGTERM last and makes its final sync."""
    mount = Path(project.parent / f"pod-{time.monotonic_ns()}")           # a fresh emptyDir for each pod
    main, side = pod_scripts(job, mount)
    env = {**env, "KUBE_TOOLBOX_JOB": job["metadata"]["name"]}
    sidecar = subprocess.Popen(["bash", "-c", side], cwd=project, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    command = subprocess.Popen(["bash", "-c", main], cwd=project, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if preempt_after is not None:
        time.sleep(preempt_after)
        os.killpg(command.pid, signal.SIGTERM)
    out, err = command.communicate(timeout=120)
    os.killpg(sidecar.pid, signal.SIGTERM)                                 # the kubelet stops the sidecar last
    side_out, side_err = sidecar.communicate(timeout=120)
    assert sidecar.returncode == 143, side_err
    return out + err, command.returncode


def test_a_preempted_pod_resumes_from_its_checkpoint_in_the_next_pod(tmp_path, seaweed):
    project = make_project(tmp_path / "project", LAUNCH, kube=KUBE + "conda_home: /nowhere\ncode: image\n")
    (project / "train.py").write_text(TRAIN)
    (project / "src").mkdir()
    (project / "src" / "toolbox").symlink_to(ROOT)
    job = job_of(project)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    text, code = one_pod(project, job, env, preempt_after=4.5)              # preempted at about step 4
    assert code == 143 and "resumed at 1" in text, text
    keys = sorted(k for k in seaweed.keys() if k.endswith("model.bin"))
    name = job["metadata"]["name"]
    assert keys and all(k.startswith(f"checkpoints/{name}/step_") for k in keys)
    assert len(keys) <= 2                                                   # keep: 2
    newest = max(int(k.split("step_")[1].split("/")[0]) for k in keys)
    text, code = one_pod(project, job, {**env, "FINISH_AT_3": ""}, preempt_after=1.5)
    assert f"resumed at {newest + 1}" in text, text                         # the second pod continued
    assert not (project / "checkpoints").exists()                           # nothing written into the checkout


# --- restarts in make status ---------------------------------------------------------------------------------------

def test_status_counts_restarts_after_a_disruption_or_a_requeue(project, kube):
    launch_yaml = project / "config" / "launch.yaml"
    launch_yaml.write_text("requeue_exit_code: 85\n" + launch_yaml.read_text())
    run(project, "job")
    job = kube.objects("jobs")[0]
    name, uid = job["metadata"]["name"], job["metadata"]["uid"]
    job["status"] = {"active": 1, "ready": 1, "failed": 0}                 # the Ignore rules counted nothing
    kube.seed(job)

    def pod(suffix, phase, created, state, conditions=()):
        kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{name}-{suffix}", "namespace": "lab", "creationTimestamp": created,
            "labels": {**job["metadata"]["labels"], "job-name": name},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": phase, "conditions": list(conditions),
                       "containerStatuses": [{"name": "main", "state": state}]}})
    pod("a", "Failed", "2026-01-01T00:00:00Z", {"terminated": {"exitCode": 143, "reason": "Error"}},
        [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
    pod("b", "Failed", "2026-01-01T01:00:00Z", {"terminated": {"exitCode": 85, "reason": "Error"}})
    pod("c", "Running", "2026-01-01T02:00:00Z", {"running": {}})
    code, out, _ = run(project, "status", "--json")
    import json
    cell = next(c for c in json.loads(out)["cells"] if c["name"] == name)
    assert cell["state"] == "running" and cell["restarts"] == 2
    code, out, _ = run(project, "status")
    assert "running (2 restarts)" in next(line for line in out.splitlines() if name in line)


def test_status_shows_the_newest_checkpoint_of_each_cell(project, kube, seaweed):
    launch_yaml = project / "config" / "launch.yaml"
    launch_yaml.write_text("checkpoint: ckpt\n" + launch_yaml.read_text())
    (project / ".env").write_text("")                                  # the bucket comes from the environment
    run(project, "job")
    names = sorted(j["metadata"]["name"] for j in kube.objects("jobs"))
    seaweed.put(f"ckpt/{names[0]}/step_1/model.bin", b"1")
    time.sleep(1.1)
    seaweed.put(f"ckpt/{names[0]}/step_2/model.bin", b"2")
    seaweed.put(f"ckpt/{names[1]}/step_9/model.bin", b"9")
    code, out, err = run(project, "status", "--checkpoints")
    assert code == 0, err
    section = out[out.index("Checkpoints in the bucket:"):].splitlines()
    row = {line.split()[0]: line.split()[1] for line in section[2:]}
    assert row[names[0]] == f"ckpt/{names[0]}/step_2/model.bin" and row[names[1]] == f"ckpt/{names[1]}/step_9/model.bin"
    assert row[names[2]] == "-" and len(row) == 4
