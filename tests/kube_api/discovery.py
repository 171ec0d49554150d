"""Discovery and OpenAPI documents, legacy and aggregated, as kubectl reads them."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from typing import Any

from .kinds import CRDS, KINDS, Kind, SCHEMA_VERSION, SERVER_VERSION


def group_versions(crds: frozenset[str] = CRDS) -> dict[str, list[Kind]]:
    """The served kinds by group/version: the built-in ones and the custom resources installed (`crds`)."""
    out: dict[str, list[Kind]] = {}
    for kind in KINDS:
        if not kind.crd or kind.plural in crds:
            out.setdefault(kind.group_version, []).append(kind)
    return out


def resource_list(group_version: str, crds: frozenset[str] = CRDS) -> dict:
    """`/api/v1`, `/apis/batch/v1`: an APIResourceList with each resource and its subresources."""
    resources = []
    for kind in group_versions(crds).get(group_version, []):
        entry = {"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                 "kind": kind.kind, "verbs": list(kind.verbs),
                 "storageVersionHash": base64.b64encode(hashlib.sha256(kind.qualified.encode()).digest()[:8]).decode()}
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        for sub, sub_kind, verbs in kind.subresources:
            resources.append({"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                              "kind": sub_kind, "verbs": list(verbs)})
    out = {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}
    return out if "/" not in group_version else {"apiVersion": "v1", **out}


def group_list(crds: frozenset[str] = CRDS) -> dict:
    """`/apis`: every named group with its preferred version."""
    groups = []
    for gv in group_versions(crds):
        if "/" in gv:
            name, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def aggregated(core: bool, crds: frozenset[str] = CRDS) -> dict:
    """apidiscovery.k8s.io/v2 for `/api` (core) or `/apis` (named groups): one answer instead of one per group."""
    items: dict[str, list] = {}
    for gv, kinds in group_versions(crds).items():
        group, _, version = gv.rpartition("/")
        if (group == "") != core:
            continue
        resources = []
        for kind in kinds:
            entry = {"resource": kind.plural, "responseKind": {"group": "", "version": "", "kind": kind.kind},
                     "scope": "Namespaced" if kind.namespaced else "Cluster", "singularResource": kind.kind.lower(),
                     "verbs": list(kind.verbs),
                     "subresources": [{"subresource": sub, "responseKind": {"group": "", "version": "", "kind": k},
                                       "verbs": list(verbs)} for sub, k, verbs in kind.subresources]}
            if kind.short_names:
                entry["shortNames"] = list(kind.short_names)
            if kind.categories:
                entry["categories"] = list(kind.categories)
            resources.append(entry)
        items.setdefault(group, []).append({"version": version, "resources": resources, "freshness": "Current"})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [{"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}
                      for group, versions in items.items()]}


def _openapi_path(kind: Kind, item: bool) -> str:
    ns = "/namespaces/{namespace}" if kind.namespaced else ""
    return f"{kind.prefix}{ns}/{kind.plural}" + ("/{name}" if item else "")


@functools.lru_cache(maxsize=None)
def openapi_doc(group_version: str) -> str:
    """An OpenAPI v3 document with the operations only (no schemas): enough for kubectl to see, per kind, that
    create/update/patch take `fieldValidation`, so it leaves validation to the server."""
    query = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
             for n in ("dryRun", "fieldManager", "fieldValidation")]
    paths: dict[str, Any] = {}
    for kind in group_versions()[group_version]:
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        op_name = f"{kind.group.capitalize()}{kind.version.capitalize()}" \
                  f"{'Namespaced' if kind.namespaced else ''}{kind.kind}"

        def op(verb: str, action: str, params: list) -> dict:
            return {"operationId": f"{verb}{op_name}", "parameters": params, "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}
        scope = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}] \
            if kind.namespaced else []
        collection = {"get": op("list", "list", []), "post": op("create", "post", query),
                      "delete": op("deletecollection", "deletecollection", [])}
        item = {"get": op("read", "get", []), "put": op("replace", "put", query), "patch": op("patch", "patch", query),
                "delete": op("delete", "delete", query[:1])}
        paths[_openapi_path(kind, False)] = {
            **{m: o for m, o in collection.items() if o["x-kubernetes-action"].replace("post", "create") in kind.verbs},
            "parameters": scope}
        paths[_openapi_path(kind, True)] = {
            **{m: o for m, o in item.items() if o["x-kubernetes-action"].replace("put", "update") in kind.verbs},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}, *scope]}
    return json.dumps({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
                       "paths": paths, "components": {"schemas": {}}})


def _proto_bytes(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (payloads here stay under 128 bytes: one-byte lengths)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def openapi_v2(protobuf: bool) -> bytes:
    """OpenAPI v2 with no definitions. kubectl before 1.27 validates on the client from this document (in
    protobuf: gnostic's Document, swagger=1, info=2 {title=1, version=2}, paths=8); kinds it does not describe are
    not validated there, which is what a CRD without a schema gets from a real server."""
    version = SERVER_VERSION["gitVersion"]
    if not protobuf:
        return json.dumps({"swagger": "2.0", "info": {"title": "Kubernetes", "version": version},
                           "paths": {}}).encode()
    info = _proto_bytes(1, b"Kubernetes") + _proto_bytes(2, version.encode())
    return _proto_bytes(1, b"2.0") + _proto_bytes(2, info) + _proto_bytes(8, b"")


def openapi_index(crds: frozenset[str] = CRDS) -> dict:
    paths = {}
    for gv in group_versions(crds):
        prefix = f"apis/{gv}" if "/" in gv else f"api/{gv}"
        digest = hashlib.sha512(openapi_doc(gv).encode()).hexdigest().upper()
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": paths}


@functools.lru_cache(maxsize=None)
def _schema_validator(kind: Kind) -> Any:
    """The official JSON schema of a kind (kubernetes-validate, strict: unknown fields are errors)."""
    import jsonschema
    import kubernetes_validate.utils as kv
    from referencing import Registry, Resource
    folder = f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict"
    api = f"{kind.group.split('.')[0]}-{kind.version}" if kind.group else kind.version     # role-rbac-v1.json
    schema = kv.schema_contents(f"{folder}/{kind.kind.lower()}-{api}.json", SCHEMA_VERSION)
    registry = Resource.from_contents(kv.schema_contents(f"{folder}/_definitions.json", SCHEMA_VERSION)) @ \
        (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


# The PyTorchJob CRD's structural schema (kubeflow.org/v1), down to the pod templates: field names by path.
PYTORCHJOB_FIELDS = {
    "": {"apiVersion", "kind", "metadata", "spec", "status"},
    "spec": {"runPolicy", "elasticPolicy", "pytorchReplicaSpecs", "nprocPerNode"},
    "spec.runPolicy": {"cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
                       "schedulingPolicy", "suspend", "managedBy"},
    "replica": {"replicas", "template", "restartPolicy"},
}
POD_TEMPLATE = Kind("", "v1", "podtemplates", "PodTemplate")


def _pytorchjob_unknown(obj: dict) -> list[str]:
    """Unknown fields of a PyTorchJob, as its CRD's schema finds them (each pod template as a core PodTemplate's)."""
    found: list[str] = []

    def keys(node: Any, path: str, known: set[str]) -> None:
        if isinstance(node, dict):
            found.extend(f"{path}.{k}".lstrip(".") for k in node if k not in known)
    spec = obj.get("spec") or {}
    keys(obj, "", PYTORCHJOB_FIELDS[""])
    keys(spec, "spec", PYTORCHJOB_FIELDS["spec"])
    keys(spec.get("runPolicy"), "spec.runPolicy", PYTORCHJOB_FIELDS["spec.runPolicy"])
    for rtype, replica in (spec.get("pytorchReplicaSpecs") or {}).items():
        base = f"spec.pytorchReplicaSpecs.{rtype}"
        keys(replica, base, PYTORCHJOB_FIELDS["replica"])
        if isinstance(replica, dict) and isinstance(replica.get("template"), dict):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                       "template": replica["template"]}
            found += [f"{base}.{path}" for path in unknown_fields(POD_TEMPLATE, wrapped)]
    return sorted(found)


def unknown_fields(kind: Kind, obj: dict) -> list[str]:
    """Dotted paths of the fields the kind's schema does not declare."""
    if kind.kind == "PyTorchJob":
        return _pytorchjob_unknown(obj)
    found = []
    for error in _schema_validator(kind).iter_errors(obj):
        if error.validator == "additionalProperties":
            declared = set(error.schema.get("properties") or {})
            base = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
            found += [f"{base}.{key}".lstrip(".") for key in error.instance if key not in declared]
    return sorted(found)


def strip_unknown(obj: dict, paths: list[str]) -> None:
    for path in paths:
        parts = re.findall(r"[^.\[\]]+", path)
        node: Any = obj
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.pop(parts[-1], None)


# ---------------------------------------------------------------------------------------------------------------
# kmock's private internals: the only place this module reaches into them.
# kmock 0.8 has no public hook to answer a request before its emulator changes its stored objects (needed for
# 409/422 and propagation), no public access to the aiohttp request (exec websockets, watch streams), and keeps
# every request forever (a long session would slow down): `_handle`, `_raw_request` and `_requests` cover that.
