"""Who owns what on the cluster, in one place: the owner labels, the selector that finds them, the owner check,
and the names that carry the user, so that two users of one project in one namespace never share an object.

Every object the toolbox creates carries `user` and `project` labels; every list it makes is narrowed by them;
every action on an object found by name first checks them (`require_owned`).
"""
from __future__ import annotations

from typing import Any, Mapping

from .errors import NotOwned
from .naming import content_digest, sanitize, short_hash
from .settings import Project

USER = "user"
PROJECT = "project"
STAGE = "stage"             # a pipeline's stage Jobs: the stage's name
CELL = "cell"               # ... and the hash id of their cell (the end of its name)
ROLE = "role"               # `driver`: the Job that follows a pipeline in the cluster
DRIVER = "driver"


def labels(project: Project) -> dict[str, str]:
    """The owner labels of everything the toolbox creates for this user and project."""
    return {USER: project.user, PROJECT: project.project_name}


def selector(project: Project) -> str:
    """The label selector of the user's objects of this project."""
    return f"{USER}={project.user},{PROJECT}={project.project_name}"


def owner_of(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The `user` and `project` labels of an object (None where absent)."""
    found = (obj.get("metadata") or {}).get("labels") or {}
    return found.get(USER), found.get(PROJECT)


def is_owned(obj: Mapping[str, Any], project: Project) -> bool:
    return owner_of(obj) == (project.user, project.project_name)


def require_owned(obj: Mapping[str, Any], project: Project, what: str) -> None:
    """Refuse, naming the owner, to act on an object whose `user`/`project` labels are not this project's."""
    if is_owned(obj, project):
        return
    user, proj = owner_of(obj)
    owner = f"user '{user}' of project '{proj}'" if user or proj else "no toolbox user (no user/project labels)"
    raise NotOwned(f"{what} belongs to {owner}, not to user '{project.user}' of project "
                   f"'{project.project_name}'; refusing to touch it", 403)


def user_part(project: Project) -> str:
    """The user as it reads in a name; users that fold to the same text (`Alice`, `alice`, `a.lice`) differ by a
    hash of the exact name."""
    folded = sanitize(project.user)
    return folded if folded == project.user else f"{folded}-{short_hash(project.user)[:4]}".lstrip("-")


def object_name(project: Project, role: str, content: Any) -> str:
    """`<project>-<role>-<digest>`, the digest covering the user and the content: the .env Secret (`env`), the
    `file:` ConfigMap (`files`), an array's cells ConfigMap (`cells`)."""
    return f"{project.project_name}-{role}-{content_digest([project.user, content])}"


def workload_name(readable: str, project: Project, cells: list[str]) -> str:
    """A packed or array Job: its readable part, then a hash of the user and every cell it runs."""
    return f"{readable}-{short_hash(chr(10).join([project.user, *cells]))}"


def pod_name(project: Project, name: str | None = None) -> str:
    """The interactive pod: the name asked for, else `<user>-<project>-interactive-pod`."""
    if name:
        return name
    return sanitize(f"{user_part(project)}-{project.project_name}-interactive-pod")[:63].rstrip("-")


def stage_job_name(cell: str, stage: str, max_len: int = 63) -> str:
    """A stage's Job: the cell's readable part cut to fit (`max_len`), the stage, and the cell's hash (which stays
    last, so the stage Jobs of a cell share its id): `example-train-data1-lr-0-1-eval-k3j9x2qa`."""
    readable, _, digest = cell.rpartition("-")
    readable = readable[: max_len - len(digest) - len(stage) - 2].rstrip("-")
    return "-".join(p for p in (readable, stage, digest) if p)


def stage_labels(stage: str, cell: str) -> dict[str, str]:
    """The labels a stage Job adds to its cell's: `kubectl get jobs -l stage=train,cell=<id>` finds it."""
    return {STAGE: stage, CELL: cell.rpartition("-")[2]}


def driver_name(project: Project, key: Any) -> str:
    """The driver Job of one selection of the grid (`key`), and its ServiceAccount, Role and RoleBinding."""
    return object_name(project, DRIVER, key)


def driver_labels(project: Project) -> dict[str, str]:
    return {**labels(project), ROLE: DRIVER}


def is_driver(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(ROLE) == DRIVER


# --- a cell on several nodes (kube/multinode.py) ------------------------------------------------------------------
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"            # set by the API server on every Job's pods
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def service_name(job: str) -> str:
    """The headless Service of a cell on several nodes: the Job's own name (a Service's starts with a letter)."""
    return job if job[:1].isalpha() else f"n{job}"


def node_selector(job: str, uid: str | None = None) -> dict[str, str]:
    """The pods of one cell's Job: by its name, and once it exists by its uid (never an earlier Job's pods)."""
    return {JOB_NAME_LABEL: job, **({JOB_UID_LABEL: uid} if uid else {})}


def owner_reference(obj: Mapping[str, Any]) -> dict[str, str]:
    """What makes an object a dependent of `obj`: the garbage collector deletes it with `obj`."""
    meta = obj["metadata"]
    return {"apiVersion": obj.get("apiVersion", "batch/v1"), "kind": obj.get("kind", "Job"), "name": meta["name"],
            "uid": meta["uid"]}
