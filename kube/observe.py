"""Looking at a sweep: the state of every cell (a few paged lists), the pod running one cell, its sidecar port.

Like kube/operations.py, nothing here prints: launch.py shows what these functions return.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import distributed, multinode, objects, ownership, provenance, stages, status, workloads
from .cluster import Gateway
from .errors import ClusterError, NotFound, UsageError
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
        nodes = gw.list("Node", namespaced=False,
                        shape=lambda n: (objects.name(n), objects.labels(n).get(status.GPU_LABEL, "")))
    except ClusterError as err:
        if err.status == 403:
            return {}
        raise
    return dict(nodes)


def pod_events(gw: Gateway, pods: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Events, only when a pending pod has no reason of its own (a scheduler's message lives in an Event):
    for a few such pods, theirs alone; for many, the namespace's pod events in one list."""
    quiet = [objects.name(p) for p in pods
             if objects.status(p).get("phase") == "Pending" and not status.pod_reason(p)]
    if not quiet:
        return []
    if len(quiet) > 5:
        return gw.list("Event", field_selector="involvedObject.kind=Pod")
    return [e for name in quiet for e in gw.list("Event", field_selector=f"involvedObject.kind=Pod,"
                                                                          f"involvedObject.name={name}")]


def collect_status(gw: Gateway, project: Project, runs: Sequence[Run]) -> StatusReport:
    """Jobs, pods and nodes listed at once (a call per 500 objects, pages read as they arrive, each object
    slimmed to what status reads), then events only if a pending pod needs them."""
    sel, flat = selector(project), stages.flatten(runs)
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = pool.submit(gw.list, "Job", sel, shape=objects.slim_job)
        pods = pool.submit(gw.list, "Pod", sel, shape=objects.slim_pod)
        gpus = pool.submit(node_gpus, gw)
        engines = pool.submit(distributed.engine_jobs, gw, project, flat, False)     # PyTorchJobs, if used
        found_pods = [distributed.pod_view(p) for p in pods.result()]
        events = pod_events(gw, found_pods)
        head = provenance.read(project.root).commit
        found_jobs = [j for j in jobs.result() if not ownership.is_driver(j)] + engines.result()   # no driver
        cells, orphans = status.cells(flat, found_jobs, found_pods, events, gpus.result(), head)
    return StatusReport(stages.fold(runs, distributed.node_notes(cells, found_jobs, found_pods)), orphans, gw.calls)


def cell_pod(gw: Gateway, project: Project, name: str, node: int = 0) -> dict:
    """The newest pod running a cell: of the Job of that name (of its node `node` when the cell runs on several),
    of its PyTorchJob, or of the packed/array Job holding the cell. The Job's owner is checked first."""
    try:
        job: dict | None = gw.get("Job", name)
    except NotFound:
        job = distributed.find_engine_job(gw, name)
    if job is not None and multinode.nodes_of(job):
        require_owned(job, project, f"{job.get('kind', 'Job')} '{name}'")
        return distributed.node_pod(gw, job, node)
    if node:
        raise UsageError(f"node={node}: cell '{name}' runs on one node; expected node=0")
    index = None
    if job is None:
        listed = gw.list("Job", selector(project))
        cid = workloads.cell_id(name)              # a packed or array Job holding it, else its newest stage's
        held = workloads.holders(listed).get(cid)
        staged = [j for j in listed if objects.labels(j).get(ownership.CELL) == cid]
        if not held and not staged:
            raise ClusterError(f"job '{name}' not found (not submitted, or deleted)", 404)
        job, index = status.newest(held, lambda h: h[0]["metadata"]) if held else \
            (max(staged, key=lambda j: (objects.created(j), status.job_state(j)[0] != "succeeded")), None)
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
