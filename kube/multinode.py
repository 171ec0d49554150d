"""A cell on several nodes, pure: its rules, its names, its nodes' environment, the wait for node 0, its Job's
fields and its headless Service.

`nodes: N` makes a cell one Indexed Job with N completions, all running at once, and a headless Service that
gives each pod a stable DNS name, `<job>-<index>.<service>`: node 0's is `MASTER_ADDR`. Before the command
starts, every node waits (at most `rendezvous_timeout`) until that name resolves. `engine: pytorchjob` renders
the same cell as a PyTorchJob instead (kube/pytorchjob.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from . import ownership, podspec
from .errors import ConfigError
from .naming import MAX_NAME, sanitize
from .settings import RunSettings

ANNOTATION_NODES = "kube-toolbox/nodes"       # on a cell's Job or PyTorchJob: how many nodes it runs on
CHECKPOINT_SIDECAR = "checkpoint"             # the native sidecar that syncs $CHECKPOINT_DIR (kube/checkpoints.py)
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SUCCESS_POLICY_SINCE = (1, 33)                # successPolicy is GA (and on by default) from Kubernetes 1.33
ENV_NAMES = ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE")
SUCCESS_NOTE = ("# successPolicy (the cell succeeds when node 0 does) needs Kubernetes 1.33 or later: `make job` "
                "leaves it\n# out on older servers, where the cell succeeds once every node has.\n")
SERVICE_NOTE = ("# The nodes' names, <job>-<index>.<service>. `make job` creates it right after the Job, owned by "
                "it (deleted\n# with it) and selecting only that Job's pods (ownerReferences and the selector get "
                "the Job's uid).\n")


def is_multinode(s: RunSettings) -> bool:
    """Cells with more than one node, and every PyTorchJob (a Master alone is one too)."""
    return s.nodes > 1 or s.engine == "pytorchjob"


def check(s: RunSettings, source: str, key_path: str, project_name: str = "") -> None:
    """Settings that have no meaning for a cell on several nodes are refused, saying why."""
    if not is_multinode(s):
        return
    if s.engine == "pytorchjob" and not (sanitize(s.prefix) or project_name or "x")[:1].isalpha():
        raise ConfigError(source, f"{key_path}engine", "pytorchjob needs cell names that start with a letter (they "
                          "start with prefix, else project_name); set a prefix: that does")
    why = f"nodes: {s.nodes}" if s.nodes > 1 else "engine: pytorchjob"
    if s.max_parallel:
        raise ConfigError(source, f"{key_path}max_parallel", f"cannot be used with {why} (such a cell is a Job "
                          f"of its own that runs all its nodes at once); remove max_parallel for it")
    if s.shared > 1:
        raise ConfigError(source, f"{key_path}shared", f"cannot be used with {why} (packed cells would share one "
                          f"node rank and one rendezvous port); keep shared: 1 for it")


def name_limit(s: RunSettings) -> int:
    """The longest cell name: a pod's host name `<job>-<index>` (PyTorchJob: `<job>-worker-<i>`) has at most 63."""
    if not is_multinode(s):
        return MAX_NAME
    if s.engine == "pytorchjob":
        return MAX_NAME - len("-worker-") - len(str(max(s.nodes - 2, 0)))
    return MAX_NAME - 1 - len(str(s.nodes - 1))


def nproc_per_node(s: RunSettings) -> int:
    """Processes per node for torchrun: one per GPU, at least one."""
    return max(s.gpu_count, 1)


def master_addr(job: str) -> str:
    """Node 0's DNS name: its pod's host name in the Service's subdomain (resolved through the search path)."""
    return f"{job}-0.{ownership.service_name(job)}"


def env(s: RunSettings, job: str) -> list[dict[str, Any]]:
    """The nodes' variables in the pod spec; with a PyTorchJob the training operator sets the master's address
    and port and RANK (which the startup reads as NODE_RANK)."""
    nproc = nproc_per_node(s)
    out: list[dict[str, Any]] = [{"name": "NNODES", "value": str(s.nodes)}]
    if s.engine != "pytorchjob":
        out.append({"name": "NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}})
    out.append({"name": "NPROC_PER_NODE", "value": str(nproc)})
    if s.engine != "pytorchjob":
        out += [{"name": "MASTER_ADDR", "value": master_addr(job)}, {"name": "MASTER_PORT", "value": str(s.master_port)},
                {"name": "WORLD_SIZE", "value": str(s.nodes * nproc)}]
    return out


def local_env(s: RunSettings) -> dict[str, str]:
    """`make local` runs a cell as one node of itself, on this machine."""
    nproc = nproc_per_node(s)
    return {"NNODES": "1", "NODE_RANK": "0", "NPROC_PER_NODE": str(nproc), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(s.master_port), "WORLD_SIZE": str(nproc)}


def local_note(s: RunSettings) -> str:
    """The header line of a local run of a multi-node cell (empty for the others)."""
    if not is_multinode(s):
        return ""
    values = " ".join(f"{k}={v}" for k, v in local_env(s).items())
    return f"One node here of nodes: {s.nodes}: {values}\n"


def wait_script(s: RunSettings) -> str:
    """Bash run before the command: node 0's name must resolve (its pod exists) within rendezvous_timeout, else
    one line and exit 1, which fails the cell instead of holding its GPUs."""
    limit = s.rendezvous_timeout
    first = "export NODE_RANK=\"$RANK\" WORLD_SIZE=$((NNODES * NPROC_PER_NODE))\n" if s.engine == "pytorchjob" else ""
    return first + f"""\
kube_toolbox_lookup() {{
  if command -v getent >/dev/null 2>&1; then set -- getent hosts "$1"
  else set -- python3 -c 'import socket, sys; socket.getaddrinfo(sys.argv[1], None)' "$1"; fi
  if command -v timeout >/dev/null 2>&1; then timeout "$kube_toolbox_left" "$@"; else "$@"; fi
}}
kube_toolbox_deadline=$(( $(date +%s) + {limit} ))
while :; do
  kube_toolbox_left=$(( kube_toolbox_deadline - $(date +%s) ))
  if [ "$kube_toolbox_left" -le 0 ]; then
    echo "kube-toolbox: node $NODE_RANK: node 0's address $MASTER_ADDR did not resolve within {limit} s \
(rendezvous_timeout); is node 0's pod running? (make status)" >&2
    exit 1
  fi
  kube_toolbox_lookup "$MASTER_ADDR" >/dev/null 2>&1 && break
  sleep 1
done
"""


def job_fields(s: RunSettings) -> dict[str, Any]:
    """All nodes at once, one index each; a disruption restarts that node's pod, any non-zero exit of the command
    fails the cell at once (fail_fast is implied); the cell succeeds when node 0 does."""
    if s.engine == "pytorchjob":
        return podspec.job_fields(s, None)
    single = podspec.job_fields(dataclasses.replace(s, fail_fast=True), None)
    return {"completionMode": "Indexed", "completions": s.nodes, "parallelism": s.nodes, **single,
            "successPolicy": {"rules": [{"succeededIndexes": "0"}]}}


def values(shared: Mapping[str, Any], job: str, s: RunSettings) -> dict[str, Any]:
    """A cell's template values (kube/render.py) turned into its nodes' ones."""
    out = dict(shared)
    out["env"] = [*shared["env"], *env(s, job)]
    out["startup"] = shared["startup"] + wait_script(s)
    out["job_extra"] = job_fields(s)
    if s.engine != "pytorchjob":
        rank = {"name": "NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}
        inits = [sync_on_node_zero(c, [rank], '"$NODE_RANK" = 0') if c.get("name") == CHECKPOINT_SIDECAR else c
                 for c in shared["pod_extra"].get("initContainers") or []]
        out["pod_extra"] = {**shared["pod_extra"], **({"initContainers": inits} if inits else {}),
                            "subdomain": ownership.service_name(job)}
    return out


def sync_on_node_zero(sidecar: Mapping[str, Any], env_more: list[dict], test: str) -> dict[str, Any]:
    """The checkpoint sidecar of a cell on several nodes: every node restores the cell's checkpoints before its
    command, but only node 0 (`test`) syncs its $CHECKPOINT_DIR back, so that the nodes never write the same keys;
    elsewhere it idles until the pod stops."""
    idle = (f"if ! [ {test} ]; then        # only node 0 syncs the cell's checkpoints\n"
            f"  trap 'exit 0' TERM; while :; do sleep 5 & wait $!; done\nfi\n")
    command = list(sidecar["command"])
    command[-1] = idle + command[-1]
    return {**sidecar, "command": command, "env": [*sidecar.get("env", []), *env_more]}


def service(namespace: str, job: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The headless Service of a cell: addresses even before pods are ready, so that the rendezvous can start."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": ownership.service_name(job), "namespace": namespace, "labels": dict(labels)},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": ownership.node_selector(job)}}


def bind(service_obj: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """The Service as `make job` creates it once its Job exists: owned by the Job, selecting its pods only."""
    meta = dict(service_obj["metadata"])
    meta["ownerReferences"] = [ownership.owner_reference(job)]
    spec = {**service_obj["spec"], "selector": ownership.node_selector(job["metadata"]["name"],
                                                                       job["metadata"]["uid"])}
    return {**service_obj, "metadata": meta, "spec": spec}


def nodes_of(obj: Mapping[str, Any] | None) -> int:
    """How many nodes the cell of a Job or PyTorchJob runs on (0 when it is not one of the toolbox's such cells)."""
    text = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_NODES) or ""
    return int(text) if text.isdigit() else 0


def older_than_success_policy(version: tuple[int, int]) -> bool:
    return version < SUCCESS_POLICY_SINCE
