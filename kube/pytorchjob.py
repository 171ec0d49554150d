"""Kubeflow's PyTorchJob (kubeflow.org/v1), pure: a cell's rendered Job as Master and Worker replicas, and a
PyTorchJob read back as the Job the rest of the toolbox understands (state, owner, spec hash, referenced objects).

The training operator, not the toolbox, then runs it: it names the pods `<job>-master-0` and `<job>-worker-<i>`,
gives each a Service, and sets MASTER_ADDR, MASTER_PORT (the container port `pytorchjob-port`), WORLD_SIZE
and RANK. Its validation wants a container named `pytorch` and a name that starts with a letter.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from . import yamltext
from .errors import ConfigError
from .multinode import CHECKPOINT_SIDECAR, nproc_per_node, sync_on_node_zero
from .settings import RunSettings

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
CONTAINER = "pytorch"
PORT_NAME = "pytorchjob-port"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
TYPE_LABEL = "training.kubeflow.org/replica-type"
INDEX_LABEL = "training.kubeflow.org/replica-index"
RESTART_POLICY = "ExitCode"       # exit codes 128-255 (a signal: preemption, eviction) restart; 1-127 fail
NOTE = ("# Run by the Kubeflow training operator: Master is node 0, Worker i is node i + 1. A retryable exit "
        "(128-255,\n# e.g. SIGTERM on preemption) restarts a pod; any other non-zero exit fails the cell.\n")


def from_job(job: Mapping[str, Any], s: RunSettings) -> dict[str, Any]:
    """The PyTorchJob of a cell from its rendered Job: the same metadata and pod template, one Master and
    `nodes - 1` Workers; the Job's limits become the run policy."""
    name = job["metadata"]["name"]
    if not name[:1].isalpha():
        raise ConfigError(f"PyTorchJob {name!r}", "metadata.name", "expected a name that starts with a letter")
    spec = job["spec"]
    template = copy.deepcopy(spec["template"])
    containers = template["spec"]["containers"]
    main = containers[0]
    containers[0] = {"name": CONTAINER, **{k: v for k, v in main.items() if k != "name"},
                     "ports": [{"name": PORT_NAME, "containerPort": s.master_port}]}
    if template["spec"].get("initContainers"):
        template["spec"]["initContainers"] = [_checkpoint_sidecar(c) if c.get("name") == CHECKPOINT_SIDECAR
                                              else c for c in template["spec"]["initContainers"]]
    replicas = {"Master": {"replicas": 1, "restartPolicy": RESTART_POLICY, "template": template}}
    if s.nodes > 1:
        replicas["Worker"] = {"replicas": s.nodes - 1, "restartPolicy": RESTART_POLICY, "template": template}
    policy: dict[str, Any] = {"cleanPodPolicy": "None"}          # pods (and their logs) stay until deleted
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "suspend"):
        if spec.get(key) is not None:
            policy[key] = spec[key]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": copy.deepcopy(job["metadata"]),
            "spec": {"nprocPerNode": str(nproc_per_node(s)), "pytorchReplicaSpecs": replicas, "runPolicy": policy}}


def _checkpoint_sidecar(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint sidecar in a PyTorchJob's pods: the cell is the PyTorchJob's name (its pods have no
    `job-name` label), and only the Master syncs."""
    label = {"name": "KUBE_TOOLBOX_REPLICA", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.labels['{TYPE_LABEL}']"}}}
    env = [{"name": e["name"], "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}}
           if e.get("name") == "KUBE_TOOLBOX_JOB" else e for e in sidecar.get("env") or []]
    return sync_on_node_zero({**sidecar, "env": env}, [label], '"$KUBE_TOOLBOX_REPLICA" = master')


def text(obj: Mapping[str, Any]) -> str:
    return NOTE + yamltext.document(dict(obj))


def as_job(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A PyTorchJob as a Job: Succeeded -> Complete, Failed -> Failed, Running/Restarting -> active; the Master's
    pod template, the run policy's suspend. `kind` stays PyTorchJob, so that deletion and replacement use it."""
    spec = obj.get("spec") or {}
    found = obj.get("status") or {}
    names = {"Succeeded": "Complete", "Failed": "Failed"}
    conditions = [{**c, "type": names[c["type"]]} for c in found.get("conditions") or []
                  if c.get("type") in names and c.get("status") == "True"]
    running = any(c.get("type") in ("Running", "Restarting") and c.get("status") == "True"
                  for c in found.get("conditions") or [])
    status: dict[str, Any] = {"conditions": conditions, **({"active": 1} if running and not conditions else {})}
    master = (spec.get("pytorchReplicaSpecs") or {}).get("Master") or {}
    view_spec: dict[str, Any] = {"template": master.get("template") or {}}
    if (spec.get("runPolicy") or {}).get("suspend"):
        view_spec["suspend"] = True
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": obj.get("metadata") or {}, "spec": view_spec,
            "status": status}


def node_rank(labels: Mapping[str, str]) -> int | None:
    """The node a PyTorchJob pod is: Master is 0, Worker i is i + 1 (None for other pods)."""
    kind, index = labels.get(TYPE_LABEL), labels.get(INDEX_LABEL, "")
    if kind not in ("master", "worker") or not index.isdigit():
        return None
    return int(index) + (kind == "worker")
