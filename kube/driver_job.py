"""`driver: cluster`: the follow loop of `make job wait=1` as a small Job in the namespace (the project image, the
toolbox's own command), with a ServiceAccount, Role and RoleBinding that allow exactly what it does.

The driver only lists and creates Jobs: `make job` made every Secret and ConfigMap its stages need beforehand.
The RBAC objects are owned by the driver Job (ownerReferences), so deleting it (`make delete`) removes them too.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import objects, operations, ownership
from .cluster import Gateway
from .config import Config
from .errors import AlreadyExists, ClusterError, NotFound
from .render import LAPTOP_ONLY_ENV, Rendered
from .settings import Project, Run
from .status import job_state

# What the driver does, and so all its Role allows (tests/test_pipeline_cluster.py compares the two).
RULES = ({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "list"]},)
DOTENV_KEYS = "KUBE_TOOLBOX_DOTENV_KEYS"        # the names of the .env values the driver's pod has (from the Secret)
TOOLBOX = Path(__file__).resolve().parent.parent
RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class DriverObjects:
    job: Rendered
    extras: list[dict]            # the Secret and ConfigMap the driver's own pod refers to
    rbac: list[dict]              # ServiceAccount, Role, RoleBinding (none with an existing service_account)
    account: str


def command(project: Project, only: str, sets: Sequence[str], stage: str | None, poll: float) -> str:
    """The toolbox's own command, run from the checkout in the pod: follow the same selection."""
    try:
        launcher = (TOOLBOX / "launch.py").relative_to(project.root)
    except ValueError:
        launcher = Path("src/toolbox/launch.py")              # where projects keep the toolbox
    words = ["python", str(launcher), "job", "--wait", "--follow-only", "--poll", f"{poll:g}"]
    words += ["--only", only] if only else []
    for text in sets:
        words += ["--set", text]
    words += ["--stage", stage] if stage else []
    return " ".join(shlex.quote(w) for w in words) + "\n"


def filters_text(filters: Mapping[str, frozenset[str]]) -> str:
    """`only=` without its state words (the driver carries on the started cells of the same selection)."""
    return " ".join(f"{key}={','.join(sorted(values))}" for key, values in filters.items())


def render(cfg: Config, flat: Sequence[Run], filters: Mapping[str, frozenset[str]], sets: Sequence[str],
           stage: str | None, annotations: Mapping[str, str] | None = None) -> DriverObjects:
    """The driver Job (small: no GPU, half a CPU, 1 GiB), its RBAC objects, and the objects its pod uses. It ships
    every `file:` of the stages, so that it renders their Jobs from the same files as this machine."""
    project, spec = cfg.project, cfg.driver
    only = filters_text(filters)
    name = ownership.driver_name(project, [only, list(sets), stage or ""])
    account = spec.service_account or name
    shipped = tuple(sorted({f for run in flat for f in run.settings.file}))
    keys = ",".join(k for k in sorted(project.dotenv) if k not in LAPTOP_ONLY_ENV)
    settings = dataclasses.replace(
        cfg.base_settings, gpu_count=0, cpu_count=0.5, memory=1, ephemeral_storage=1, scratch=0, server=None,
        special_gpu=None, gpu_whitelist=(), gpu_blacklist=(), shared=1, max_parallel=None, max_runtime=None,
        queue=None, fail_fast=False, backoff_limit=3, service_account=account, file=shipped,
        env={**cfg.base_settings.env, **({DOTENV_KEYS: keys} if keys else {})})
    text = command(project, only, sets, stage, spec.poll)
    run = Run(index=0, name=name, model="driver", dataset="-", hparams={}, labels=ownership.driver_labels(project),
              local_command=text, remote_command=text, settings=settings, project=project)
    renderer = operations.renderer(project, [settings], annotations)
    job = renderer.job(run)
    rbac = [] if spec.service_account else rbac_objects(project, name)
    return DriverObjects(job, list(renderer.objects.values()), rbac, account)


def rbac_objects(project: Project, name: str) -> list[dict]:
    """A ServiceAccount, a Role with RULES, and the RoleBinding between them, all named like the driver."""
    meta = {"name": name, "namespace": project.namespace, "labels": ownership.labels(project)}
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
            {"apiVersion": RBAC_API, "kind": "Role", "metadata": dict(meta), "rules": [dict(r) for r in RULES]},
            {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": dict(meta),
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": project.namespace}],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}}]


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in objects.owners(obj))


def _ensure_owned(gw: Gateway, project: Project, obj: dict, owner: Mapping[str, Any], wait: float) -> None:
    """Create an RBAC object owned by the driver Job; one of an earlier driver may still be on its way out."""
    uid = objects.uid(owner)
    assert uid is not None
    obj = {**obj, "metadata": {**obj["metadata"], "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": objects.name(owner), "uid": uid}]}}
    deadline = time.monotonic() + wait
    while True:
        try:
            gw.create(obj)
            return
        except AlreadyExists:
            try:
                current = gw.get(obj["kind"], obj["metadata"]["name"])
            except NotFound:
                continue
            ownership.require_owned(current, project, f"{obj['kind']} '{obj['metadata']['name']}'")
            if _owned_by(current, uid):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{obj['kind']} '{obj['metadata']['name']}' of an earlier driver is still "
                                   f"there; try again in a minute") from None
            time.sleep(0.5)


def start(gw: Gateway, project: Project, driver: DriverObjects, wait: float = 60.0) -> str:
    """Create the driver Job (left alone while it runs; replaced once it ended) and its RBAC objects."""
    for obj in driver.extras:
        operations.ensure(gw, project, obj)
    name = driver.job.name
    try:
        current: dict | None = gw.get("Job", name)
    except NotFound:
        current = None
    if current is not None:
        ownership.require_owned(current, project, f"Job '{name}'")
    if current is not None and job_state(current)[0] in ("pending", "running") and \
            not objects.meta(current).get("deletionTimestamp"):
        outcome = "unchanged"
    else:
        outcome = operations.create_or_replace(gw, project, driver.job, current, wait)
        current = gw.get("Job", name)                       # its uid, for the RBAC objects' owner reference
    for obj in driver.rbac:
        _ensure_owned(gw, project, obj, current, wait)
    return outcome


def pod_dotenv(project: Project) -> Project:
    """In the driver's pod, .env is not a file but the environment (the Secret): the same values, the same Jobs."""
    keys = os.environ.get(DOTENV_KEYS)
    if not keys or project.dotenv:
        return project
    return dataclasses.replace(project, dotenv={k: os.environ.get(k, "") for k in keys.split(",") if k})

