"""Cells bigger than one node, rendered: an Indexed Job and its headless Service (or a PyTorchJob), the nodes'
environment, the rules refused before anything runs, and the pods' startup run here as three local "nodes"."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kube import config, grid, multinode, operations
from kube.errors import ConfigError
from tests.helpers import ROOT, launch, make_project
from tests.manifest_checks import validate_oldest, validate_pytorchjob

GOLDEN = Path(__file__).parent / "golden"
# Regenerate: UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_multinode.py -k golden
KUBE = {"project_name": "example", "namespace": "lab", "user": "alice"}
TORCHRUN = ("torchrun --nnodes=$NNODES --node-rank=$NODE_RANK --nproc-per-node=$NPROC_PER_NODE "
            "--rdzv-backend=c10d --rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT train.py")


def rendered(launch_data: dict, root: Path = ROOT) -> tuple[list, operations.RenderedGrid]:
    cfg = config.from_mappings(KUBE, launch_data, {}, root)
    runs = grid.build_runs(cfg)
    return runs, operations.render_grid(runs, cfg.project)


def four_nodes(**extra) -> dict:
    return {"model": {"big": {"command": TORCHRUN, "nodes": 4, "gpu_count": 8, **extra}}}


def env_of(job: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_a_four_node_cell_is_an_indexed_job_and_a_headless_service():
    runs, out = rendered(four_nodes())
    [cell] = out.jobs
    job, service = cell.manifest, yaml.safe_load(cell.companions[0])
    validate_oldest(job)
    validate_oldest(service)
    name = runs[0].name
    assert job["metadata"]["name"] == name and job["metadata"]["annotations"][multinode.ANNOTATION_NODES] == "4"
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}}]
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == name
    assert service["spec"] == {"clusterIP": "None", "publishNotReadyAddresses": True,
                               "selector": {"batch.kubernetes.io/job-name": name}}
    assert service["metadata"]["labels"] == job["metadata"]["labels"]
    assert {k: v for k, v in env_of(job).items() if k in multinode.ENV_NAMES} == {"NNODES": "4",
        "NODE_RANK": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
        "NPROC_PER_NODE": "8", "MASTER_ADDR": f"{name}-0.{name}", "MASTER_PORT": "29500", "WORLD_SIZE": "32"}
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "8"          # per node
    script = pod["containers"][0]["command"][2]
    assert script.index("rendezvous_timeout") < script.index("torchrun")


def test_fail_fast_off_still_fails_a_multi_node_cell_at_once():
    _, out = rendered(four_nodes(fail_fast=False, master_port=23456, max_runtime="2h"))
    job = out.jobs[0].manifest
    assert job["spec"]["podFailurePolicy"]["rules"][-1]["action"] == "FailJob"
    assert job["spec"]["activeDeadlineSeconds"] == 7200 and env_of(job)["MASTER_PORT"] == "23456"


def test_golden_four_node_job_and_service():
    _, out = rendered(four_nodes())
    text = operations.stream_text(out.objects, out.jobs)
    golden = GOLDEN / "multinode-job.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert text.startswith("# successPolicy (the cell succeeds when node 0 does) needs Kubernetes 1.33 or later")
    assert [d["kind"] for d in yaml.safe_load_all(text)] == ["Job", "Service"]


def test_a_pytorchjob_cell_field_by_field():
    runs, out = rendered(four_nodes(engine="pytorchjob", queue="team-a", max_runtime="6h", backoff_limit=2,
                                    ttl_seconds_after_finished=600))
    [cell] = out.jobs
    obj = cell.manifest
    validate_pytorchjob(obj)
    assert cell.kind == "PyTorchJob" and cell.companions == ()
    meta = obj["metadata"]
    assert meta["name"] == runs[0].name and meta["labels"]["user"] == "alice"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert meta["annotations"][multinode.ANNOTATION_NODES] == "4" and meta["annotations"]["kube-toolbox/spec-hash"]
    spec = obj["spec"]
    assert spec["nprocPerNode"] == "8"
    assert spec["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 2, "activeDeadlineSeconds": 21600,
                                 "ttlSecondsAfterFinished": 600, "suspend": True}
    master, worker = spec["pytorchReplicaSpecs"]["Master"], spec["pytorchReplicaSpecs"]["Worker"]
    assert (master["replicas"], worker["replicas"]) == (1, 3)
    assert master["restartPolicy"] == worker["restartPolicy"] == "ExitCode"
    assert master["template"] == worker["template"]
    container = master["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["ports"] == [{"name": "pytorchjob-port",
                                                                      "containerPort": 29500}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NNODES"] == "4" and env["NPROC_PER_NODE"] == "8"
    assert not {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK"} & set(env)     # the operator's and RANK
    assert 'export NODE_RANK="$RANK" WORLD_SIZE=$((NNODES * NPROC_PER_NODE))' in container["command"][2]
    assert "subdomain" not in master["template"]["spec"]


def test_golden_pytorchjob():
    _, out = rendered(four_nodes(engine="pytorchjob"))
    text = out.jobs[0].text
    golden = GOLDEN / "multinode-pytorchjob.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_one_node_cells_stay_as_they_were():
    _, out = rendered({"model": {"m": {"command": "echo hi"}}})
    job = out.jobs[0]
    assert job.companions == () and "completionMode" not in job.manifest["spec"]
    assert not {"NNODES", "MASTER_ADDR"} & set(env_of(job.manifest))


def test_names_leave_room_for_the_node_index_and_the_workers():
    long = {"hparam": {"x": ["a" * 80]}}
    runs, _ = rendered({"model": {"m": {"command": "x", "nodes": 12, **long}, "one": {"command": "x", **long}}})
    assert len(runs[0].name) == 63 - len("-11") and len(runs[1].name) == 63
    runs, out = rendered({"model": {"m": {"command": "x", "nodes": 3, "engine": "pytorchjob", **long}}})
    assert len(runs[0].name) == 63 - len("-worker-1")
    validate_pytorchjob(out.jobs[0].manifest)


BAD = {
    "nodes-zero": ({"nodes": 0}, "model.m.nodes: expected a whole number >= 1, got 0"),
    "nodes-text": ({"nodes": "four"}, "model.m.nodes: expected a whole number >= 1, got a string"),
    "engine": ({"engine": "jobset"}, "model.m.engine: expected job or pytorchjob"),
    "timeout-zero": ({"rendezvous_timeout": 0}, "model.m.rendezvous_timeout: expected a duration such as 10m"),
    "timeout-null": ({"rendezvous_timeout": None}, "model.m.rendezvous_timeout: expected a duration"),
    "port": ({"master_port": 70000}, "model.m.master_port: expected a port number"),
    "array": ({"nodes": 2, "max_parallel": 4}, "model.m.max_parallel: cannot be used with nodes: 2 (such a cell is "
                                                "a Job of its own that runs all its nodes at once)"),
    "packed": ({"nodes": 2, "shared": 2}, "model.m.shared: cannot be used with nodes: 2 (packed cells would share"),
    "pytorchjob-packed": ({"engine": "pytorchjob", "shared": 0.5}, "model.m.shared: cannot be used with engine: "
                                                                   "pytorchjob"),
}


def test_a_pytorchjob_name_must_start_with_a_letter():
    with pytest.raises(ConfigError, match="config/launch.yaml: model.m.engine: pytorchjob needs cell names that "
                                          "start with a letter"):
        grid.build_runs(config.from_mappings({**KUBE, "project_name": "3d"},
                                             {"model": {"m": {"command": "x", "engine": "pytorchjob"}}}))
    cfg = config.from_mappings({**KUBE, "project_name": "3d"}, {"prefix": "seg", "model": {"m": {
        "command": "x", "engine": "pytorchjob"}}})
    validate_pytorchjob(operations.render_grid(grid.build_runs(cfg), cfg.project).jobs[0].manifest)


@pytest.mark.parametrize("extra, message", [pytest.param(*c, id=k) for k, c in BAD.items()])
def test_bad_multi_node_settings_are_one_line(extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rendered({"model": {"m": {"command": "echo", **extra}}})


def test_bad_settings_stop_make_job_before_any_api_call(tmp_path):
    make_project(tmp_path, "max_parallel: 3\nmodel: {m: {command: echo, nodes: 2}}\n")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    result = launch(tmp_path, "job", env=env)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: config/launch.yaml: model.m.max_parallel: cannot be used with nodes: 2 (such a cell is a Job of its "
        "own that runs all its nodes at once); remove max_parallel for it"]


def test_make_local_runs_a_multi_node_cell_as_one_node_and_says_so(tmp_path):
    make_project(tmp_path, "model:\n  m:\n    command: 'echo got $NNODES $NODE_RANK $NPROC_PER_NODE $MASTER_ADDR "
                           "$MASTER_PORT $WORLD_SIZE'\n    nodes: 4\n    gpu_count: 2\n    master_port: 29511\n"
                           "  solo:\n    command: 'echo solo ${NNODES:-unset}'\n")
    result = launch(tmp_path, "local")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    note = ("One node here of nodes: 4: NNODES=1 NODE_RANK=0 NPROC_PER_NODE=2 MASTER_ADDR=127.0.0.1 "
            "MASTER_PORT=29511 WORLD_SIZE=2")
    assert lines.count(note) == 1 and lines[lines.index(note) - 1] == "Running {} ... "
    assert "got 1 0 2 127.0.0.1 29511 2" in lines and "solo unset" in lines


# --- the pods' startup, run here: three "nodes" on 127.0.0.1 -----------------------------------------------------

RENDEZVOUS = """\
import os, socket, sys, time
rank, nodes = int(os.environ["NODE_RANK"]), int(os.environ["NNODES"])
where = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
if rank == 0:
    server = socket.create_server(where)
    server.settimeout(30)
    peers = [server.accept()[0] for _ in range(nodes - 1)]
    met = sorted(int(peer.recv(16)) for peer in peers)
    for peer in peers:
        peer.sendall(b"go")
    print("node 0 met", met, flush=True)
else:
    deadline = time.monotonic() + 30
    while True:
        try:
            peer = socket.create_connection(where, timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(3)
            time.sleep(0.1)
    peer.sendall(str(rank).encode())
    assert peer.recv(2) == b"go"
    print("node", rank, "met node 0", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_processes(job: dict, cwd: Path, master: str, ranks: list[int]) -> list[subprocess.Popen]:
    """The pod's command, as each node runs it: its env (NODE_RANK from the completion index), MASTER_ADDR
    rewritten (to loopback, here)."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    base = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    base.update(MASTER_ADDR=master, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", HOME=str(cwd))
    assert container["command"][:2] == ["/bin/bash", "-c"]
    return [subprocess.Popen(container["command"], cwd=cwd, env={**base, "NODE_RANK": str(rank)}, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in ranks]


def test_three_nodes_meet_at_node_zero_whoever_starts_first(tmp_path):
    (tmp_path / "rendezvous.py").write_text(RENDEZVOUS)
    _, out = rendered({"model": {"m": {"command": "python rendezvous.py", "nodes": 3,
                                       "master_port": free_port(), "rendezvous_timeout": 20}}}, tmp_path)
    job = out.jobs[0].manifest
    workers = node_processes(job, tmp_path, "127.0.0.1", [2, 1])         # node 0 comes last
    time.sleep(0.5)
    procs = [*node_processes(job, tmp_path, "127.0.0.1", [0]), *workers]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1] for r in results]
    assert [r[0].strip() for r in results] == ["node 0 met [1, 2]", "node 2 met node 0", "node 1 met node 0"]


def test_a_node_whose_master_never_resolves_gives_up_within_the_timeout(tmp_path):
    _, out = rendered({"model": {"m": {"command": "touch started", "nodes": 2, "rendezvous_timeout": 2}}}, tmp_path)
    job = out.jobs[0].manifest
    start = time.monotonic()
    [proc] = node_processes(job, tmp_path, "node-0.kube-toolbox-test.invalid", [1])
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - start
    assert proc.returncode == 1 and 1.5 <= took < 5, took
    assert err.splitlines()[-1] == ("kube-toolbox: node 1: node 0's address node-0.kube-toolbox-test.invalid did not "
                                    "resolve within 2 s (rendezvous_timeout); is node 0's pod running? (make status)")
    assert err.count("rendezvous_timeout") == 1 and not (tmp_path / "started").exists()


def test_with_checkpoints_every_node_restores_and_only_node_zero_syncs(tmp_path):
    import signal
    _, out = rendered({"model": {"m": {"command": "echo", "nodes": 2, "checkpoint": "checkpoints/"}}}, tmp_path)
    job = out.jobs[0].manifest
    validate_oldest(job)
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert "checkpoint restore" in main["command"][2]                 # on every node, after the wait for node 0
    assert main["command"][2].index("rendezvous_timeout") < main["command"][2].index("checkpoint restore")
    [sidecar] = job["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value") for e in sidecar["env"] if "value" in e}
    base = {**env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    other = subprocess.Popen(sidecar["command"], cwd=tmp_path, env={**base, "NODE_RANK": "1"}, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = subprocess.run(sidecar["command"], cwd=tmp_path, env={**base, "NODE_RANK": "0"}, text=True,
                           capture_output=True, timeout=60)
    assert first.returncode != 0 and "s3utils.py" in first.stderr      # node 0 went on to the sync (no toolbox here)
    assert other.poll() is None                                        # node 1 idles...
    other.send_signal(signal.SIGTERM)
    assert other.wait(timeout=10) == 0 and other.stderr.read() == ""   # ...until its pod stops
    _, out = rendered({"model": {"m": {"command": "echo", "nodes": 2, "checkpoint": "checkpoints/",
                                       "engine": "pytorchjob"}}}, tmp_path)
    obj = out.jobs[0].manifest
    validate_pytorchjob(obj)
    [sidecar] = obj["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["initContainers"]
    refs = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"] if "valueFrom" in e}
    assert refs["KUBE_TOOLBOX_JOB"] == "metadata.labels['training.kubeflow.org/job-name']"
    assert refs["KUBE_TOOLBOX_REPLICA"] == "metadata.labels['training.kubeflow.org/replica-type']"
    assert sidecar["command"][2].startswith('if ! [ "$KUBE_TOOLBOX_REPLICA" = master ]; then')


def test_a_stage_of_a_pipeline_can_run_on_several_nodes():
    stages = [{"name": "fetch", "command": "python fetch.py"}, {"name": "train", "nodes": 3, "gpu_count": 8}]
    runs, out = rendered({"model": {"m": {"command": TORCHRUN, "hparam": {"x": ["a" * 80]}, "stages": stages}}})
    fetch, train = runs[0].stages
    assert len(fetch.name) == 63 and len(train.name) <= 63 - len("-2")
    assert train.name.endswith(f"-train-{runs[0].name[-8:]}")          # the cell's hash stays last
    job = operations.render_job(train)
    validate_oldest(job.manifest)
    assert job.manifest["spec"]["completions"] == 3 and len(job.companions) == 1
    assert operations.render_job(fetch).companions == ()
    with pytest.raises(ConfigError, match=r"model\.m\.stages\[1\]: expected engine: job for a stage"):
        rendered({"model": {"m": {"command": "x", "stages": [{"name": "a"}, {"name": "b", "engine": "pytorchjob"}]}}})
