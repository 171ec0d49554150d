"""The cluster side of cells on several nodes: what the server offers (its version, the PyTorchJob API), each
cell's Service after its Job, PyTorchJobs and their pods read as Jobs and pods, one node's pod, the nodes in
`make status`, and what `make delete` removes besides Jobs.

Like kube/operations.py, nothing here prints; every check that can refuse runs before anything is created.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Mapping, Sequence

import yaml

from . import multinode, objects, pytorchjob, status
from .cluster import Gateway, ObjectKind
from .errors import AlreadyExists, ClusterError, NotFound, UsageError
from .ownership import require_owned, selector
from .render import Rendered
from .settings import Project, Run

MISSING_API = ("engine: pytorchjob needs the PyTorchJob API (kubeflow.org/v1 pytorchjobs), which this cluster does "
               "not serve: install the Kubeflow training operator, or use engine: job")


def uses_pytorchjob(runs: Sequence[Run]) -> bool:
    return any(r.settings.engine == "pytorchjob" for r in runs)


def engine_jobs(gw: Gateway, project: Project, runs: Sequence[Run], required: bool) -> list[dict]:
    """The user's PyTorchJobs as Jobs (kube/pytorchjob.py), when the grid has such cells; `required`: a cluster
    without the API is an error naming it (`make job`), else there are none (`make status`)."""
    if not uses_pytorchjob(runs):
        return []
    if not gw.serves("PyTorchJob"):
        if required:
            raise ClusterError(MISSING_API, 404)
        return []
    return [pytorchjob.as_job(j) for j in gw.list("PyTorchJob", selector(project))]


def prepare(gw: Gateway, jobs: Sequence[Rendered]) -> None:
    """Before the first create: on a server older than successPolicy, the Jobs go without it (one version call)."""
    with_policy = [j for j in jobs if j.kind == "Job" and "successPolicy" in (j.manifest.get("spec") or {})]
    if with_policy and multinode.older_than_success_policy(gw.version()):
        for job in with_policy:
            job.manifest["spec"].pop("successPolicy")


def create_companions(gw: Gateway, project: Project, job: Rendered, created: Mapping[str, Any],
                      wait: float = 60.0) -> None:
    """The Service of a multi-node cell, once its Job exists (`created`, with its uid). A Service of that name left
    by the Job it replaces is deleted (the garbage collector may not have got to it yet), then created again."""
    for text in job.companions:
        wanted = multinode.bind(yaml.safe_load(text), created)
        name, uid = wanted["metadata"]["name"], created["metadata"]["uid"]
        deadline = time.monotonic() + wait
        while True:
            try:
                gw.create(wanted)
                break
            except AlreadyExists:
                current = gw.get("Service", name)
                require_owned(current, project, f"Service '{name}'")
                if any(o.get("uid") == uid for o in objects.owners(current)):
                    break                                    # a retried create that went through
                if time.monotonic() > deadline:
                    raise
                try:
                    gw.delete("Service", name, uid=objects.uid(current))
                except NotFound:
                    pass
                time.sleep(0.5)


def current(gw: Gateway, kind: ObjectKind, name: str) -> dict | None:
    """The Job or PyTorchJob (as a Job) of that name, or None."""
    try:
        found = gw.get(kind, name)
    except NotFound:
        return None
    return pytorchjob.as_job(found) if kind == "PyTorchJob" else found


def cell_pods(gw: Gateway, kind: ObjectKind, name: str) -> list[Mapping[str, Any]]:
    """The pods of a cell's Job or PyTorchJob (those of a PyTorchJob read as a Job's)."""
    label = pytorchjob.JOB_NAME_LABEL if kind == "PyTorchJob" else "job-name"
    return [pod_view(p) for p in gw.list("Pod", f"{label}={name}")]


def find_engine_job(gw: Gateway, name: str) -> dict | None:
    """The PyTorchJob of that name as a Job, or None (none there, or a cluster without the API)."""
    try:
        return pytorchjob.as_job(gw.get("PyTorchJob", name))
    except NotFound:
        return None
    except ClusterError as err:
        if err.status == 403:
            return None
        raise


def pod_view(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PyTorchJob's pod as a Job's: `job-name` and the completion index (its node rank); others unchanged."""
    labels = objects.labels(pod)
    job, rank = labels.get(pytorchjob.JOB_NAME_LABEL), pytorchjob.node_rank(labels)
    if not job or rank is None or labels.get("job-name"):
        return pod
    meta = dict(objects.meta(pod))
    meta["labels"] = {**labels, "job-name": job}
    meta["annotations"] = {**objects.annotations_of(pod), status.INDEX_KEY: str(rank)}
    return {**pod, "metadata": meta}


def node_pod(gw: Gateway, job: Mapping[str, Any], node: int) -> dict:
    """The newest pod of node `node` of a multi-node cell's Job or PyTorchJob."""
    name, count = objects.name(job), multinode.nodes_of(job)
    if not 0 <= node < count:
        raise UsageError(f"node={node}: cell '{name}' runs on {count} node{'s' if count != 1 else ''}; expected "
                         f"node=0..{count - 1}")
    uid = objects.uid(job)
    pods = [p for p in cell_pods(gw, "PyTorchJob" if job.get("kind") == pytorchjob.KIND else "Job", name)
            if not uid or any(o.get("uid") == uid for o in objects.owners(p)) or not objects.owners(p)]
    mine = [p for p in pods if status.index_of(p) == str(node)]
    if not mine:
        raise ClusterError(f"node {node} of '{name}' has no pod (still pending creation, or cleaned up)")
    return dict(status.newest(mine))


def container_of(pod: Mapping[str, Any]) -> str:
    """The container running the cell: `main`, or `pytorch` in a PyTorchJob's pod."""
    names = [c.get("name") for c in objects.spec(pod).get("containers") or []]
    return pytorchjob.CONTAINER if pytorchjob.CONTAINER in names and "main" not in names else "main"


def _ready(pod: Mapping[str, Any]) -> bool:
    found = objects.status(pod)
    return found.get("phase") == "Running" and any(c.get("type") == "Ready" and c.get("status") == "True"
                                                   for c in found.get("conditions") or [])


def _exit_code(pod: Mapping[str, Any]) -> int:
    for cs in objects.status(pod).get("containerStatuses") or []:
        code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
        if code:
            return int(code)
    return 0


def node_notes(cells: Sequence[status.Cell], jobs: Sequence[Mapping[str, Any]],
               pods: Sequence[Mapping[str, Any]]) -> list[status.Cell]:
    """Cells on several nodes say `nodes ready/total` while they wait or run, and which node failed a failed one."""
    by_name = {objects.name(j): j for j in jobs}
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        by_job.setdefault(objects.labels(pod).get("job-name", ""), []).append(pod)
    out = []
    for cell in cells:
        count = multinode.nodes_of(by_name.get(cell.job)) if cell.job == cell.name else 0
        if not count or cell.state not in ("pending", "running", "failed"):
            out.append(cell)
            continue
        latest: dict[str, Mapping[str, Any]] = {}
        for pod in sorted(by_job.get(cell.job, []), key=objects.created):
            latest[status.index_of(pod) or ""] = pod
        if cell.state == "failed":
            first = _failed_node(by_name[cell.job], latest)
            reason = f"node {first}: {status.pod_reason(latest[first])}" if first is not None else cell.reason
            out.append(dataclasses.replace(cell, reason=reason))
            continue
        ready = sum(_ready(p) for p in latest.values())
        why = next((w for w in (status.pod_reason(p) for p in latest.values() if not _ready(p)) if w), "")
        out.append(dataclasses.replace(cell, state="running" if ready == count else "pending",
                                       reason=f"nodes {ready}/{count} ready" + (f"; {why}" if why else "")))
    return out


def _failed_node(job: Mapping[str, Any], latest: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The node whose exit failed the cell: the index the Job's Failed condition names, else the first node that
    exited by itself (1-127, not killed afterwards by a signal), else the first that exited non-zero."""
    for cond in objects.status(job).get("conditions") or []:
        found = re.search(r"at index (\d+)", cond.get("message") or "") if cond.get("type") == "Failed" else None
        if found and found.group(1) in latest:
            return found.group(1)
    broken = sorted((not 0 < _exit_code(p) < 128, _finished(p), int(i) if i.isdigit() else 0, i)
                    for i, p in latest.items() if _exit_code(p))
    return broken[0][-1] if broken else None


def _finished(pod: Mapping[str, Any]) -> str:
    for cs in objects.status(pod).get("containerStatuses") or []:
        return str(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")
    return ""


def owned_extras(gw: Gateway, project: Project) -> tuple[list[dict], list[dict]]:
    """The user's PyTorchJobs (as Jobs; none where the API is not served or may not be read) and Services."""
    try:
        engines = [pytorchjob.as_job(j) for j in gw.list("PyTorchJob", selector(project))]
    except ClusterError as err:
        if err.status not in (403, 404):
            raise
        engines = []
    return engines, gw.list("Service", selector(project))


def leftover_services(services: Sequence[Mapping[str, Any]], surviving: set[str]) -> list[Mapping[str, Any]]:
    """Services owned by no Job that stays (its Job is deleted now, or was before)."""
    return [s for s in services if not {o.get("uid") for o in objects.owners(s)} & surviving]
