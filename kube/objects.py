"""Typed access to the few fields of Kubernetes objects the toolbox reads, and slim copies of listed objects.

Objects arrive as JSON dicts; these accessors replace `.get("metadata") or {}` chains, and `slim_job` /
`slim_pod` keep only what status, selection and deletion read, page by page, so that a list of 10,000 pods
(their specs carry whole startup scripts) does not stay in memory.
"""
from __future__ import annotations

from typing import Any, Mapping

Obj = Mapping[str, Any]
_EMPTY: Mapping[str, Any] = {}


def meta(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or _EMPTY).get("metadata") or _EMPTY


def name(obj: Obj) -> str:
    return str(meta(obj).get("name") or "")


def uid(obj: Obj) -> str | None:
    return meta(obj).get("uid")


def labels(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("labels") or _EMPTY


def annotations_of(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("annotations") or _EMPTY


def created(obj: Obj) -> str:
    return str(meta(obj).get("creationTimestamp") or "")


def owners(obj: Obj) -> list[Mapping[str, Any]]:
    return list(meta(obj).get("ownerReferences") or [])


def spec(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or _EMPTY).get("spec") or _EMPTY


def status(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or _EMPTY).get("status") or _EMPTY


def pod_spec(workload: Obj) -> Mapping[str, Any]:
    """The pod spec of a Job (its template) or of a Pod."""
    template = spec(workload).get("template")
    return (template or _EMPTY).get("spec") or _EMPTY if template is not None else spec(workload)


_META_KEPT = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "creationTimestamp",
              "deletionTimestamp",
              "ownerReferences")


def _slim_meta(obj: Obj) -> dict[str, Any]:
    found = meta(obj)
    return {k: found[k] for k in _META_KEPT if k in found}


def slim_meta(obj: Obj) -> dict[str, Any]:
    """An object as its metadata alone (a Secret without its data)."""
    return {"metadata": _slim_meta(obj)}


def _refs(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What deletion reads of a pod spec: the ConfigMaps and Secrets it refers to."""
    out: dict[str, Any] = {}
    volumes = [v for v in pod.get("volumes") or [] if v.get("configMap")]
    if volumes:
        out["volumes"] = volumes
    containers = [{"name": c.get("name"), "envFrom": c["envFrom"]} for c in pod.get("containers") or []
                  if c.get("envFrom")]
    if containers:
        out["containers"] = containers
    inits = [{"name": c.get("name"), "envFrom": c.get("envFrom") or [], "ports": c.get("ports") or []}
             for c in pod.get("initContainers") or []]
    if inits:
        out["initContainers"] = inits
    return out


def slim_job(job: Obj) -> dict[str, Any]:
    """A Job as status, `only=` and `make delete` read it: metadata, a few spec fields, status."""
    s = spec(job)
    kept = {k: s[k] for k in ("completionMode", "completions", "suspend") if k in s}
    kept["template"] = {"spec": _refs(pod_spec(job))}
    return {"metadata": _slim_meta(job), "spec": kept, "status": dict(status(job))}


def slim_pod(pod: Obj) -> dict[str, Any]:
    """A Pod as status and `make delete` read it: metadata, node, the referenced objects, status."""
    s = spec(pod)
    kept = {**_refs(s), **({"nodeName": s["nodeName"]} if s.get("nodeName") else {})}
    return {"metadata": _slim_meta(pod), "spec": kept, "status": dict(status(pod))}
