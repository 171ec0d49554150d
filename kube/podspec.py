"""Pod and Job fields, pure: resources and quantities, placement, deadlines, failure policy, queues, placement, sidecar.

Each function reads settings and returns the fields to add (empty when nothing is asked), in the order
the templates write them.
"""
from __future__ import annotations

import posixpath
import re
from typing import Any, Mapping

from . import checkpoints
from .errors import ConfigError
from .naming import volume_name as volume_name_of
from .settings import RunSettings

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]i?|Ki)?$")
SIDECAR_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


def failure_policy(s: RunSettings, indexed: bool) -> dict:
    """Disruptions (preemption, eviction, node drain) never count as failures; with fail_fast, a non-zero exit
    of the command fails the cell (FailIndex in an array) without using the retry budget."""
    rules: list[dict[str, Any]] = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                                           "status": "True"}]},
                                   *checkpoints.requeue_rule(s)]
    if s.fail_fast:
        rules.append({"action": "FailIndex" if indexed else "FailJob",
                      "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}})
    return {"rules": rules}


def job_fields(s: RunSettings, units: int | None, parallelism: int | None = None) -> dict[str, Any]:
    """Job spec fields beyond backoffLimit; `units` is the number of indexes of an array Job (else None), run
    `parallelism` at a time (its share of max_parallel)."""
    out: dict[str, Any] = {}
    if units is not None:
        out.update({"completionMode": "Indexed", "completions": units,
                    "parallelism": min(parallelism or s.max_parallel or units, units),
                    "backoffLimitPerIndex": s.backoff_limit})
    if s.max_runtime:
        out["activeDeadlineSeconds"] = s.max_runtime
    out["podFailurePolicy"] = failure_policy(s, units is not None)
    if s.queue:
        out["suspend"] = True                     # Kueue admits it by unsuspending
    return out


def job_labels(s: RunSettings) -> dict[str, str]:
    return {KUEUE_QUEUE_LABEL: s.queue} if s.queue else {}


def scratch(s: RunSettings) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts) of the scratch space: a generic ephemeral volume, deleted with the pod."""
    if not s.scratch:
        return [], []
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": quantity(s.scratch, "Gi")}}}
    if s.scratch_class:
        spec["storageClassName"] = s.scratch_class
    return ([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}],
            [{"name": "scratch", "mountPath": "/scratch"}])


def secret_env(s: RunSettings) -> list[dict]:
    out = []
    for var, ref in s.secret_env.items():
        name, key = ref.split("/", 1)
        out.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    return out


def pod_fields(s: RunSettings, sidecars: list[dict]) -> dict[str, Any]:
    """Pod spec fields: the grace a stopping pod gets, priority, placement, identity, and the sidecars as native
    ones (init containers that keep running)."""
    out: dict[str, Any] = {"terminationGracePeriodSeconds": s.termination_grace}
    if s.priority_class:
        out["priorityClassName"] = s.priority_class
    if s.node_selector:
        out["nodeSelector"] = dict(s.node_selector)
    if s.service_account:
        out["serviceAccountName"] = s.service_account
    if sidecars:
        out["initContainers"] = list(sidecars)
    return out


def sidecar(s: RunSettings, script: str, env: list, env_from: list, mounts: list) -> dict | None:
    """The `server:` container: it starts before the command, and the Job completes when the command ends."""
    if not s.server:
        return None
    return {"name": "server", "image": s.image, "restartPolicy": "Always",
            "command": ["/bin/bash", "-c", script + s.server["command"] + "\n"],
            "ports": [{"name": "server", "containerPort": s.server["port"]}],
            "env": list(env), **({"envFrom": list(env_from)} if env_from else {}),
            "resources": sidecar_resources(s.server), "volumeMounts": list(mounts)}


def sidecar_resources(server: Any) -> dict:
    """0.25 CPU and 512 MiB (limits 1 CPU, 2 GiB) unless `cpu_count`/`memory` (GiB) say otherwise."""
    out = {kind: dict(values) for kind, values in SIDECAR_RESOURCES.items()}
    if "cpu_count" in server:
        out["requests"]["cpu"] = out["limits"]["cpu"] = quantity(server["cpu_count"])
    if "memory" in server:
        out["requests"]["memory"] = out["limits"]["memory"] = quantity(server["memory"], "Gi")
    return out


def quantity(value: float, unit: str = "") -> str:
    """A Kubernetes quantity string: whole numbers as is, fractions in milli (CPU) or Mi (memory)."""
    if float(value).is_integer():
        return f"{int(value)}{unit}"
    if unit == "Gi":
        return f"{int(round(value * 1024))}Mi"
    return f"{int(round(value * 1000))}m"


def resources(s: RunSettings) -> dict:
    """Requests from the settings; limits = limit_ratio x requests for CPU and memory, = requests for GPUs."""
    for key, value, unit, least in (("cpu_count", s.cpu_count, "", "0.001 (1m)"),
                                    ("memory", s.memory, "Gi", "0.001 (1Mi)"),
                                    ("ephemeral_storage", s.ephemeral_storage, "Gi", "0.001 (1Mi)")):
        if value and re.match(r"^0[a-zA-Z]*$", quantity(value, unit)):
            raise ConfigError("config/launch.yaml", key, f"expected at least {least}: {value} rounds to zero")
    requests = {"cpu": quantity(s.cpu_count), "memory": quantity(s.memory, "Gi")}
    limits = {"cpu": quantity(s.cpu_count * s.limit_ratio), "memory": quantity(s.memory * s.limit_ratio, "Gi")}
    if s.ephemeral_storage:
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = quantity(s.ephemeral_storage, "Gi")
    gpu_resource = f"nvidia.com/{s.special_gpu}" if s.special_gpu else "nvidia.com/gpu"
    gpus = max(s.gpu_count, 1) if s.special_gpu else s.gpu_count
    if gpus:
        requests[gpu_resource] = limits[gpu_resource] = str(gpus)
    return {"requests": requests, "limits": limits}


def affinity(s: RunSettings) -> dict | None:
    """One node-selector term: GPU product In/NotIn (ignored with special_gpu) and hostname In/NotIn."""
    expressions = []
    if not s.special_gpu:
        if s.gpu_whitelist:
            expressions.append({"key": "nvidia.com/gpu.product", "operator": "In", "values": list(s.gpu_whitelist)})
        if s.gpu_blacklist:
            expressions.append({"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": list(s.gpu_blacklist)})
    if s.hostname_whitelist:
        expressions.append({"key": "kubernetes.io/hostname", "operator": "In", "values": list(s.hostname_whitelist)})
    if s.hostname_blacklist:
        expressions.append({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": list(s.hostname_blacklist)})
    if not expressions:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": expressions}]}}}


def check_quantities(res: Mapping[str, Mapping[str, str]], where: str) -> None:
    for kind in ("requests", "limits"):
        for name, q in (res.get(kind) or {}).items():
            if not isinstance(q, str) or not _QUANTITY.match(q):
                raise ConfigError(where, f"resources.{kind}.{name}", f"expected a quantity string, got {q!r}")


def check_mounts(mounts: list[dict], claims: Mapping[str, str]) -> None:
    """Every container path mounted once: a claim at /dev/shm, /scratch or the toolbox's own folders, or two
    claims at one path, is refused (the API server would reject the pod, or one mount would hide the other)."""
    seen: dict[str, str] = {}
    for mount in mounts:
        path = posixpath.normpath(mount["mountPath"])
        owner = next((f"volumes.{claim}" for claim, at in claims.items()
                      if volume_name_of(claim) == mount["name"]), None)
        if path in seen:
            key = owner or seen[path]
            raise ConfigError("config/launch.yaml", key, f"expected a mount path of its own; {path} is also where "
                                                         f"{seen[path] if owner else owner} is mounted")
        seen[path] = owner or f"the toolbox's {mount['name']} volume"
