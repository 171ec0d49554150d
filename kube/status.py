"""Sweep status, pure: classify each cell from the Job, Pod and Event objects of a few list calls."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from . import objects
from .settings import Run
from .provenance import from_annotations
from .workloads import ANNOTATION_CELLS, cell_id, holders, parse_indexes

JobState = Literal["not submitted", "pending", "running", "succeeded", "failed"]
STATES: tuple[JobState, ...] = ("not submitted", "pending", "running", "succeeded", "failed")
GPU_LABEL = "nvidia.com/gpu.product"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def newest(items: Iterable[Any], meta: Callable[[Any], Mapping[str, Any]] = _metadata) -> Any:
    """The most recently created of some objects (or of items whose `meta` is an object's metadata); None if none."""
    items = list(items)
    return max(items, key=lambda i: meta(i).get("creationTimestamp") or "") if items else None


@dataclass(frozen=True)
class Cell:
    name: str
    model: str
    dataset: str
    state: str
    age: float | None = None        # seconds since the job was created
    node: str = ""
    gpu: str = ""
    reason: str = ""
    commit: str = ""
    stale: bool = False             # ran code older than HEAD, or a dirty tree
    job: str = ""                   # the Job that holds the cell (its own, or a packed or array Job)
    index: int | None = None        # the cell's completion index in an array Job
    overrides: str = ""             # the `set=` overrides its job was submitted with
    stage: str = ""                 # a pipeline's current stage and its place: `train 2/4` (kube/stages.py)
    restarts: int = 0               # pods started again after a disruption (preemption, eviction) or a requeue


def restarts(pods: Sequence[Mapping[str, Any]], requeue_code: int | None) -> int:
    """Pods of a cell that ended by a disruption (the DisruptionTarget condition) or by the requeue exit status:
    each was followed by a new pod that went on from the checkpoint."""
    count = 0
    for pod in pods:
        st = objects.status(pod)
        disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                        for c in st.get("conditions") or [])
        codes = {((c.get("state") or {}).get("terminated") or {}).get("exitCode")
                 for c in st.get("containerStatuses") or [] if c.get("name") == "main"}
        count += disrupted or (requeue_code is not None and requeue_code in codes)
    return count


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _unschedulable(message: str) -> str:
    """`0/12 nodes are available: 3 Insufficient nvidia.com/gpu, 9 node(s) didn't match ...` in a few words."""
    found = [f.rstrip(".") for f in re.findall(r"Insufficient ([\w./-]+)", message)]
    if found:
        return "Unschedulable: insufficient " + ", ".join(dict.fromkeys(found))
    if "affinity" in message or "selector" in message:
        return "Unschedulable: affinity matches no node"
    if "taint" in message:
        return "Unschedulable: untolerated taint"
    return "Unschedulable" + (f": {message[:60]}" if message else "")


def pod_reason(pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()) -> str:
    """Why a pod is not running or why it failed, in a few words."""
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        term = state.get("terminated") or last.get("terminated")
        if term and (term.get("exitCode") or term.get("reason") == "OOMKilled"):
            if term.get("reason") == "OOMKilled":
                return "OOMKilled"
            return f"exit code {term.get('exitCode')}" + (f" ({term['reason']})" if term.get("reason")
                                                           not in (None, "Error") else "")
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return waiting["reason"]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return _unschedulable(cond.get("message") or "")
    if status.get("reason"):                      # Evicted, DeadlineExceeded...
        return status["reason"]
    for event in reversed(events):
        if event.get("reason") == "FailedScheduling":
            return _unschedulable(event.get("message") or "")
        if event.get("type") == "Warning" and event.get("reason"):
            return event["reason"]
    return ""


def job_state(job: Mapping[str, Any]) -> tuple[JobState, str]:
    """A Job's state from its conditions and counters, and the reason the Job gives for a failure."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded", ""
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "failed", cond.get("reason") or ""
    if status.get("succeeded"):
        return "succeeded", ""
    if status.get("ready") or status.get("active"):
        return "running", ""
    return "pending", ""


def classify(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]],
             events: Sequence[Mapping[str, Any]], node_gpus: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """State, age, node, GPU and reason of one cell."""
    if job is None:
        return {"state": "not submitted"}
    state, reason = job_state(job)
    created = _time((job.get("metadata") or {}).get("creationTimestamp"))
    pod = newest(pods)
    node = gpu = ""
    if pod is not None:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        gpu = node_gpus.get(node, "")
        phase = (pod.get("status") or {}).get("phase")
        name = (pod.get("metadata") or {}).get("name")
        pod_events = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
        if state == "running" and phase == "Pending":
            state = "pending"
        if state in ("pending", "failed"):
            reason = pod_reason(pod, pod_events) or reason
        if state == "running":
            waiting = pod_reason(pod, pod_events)
            reason = waiting if waiting in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull") else ""
    return {"state": state, "age": (now - created).total_seconds() if created else None, "node": node,
            "gpu": gpu, "reason": reason}


def index_of(pod: Mapping[str, Any]) -> str | None:
    meta = pod.get("metadata") or {}
    return ((meta.get("labels") or {}).get(INDEX_KEY) or (meta.get("annotations") or {}).get(INDEX_KEY))


def _packed_code(pod: Mapping[str, Any] | None, cell: str) -> int | None:
    """A packed cell's exit code, from the `name=code` lines its pod left as termination message."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        message = ((cs.get("state") or {}).get("terminated") or {}).get("message") or ""
        for line in message.splitlines():
            name, _, code = line.partition("=")
            if name == cell and code.strip().lstrip("-").isdigit():
                return int(code)
    return None


def classify_unit(job: Mapping[str, Any], index: int | None, cell: str, pods: Sequence[Mapping[str, Any]],
                  events: Sequence[Mapping[str, Any]], node_gpus: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """One cell of a packed Job or of an Indexed (array) Job: its index, its pod, its own exit code."""
    status = job.get("status") or {}
    if index is not None:
        pods = [p for p in pods if index_of(p) == str(index)]
    info = classify(job, pods, events, node_gpus, now)
    if index is not None:
        if index in parse_indexes(status.get("completedIndexes")):
            info.update(state="succeeded", reason="")
        elif index in parse_indexes(status.get("failedIndexes")):
            pod = newest(pods)
            info.update(state="failed", reason=(pod_reason(pod) if pod else "") or "failed")
        elif info["state"] == "succeeded":          # the Job may be complete only once every index is
            info.update(state="running" if pods else "pending")
        elif info["state"] not in ("failed",) and not pods:
            info.update(state="pending", reason="Suspended (waiting for admission)" if job.get("spec", {})
                        .get("suspend") else info.get("reason", ""))
    code = _packed_code(newest(pods), cell)
    if code is not None:
        info.update(state="succeeded" if code == 0 else "failed", reason="" if code == 0 else f"exit code {code}")
    return info


def cells(runs: Sequence[Run], jobs: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
          events: Sequence[Mapping[str, Any]], node_gpus: Mapping[str, str], head: str | None,
          now: datetime | None = None) -> tuple[list[Cell], list[Cell]]:
    """(cells of the grid in grid order, jobs on the cluster that are no longer in the grid).

    A cell is found in the Job of its own name, or in the `kube-toolbox/cells` annotation of a packed or
    array Job; when several hold it (a resubmission), the newest one tells its state.
    """
    now = now or datetime.now(timezone.utc)
    by_job: dict[str, list] = {}
    for pod in pods:
        labels = objects.labels(pod)
        owner = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name")
        if owner:
            by_job.setdefault(owner, []).append(pod)
    jobs_by_name = {objects.name(j): j for j in jobs}
    held = holders(jobs)
    events_of: dict[str, list] = {}
    for event in events:
        events_of.setdefault(str((event.get("involvedObject") or {}).get("name") or ""), []).append(event)

    def cell(name: str, model: str, dataset: str, requeue_code: int | None = None) -> Cell:
        found = ([(jobs_by_name[name], None)] if name in jobs_by_name else []) + held.get(cell_id(name), [])
        job, index = newest(found, lambda f: objects.meta(f[0])) or (None, None)
        job_name = objects.name(job) if job is not None else ""
        job_pods = by_job.get(job_name, [])
        job_events = [e for p in job_pods for e in events_of.get(objects.name(p), ())]
        if job is not None and job_name != name:
            info = classify_unit(job, index, name, job_pods, job_events, node_gpus, now)
        else:
            info = classify(job, job_pods, job_events, node_gpus, now)
        prov = from_annotations(objects.annotations_of(job) if job is not None else None)
        stale = bool(job) and prov.commit is not None and (prov.dirty or (head is not None and prov.commit != head))
        return Cell(name=name, model=model, dataset=dataset, commit=(prov.commit or "")[:8], stale=stale,
                    job=job_name, index=index, overrides=prov.overrides or "",
                    restarts=restarts(job_pods if index is None else [p for p in job_pods
                                                                     if index_of(p) == str(index)], requeue_code),
                    **info)

    grid = [cell(r.name, r.model, r.dataset, r.settings.requeue_exit_code) for r in runs]
    in_grid = {r.name for r in runs}
    ids = {cell_id(r.name) for r in runs}
    orphans = []
    for name, job in jobs_by_name.items():
        units = objects.annotations_of(job).get(ANNOTATION_CELLS) or ""
        if name not in in_grid and not ids & set(units.replace("+", " ").split()):
            labels = objects.labels(job)
            orphans.append(cell(name, labels.get("model", "?"), labels.get("dataset", "?")))
    return grid, orphans
