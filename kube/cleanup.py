"""`make delete` and `make clean_jobs`, as typed functions: list what the user owns once, decide, delete.

Nothing here prints; launch.py confirms with the user and shows each result.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from . import distributed, objects, status
from .cluster import Gateway
from .errors import ClusterError, NotFound
from .ownership import selector
from .settings import Project

WORKERS = 8


@dataclass(frozen=True)
class Target:
    kind: Literal["Job", "Pod", "Secret", "ConfigMap", "Service", "PyTorchJob"]
    name: str
    uid: str | None = None
    version: str | None = None           # a Secret's or ConfigMap's resourceVersion when it was listed


KEPT = "in use again"                    # a Secret/ConfigMap that `make job` used after the listing: kept


@dataclass
class DeleteReport:
    deleted: list[Target] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kept: list[Target] = field(default_factory=list)


def _owned_by_job(pod: Mapping[str, Any]) -> bool:
    return any(o.get("kind") in ("Job", "PyTorchJob") for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def _target(kind: Any, obj: Mapping[str, Any]) -> Target:
    meta = obj.get("metadata") or {}
    extra = kind in ("Secret", "ConfigMap")
    return Target(kind, meta["name"], meta.get("uid"), meta.get("resourceVersion") if extra else None)


@dataclass(frozen=True)
class Owned:
    """The user's Secrets, ConfigMaps, Jobs and Pods of this project, listed once (one label selector each), and
    with the Jobs, the PyTorchJobs (as Jobs) and the Services of cells on several nodes."""

    jobs: list[dict]
    pods: list[dict]
    extras: list[Target] = field(default_factory=list)
    engines: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)


def list_owned(gw: Gateway, project: Project, jobs: bool = True) -> Owned:
    """The toolbox's Secrets and ConfigMaps are listed first, then the Jobs and Pods. With `make job` running
    at the same time this order converges: a Job created after our Job list was created before `make job` used
    its Secret/ConfigMap again (kube/operations.py touches them after creating Jobs), which changes their
    resourceVersion, so the delete (preconditioned on the listed version) leaves them."""
    sel = selector(project)
    extras: list[Target] = []
    if jobs:
        prefix = f"{project.project_name}-"
        for kind, infixes in (("Secret", ("-env-",)), ("ConfigMap", ("-files-", "-cells-"))):
            for obj in gw.list(kind, sel, shape=objects.slim_meta):          # type: ignore[arg-type]
                name = objects.name(obj)
                if name.startswith(prefix) and any(i in name for i in infixes):
                    extras.append(_target(kind, obj))
    engines, services = distributed.owned_extras(gw, project) if jobs else ([], [])
    return Owned(gw.list("Job", sel, shape=objects.slim_job) if jobs else [],
                 gw.list("Pod", sel, shape=objects.slim_pod), extras, engines, services)


def find_owned(owned: Owned, kind: Literal["job", "pod", "all"], failed_only: bool = False) -> list[Target]:
    """What `make delete` removes: the user's Jobs (failed ones only, for clean-jobs) and standalone Pods."""
    jobs, engines = (owned.jobs, owned.engines) if kind in ("job", "all") else ([], [])
    if failed_only:
        jobs = [j for j in jobs if status.job_state(j)[0] == "failed"]
        engines = [j for j in engines if status.job_state(j)[0] == "failed"]
    pods = [p for p in owned.pods if not _owned_by_job(p)] if kind in ("pod", "all") else []
    gone = {objects.uid(j) for j in jobs + engines}
    surviving = {str(objects.uid(j)) for j in owned.jobs + owned.engines if objects.uid(j) not in gone}
    services = distributed.leftover_services(owned.services, surviving) if kind in ("job", "all") else []
    return [_target("Job", j) for j in jobs] + [_target("PyTorchJob", j) for j in engines] + \
        [_target("Service", s) for s in services] + [_target("Pod", p) for p in pods]


def _referenced(workload: Mapping[str, Any]) -> set[str]:
    spec = workload.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    names = {v["configMap"]["name"] for v in pod.get("volumes") or [] if v.get("configMap")}
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        names.update(e["secretRef"]["name"] for e in c.get("envFrom") or [] if e.get("secretRef"))
    return names


def unused_extras(owned: Owned, gone: Sequence[Target]) -> list[Target]:
    """The toolbox's own Secrets/ConfigMaps that no remaining Job or standalone Pod of the user refers to."""
    removed = {(t.kind, t.name) for t in gone}
    used: set[str] = set()
    for kind, listed in (("Job", owned.jobs), ("PyTorchJob", owned.engines),
                         ("Pod", [p for p in owned.pods if not _owned_by_job(p)])):
        for obj in listed:
            if (kind, obj["metadata"]["name"]) not in removed:
                used |= _referenced(obj)
    return [t for t in owned.extras if t.name not in used]


def delete(gw: Gateway, targets: Sequence[Target], report: Callable[[Target, str | None], None] | None = None
           ) -> DeleteReport:
    """Delete each target (exactly the object listed: its uid, and a Secret's or ConfigMap's version, are
    preconditions); already gone is fine; a Secret/ConfigMap used again since the listing is kept (KEPT)."""
    result = DeleteReport()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(gw.delete, t.kind, t.name, t.uid, t.version) for t in targets]
        for target, future in zip(targets, futures):
            error = None
            try:
                future.result()
            except NotFound:
                pass
            except ClusterError as err:
                error = KEPT if err.status == 409 and target.version else str(err)
            if error == KEPT:
                result.kept.append(target)
            elif error:
                result.errors.append(error)
            else:
                result.deleted.append(target)
            if report:
                report(target, error)
    return result
