"""Looking at a sweep: the state of every cell (a few paged lists), the pod running one cell, its sidecar port.

Like kube/operations.py, nothing here prints: launch.py shows what these functions return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import provenance, status, workloads
from .cluster import Gateway
from .errors import ClusterError, NotFound
from .ownership import require_owned, selector
from .settings import Project, Run


@dataclass(frozen=True)
class StatusReport:
    cells: list[status.Cell]
    orphans: list[status.Cell]
    calls: int


def node_gpus(gw: Gateway) -> dict[str, str]:
    """GPU product per node; namespace-only users may not list nodes: then the column stays empty."""
    try:
        nodes = gw.list("Node", namespaced=False)
    except ClusterError as err:
        if err.status == 403:
            return {}
        raise
    return {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(status.GPU_LABEL, "") for n in nodes}


def collect_status(gw: Gateway, project: Project, runs: Sequence[Run]) -> StatusReport:
    """One paged list per kind (jobs, pods, pod events, nodes): a call per 500 objects, whatever the grid."""
    sel = selector(project)
    jobs = gw.list("Job", sel)
    pods = gw.list("Pod", sel)
    events = gw.list("Event", field_selector="involvedObject.kind=Pod")
    head = provenance.read(project.root).commit
    cells, orphans = status.cells(runs, jobs, pods, events, node_gpus(gw), head)
    return StatusReport(cells, orphans, gw.calls)


def cell_pod(gw: Gateway, project: Project, name: str) -> dict:
    """The newest pod running a cell: of the Job of that name, or of the packed/array Job holding the cell.
    The Job's owner is checked first."""
    try:
        job: dict | None = gw.get("Job", name)
    except NotFound:
        job = None
    index = None
    if job is None:
        held = workloads.holders(gw.list("Job", selector(project))).get(workloads.cell_id(name))
        if not held:
            raise ClusterError(f"job '{name}' not found (not submitted, or deleted)", 404)
        job, index = status.newest(held, lambda h: h[0]["metadata"])
    require_owned(job, project, f"Job '{job['metadata']['name']}'")
    job_name, uid = job["metadata"]["name"], job["metadata"].get("uid")
    pods = [p for p in gw.list("Pod", f"job-name={job_name}")
            if not uid or any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])
            or not p["metadata"].get("ownerReferences")]
    if index is not None:
        pods = [p for p in pods if status.index_of(p) == str(index)]
    if not pods:
        where = f"index {index} of job '{job_name}'" if index is not None else f"job '{job_name}'"
        raise ClusterError(f"{where} has no pod (still pending creation, or cleaned up)")
    return status.newest(pods)


def server_port(pod: Mapping[str, Any]) -> int:
    """The port of the `server:` sidecar of a pod."""
    for container in (pod.get("spec") or {}).get("initContainers") or []:
        if container.get("name") == "server":
            for port in container.get("ports") or []:
                return int(port["containerPort"])
    raise ClusterError(f"pod '{pod['metadata']['name']}' has no server sidecar (set server: {{command, port}})")
