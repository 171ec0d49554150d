"""Test Kubernetes API server: kmock's KubernetesEmulator made faithful enough for the official client and kubectl.

Run in its own process (`python -m tests.kube_api --port N`): the fixtures in tests/kube_fixtures.py do it.
kmock serves HTTP, parses requests and stores objects (`self.objects`, with their history) and the resource table
(`self.resources`); this module adds what real clients rely on:
- discovery as a real API server answers it: legacy (/api, /apis, /api/v1, /apis/batch/v1) and aggregated
  (apidiscovery.k8s.io/v2, which kubectl asks for first), plus the OpenAPI v3 index kubectl reads to learn that
  the server validates fields itself (`fieldValidation`);
- lists sorted by namespace/name with label and field selectors, chunked by `limit`/`continue` over a consistent
  snapshot (`remainingItemCount` when unfiltered, 410 Expired for a forgotten token), Table output for kubectl;
- create/get/update (PUT)/patch (merge, strategic as merge, JSON patch)/delete/deletecollection/watch, with uid,
  resourceVersion, generation, 409 on a stale resourceVersion, 422 on an immutable Job or Pod field, Job defaulting
  (selector, controller labels), `dryRun=All`, `fieldValidation=Strict|Warn` against the official schemas;
- deletion propagation as the garbage collector does it: Background, Foreground (owner kept with the
  foregroundDeletion finalizer until its dependents are gone), Orphan (dependents kept, ownerReferences removed;
  the default for batch/v1 Jobs, with the API server's warning), finalizers;
- pod logs, exec (only `tar xmf - -C DIR`, for `make copy`), and test controls under /_test/ (seed, faults, logs,
  a forced page size, a garbage-collector delay, a fake Job controller, the request log).
Not emulated: authentication and RBAC, admission and quotas, server-side apply, strategic-merge list semantics.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import dataclasses
import datetime
import functools
import hashlib
import io
import json
import re
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kmock

SERVER_VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0-kmock", "gitCommit": "0" * 40,
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0",
                  "compiler": "gc", "platform": "linux/amd64"}
SCHEMA_VERSION = "1.34.0"          # kubernetes-validate schemas used for fieldValidation
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One served resource, declared once: discovery, OpenAPI, storage and lists all read it."""
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()     # (name, response kind, verbs)
    verbs: tuple[str, ...] = VERBS

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`jobs.batch`, `pods`: how the API server names the resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


KINDS = (
    Kind("batch", "v1", "jobs", "Job", categories=("all",), subresources=(("status", "Job", STATUS_VERBS),)),
    Kind("", "v1", "pods", "Pod", short_names=("po",), categories=("all",),
         subresources=(("exec", "PodExecOptions", ("create", "get")), ("log", "Pod", ("get",)),
                       ("status", "Pod", STATUS_VERBS))),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Kind("", "v1", "events", "Event", short_names=("ev",)),
    Kind("", "v1", "nodes", "Node", namespaced=False, short_names=("no",),
         subresources=(("status", "Node", STATUS_VERBS),)),
    # Every namespace exists (kubectl asks for one when an object is not found); only get and list are served.
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), verbs=("get", "list")),
)
BY_PLURAL = {(k.group, k.version, k.plural): k for k in KINDS}
BY_KIND = {k.kind: k for k in KINDS}

# ---------------------------------------------------------------------------------------------------------------
# Selectors
_REQ = re.compile(r"^\s*(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[^\s,()]*)"
                  r"|\s(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses: `a=b,c in (x,y)`."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in parts + [current] if p.strip()]


def matches_labels(labels: dict[str, str], selector: str | None) -> bool:
    """Equality (`a=b`, `a==b`, `a!=b`), set (`a in (x,y)`, `a notin (x)`) and existence (`a`, `!a`) terms."""
    for term in _split_selector(selector or ""):
        term = term.strip()
        if term.startswith("!"):
            if term[1:].strip() in labels:
                return False
            continue
        m = _REQ.match(term)
        if not m:
            raise ValueError(f"bad selector term {term!r}")
        key = m.group("key")
        if m.group("op") in ("=", "=="):
            if labels.get(key) != m.group("value"):
                return False
        elif m.group("op") == "!=":
            if labels.get(key) == m.group("value"):
                return False
        elif m.group("set"):
            values = {v.strip() for v in m.group("values").split(",")}
            if (labels.get(key) in values) != (m.group("set") == "in"):
                return False
        elif key not in labels:
            return False
    return True


def matches_fields(obj: dict, selector: str | None) -> bool:
    for term in _split_selector(selector or ""):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ValueError(f"bad field selector term {term!r}")
        key, op, value = m.groups()
        current: Any = obj
        for part in key.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        if (op == "!=") == (str(current) == value if current is not None else value == ""):
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# Errors, as the API server words them
class ApiError(Exception):
    """An error answered as a `Status` object with the API server's code, reason and wording."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.body(), status=self.code)


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found',
                    {"name": name, "group": kind.group, "kind": kind.plural})


def invalid(kind: Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per (field, message), worded like the API server's field errors."""
    text = ", ".join(f"{field}: {message}" for field, message in causes)
    qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}',
                    {"name": name, "group": kind.group, "kind": kind.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ---------------------------------------------------------------------------------------------------------------
# Pure object rules: patches, defaults, validation, tables
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: dict, ops: list) -> dict:
    """RFC 6902 (add, remove, replace, test, copy, move); a failed op or test is a 422, as on a real server."""
    doc = copy.deepcopy(target)

    def walk(path: str) -> tuple[Any, str]:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        node: Any = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def get(path: str) -> Any:
        node, last = walk(path)
        return node[int(last)] if isinstance(node, list) else node[last]

    def put(path: str, value: Any, replace: bool) -> None:
        node, last = walk(path)
        if isinstance(node, list):
            if last == "-":
                node.append(value)
            elif replace:
                node[int(last)] = value
            else:
                node.insert(int(last), value)
        else:
            if replace and last not in node:
                raise KeyError(last)
            node[last] = value

    def remove(path: str) -> Any:
        node, last = walk(path)
        return node.pop(int(last)) if isinstance(node, list) else node.pop(last)

    for op in ops:
        try:
            kind = op["op"]
            if kind == "add":
                put(op["path"], copy.deepcopy(op["value"]), replace=False)
            elif kind == "replace":
                put(op["path"], copy.deepcopy(op["value"]), replace=True)
            elif kind == "remove":
                remove(op["path"])
            elif kind == "test":
                if get(op["path"]) != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                   f"request: testing value {op['path']} failed")
            elif kind == "copy":
                put(op["path"], copy.deepcopy(get(op["from"])), replace=False)
            elif kind == "move":
                put(op["path"], remove(op["from"]), replace=False)
            else:
                raise bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                           f"{op.get('op')} operation does not apply: doc is missing path: {op.get('path')}: "
                           f"{err}") from None
    return doc


def default_job(job: dict) -> None:
    """What the API server fills in on a new Job: the Job controller and `kubectl logs job/X` rely on these."""
    meta, spec = job["metadata"], job.setdefault("spec", {})
    uid, name = meta["uid"], meta["name"]
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels.update({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid})
    labels.update({"batch.kubernetes.io/job-name": name, "job-name": name})
    if not meta.get("labels"):
        meta["labels"] = dict(labels)
    for key, value in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6),
                       ("completionMode", "NonIndexed"), ("suspend", False),
                       ("podReplacementPolicy", "TerminatingOrFailed")):
        spec.setdefault(key, value)


def validate_new(kind: Kind, obj: dict) -> None:
    """The create-time rules the toolbox depends on: names, labels, a Job's pod template."""
    meta = obj["metadata"]
    name = meta["name"]
    causes: list[tuple[str, str]] = []
    if len(name) > 253 or not NAME.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                       "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                       "alphanumeric character"))
    for key, value in (meta.get("labels") or {}).items():
        if not LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
            causes.append(("metadata.labels", f'Invalid value: "{key}": name part must be 63 characters or less '
                           "and consist of alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(("metadata.labels", f'Invalid value: "{value}": a valid label must be an empty string '
                           "or 63 characters or less, consist of alphanumeric characters, '-', '_' or '.'"))
    if kind.kind == "Job":
        if len(name) > 63:
            causes.append(("spec.template.labels", f'Invalid value: "{name}": must be no more than 63 characters'))
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            causes.append(("spec.template.spec.restartPolicy",
                           f'Unsupported value: "{pod.get("restartPolicy", "")}": supported values: '
                           '"OnFailure", "Never"'))
        if not pod.get("containers"):
            causes.append(("spec.template.spec.containers", "Required value"))
    if kind.kind == "Pod" and not (obj.get("spec") or {}).get("containers"):
        causes.append(("spec.containers", "Required value"))
    if causes:
        raise invalid(kind, name, causes)


def immutable_changes(kind: Kind, old: dict, new: dict) -> list[tuple[str, str]]:
    """Fields a real API server refuses to change on update: a Job's selector and pod template, a Pod's spec
    (but for images and the active deadline)."""
    causes = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if kind.kind == "Job":
        for field in ("template", "selector", "completionMode"):
            if old_spec.get(field) != new_spec.get(field):
                causes.append((f"spec.{field}", f"Invalid value: {json.dumps(new_spec.get(field))}: "
                               "field is immutable"))
    elif kind.kind == "Pod":
        def mutable_removed(spec: dict) -> dict:
            spec = copy.deepcopy(spec)
            spec.pop("activeDeadlineSeconds", None)
            for container in spec.get("containers") or []:
                container.pop("image", None)
            return spec
        if mutable_removed(old_spec) != mutable_removed(new_spec):
            causes.append(("spec", "Forbidden: pod updates may not change fields other than "
                           "`spec.containers[*].image`, `spec.activeDeadlineSeconds` (and a few others)"))
    return causes


def pod_qos(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(r.get("limits") and {k: v for k, v in (r.get("requests") or r["limits"]).items()} == r["limits"]
           and {"cpu", "memory"} <= set(r["limits"]) for r in resources):
        return "Guaranteed"
    return "Burstable"


def _parse_time(timestamp: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(timestamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def duration(seconds: float) -> str:
    """kubectl's short durations: 45s, 3m, 5h, 2d."""
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def age(timestamp: str | None) -> str:
    then = _parse_time(timestamp)
    return duration((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()) if then else "<unknown>"


def table_columns(kind: Kind, obj: dict) -> list[tuple[str, str, Any]]:
    """The columns `kubectl get` shows for a kind, as (name, type, value)."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if kind.kind == "Job":
        conditions = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        state = "Complete" if "Complete" in conditions else "Failed" if "Failed" in conditions else \
            "Suspended" if (obj.get("spec") or {}).get("suspend") else "Running"
        completions = f"{status.get('succeeded', 0)}/{(obj.get('spec') or {}).get('completions', 1)}"
        start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
        took = duration(((end or datetime.datetime.now(datetime.timezone.utc)) - start).total_seconds()) \
            if start else ""
        columns = [("Status", "string", state), ("Completions", "string", completions), ("Duration", "string", took)]
    elif kind.kind == "Pod":
        containers = (obj.get("spec") or {}).get("containers") or []
        ready = sum(1 for c in status.get("containerStatuses") or [] if c.get("ready"))
        restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
        columns = [("Ready", "string", f"{ready}/{len(containers)}"),
                   ("Status", "string", status.get("phase", "Pending")), ("Restarts", "string", str(restarts))]
    elif kind.kind == "Namespace":
        columns = [("Status", "string", status.get("phase", "Active"))]
    elif kind.kind == "Secret":
        columns = [("Type", "string", obj.get("type", "Opaque")), ("Data", "integer", len(obj.get("data") or {}))]
    elif kind.kind == "ConfigMap":
        columns = [("Data", "integer", len(obj.get("data") or {}) + len(obj.get("binaryData") or {}))]
    else:
        columns = []
    return [("Name", "string", meta["name"]), *columns, ("Age", "string", age(meta.get("creationTimestamp")))]


def to_table(kind: Kind, items: list[dict], metadata: dict, include: str) -> dict:
    """The `meta.k8s.io/v1` Table kubectl asks for (`Accept: ...;as=Table;...`) to print `kubectl get`."""
    sample = table_columns(kind, {"metadata": {"name": ""}})
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": [value for _, _, value in table_columns(kind, item)]}
        if include == "Object":
            row["object"] = {"apiVersion": kind.group_version, "kind": kind.kind, **item}
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": item["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": [{"name": name, "type": type_, "format": "name" if name == "Name" else "",
                                   "description": name, "priority": 0} for name, type_, _ in sample],
            "rows": rows}


# The protobuf encoding typed clients (kubectl's `create configmap`, `create secret`) send: the `k8s\0` envelope
# (runtime.Unknown) around the object. Only ConfigMap and Secret are decoded; other kinds get a 415.
def _proto_fields(buf: bytes) -> list[tuple[int, Any]]:
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 2:
            size = varint()
            out.append((number, buf[i:i + size]))
            i += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((number, buf[i:i + size]))
            i += size
        else:
            raise ValueError(f"protobuf wire type {wire}")
    return out


def _proto_map(entries: list[bytes], binary: bool = False) -> dict[str, str]:
    out = {}
    for entry in entries:
        fields = dict(_proto_fields(entry))
        value = fields.get(2, b"")
        out[fields.get(1, b"").decode()] = base64.b64encode(value).decode() if binary else value.decode()
    return out


# field number -> (name, how): "str", "bool", "map", "bmap" (map of bytes, as base64), "list", or a nested table
_PROTO_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 11: ("labels", "map"),
               12: ("annotations", "map"), 14: ("finalizers", "list")}
_PROTO_KINDS = {"ConfigMap": {1: ("metadata", _PROTO_META), 2: ("data", "map"), 3: ("binaryData", "bmap"),
                              4: ("immutable", "bool")},
                "Secret": {1: ("metadata", _PROTO_META), 2: ("data", "bmap"), 3: ("type", "str"),
                           4: ("stringData", "map"), 5: ("immutable", "bool")}}


def _proto_message(buf: bytes, table: dict) -> dict:
    grouped: dict[int, list] = {}
    for number, value in _proto_fields(buf):
        grouped.setdefault(number, []).append(value)
    out: dict[str, Any] = {}
    for number, values in grouped.items():
        if number not in table:
            continue
        name, how = table[number]
        if isinstance(how, dict):
            out[name] = _proto_message(values[-1], how)
        elif how in ("map", "bmap"):
            out[name] = _proto_map(values, binary=how == "bmap")
        elif how == "list":
            out[name] = [v.decode() for v in values]
        elif how == "bool":
            out[name] = bool(values[-1])
        elif values[-1]:
            out[name] = values[-1].decode()
    return out


def decode_protobuf(body: bytes) -> dict:
    """A ConfigMap or Secret from its Kubernetes protobuf encoding; ApiError 415 for anything else."""
    try:
        envelope = dict(_proto_fields(body[4:])) if body[:4] == b"k8s\x00" else {}
        type_meta = dict(_proto_fields(envelope.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        if kind in _PROTO_KINDS:
            return {"apiVersion": api_version, "kind": kind, **_proto_message(envelope.get(2, b""), _PROTO_KINDS[kind])}
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media "
                   "types include: application/json, application/yaml (this test server decodes protobuf for "
                   "ConfigMap and Secret only)")


# ---------------------------------------------------------------------------------------------------------------
# Discovery and OpenAPI, from KINDS
def group_versions() -> dict[str, list[Kind]]:
    out: dict[str, list[Kind]] = {}
    for kind in KINDS:
        out.setdefault(kind.group_version, []).append(kind)
    return out


def resource_list(group_version: str) -> dict:
    """`/api/v1`, `/apis/batch/v1`: an APIResourceList with each resource and its subresources."""
    resources = []
    for kind in group_versions().get(group_version, []):
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


def group_list() -> dict:
    """`/apis`: every named group with its preferred version."""
    groups = []
    for gv in group_versions():
        if "/" in gv:
            name, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def aggregated(core: bool) -> dict:
    """apidiscovery.k8s.io/v2 for `/api` (core) or `/apis` (named groups): one answer instead of one per group."""
    items: dict[str, list] = {}
    for gv, kinds in group_versions().items():
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


def openapi_index() -> dict:
    paths = {}
    for gv in group_versions():
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
    api = f"{kind.group}-{kind.version}" if kind.group else kind.version
    schema = kv.schema_contents(f"{folder}/{kind.kind.lower()}-{api}.json", SCHEMA_VERSION)
    registry = Resource.from_contents(kv.schema_contents(f"{folder}/_definitions.json", SCHEMA_VERSION)) @ \
        (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def unknown_fields(kind: Kind, obj: dict) -> list[str]:
    """Dotted paths of the fields the kind's schema does not declare."""
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
class KmockHooks(kmock.KubernetesEmulator):
    """Routes each parsed request to `serve`; what it does not answer goes to kmock's own fallbacks."""

    async def serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        raise NotImplementedError

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            response = await self.serve(request, request._raw_request)
            return response if response is not None else await super()._handle(request)
        finally:
            del self._requests[:-12]      # a window larger than the clients' concurrency (8)


# ---------------------------------------------------------------------------------------------------------------
class Emulator(KmockHooks):
    """The API server: kmock stores the objects and the resource table; the verbs' semantics live here."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in KINDS:
            self.resources[f"{kind.group}/{kind.version}/{kind.plural}".lstrip("/")] = kmock.ResourceInfo(
                kind=kind.kind, singular=kind.kind.lower(), namespaced=kind.namespaced, verbs=kind.verbs,
                shortnames=kind.short_names, categories=kind.categories,
                subresources=[s for s, _, _ in kind.subresources])
        self.defaults = {"max_page": None, "gc_delay": 0.0, "aggregated": True}
        self.latency = 0.0
        self.started = now()
        self.files = Path(tempfile.mkdtemp(prefix="kube-api-pods-"))
        self.version = 0
        self.events: list[tuple[int, str, str, dict]] = []     # (resourceVersion, plural, type, object)
        self.oldest_event = 1
        self.tick = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.clear()

    def clear(self) -> None:
        """Back to an empty cluster with the command line's settings."""
        for key in list(self.objects):
            del self.objects[key]
        self.log: list[dict] = []
        self.faults: list[dict] = []
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.controller = False
        self.snapshots: dict[tuple, list[tuple[tuple[str, str], dict]]] = {}
        self.max_page: int | None = self.defaults["max_page"]
        self.gc_delay: float = self.defaults["gc_delay"]
        self.aggregated: bool = self.defaults["aggregated"]
        self.events.clear()
        self.oldest_event = self.version + 1
        for task in self.tasks:
            task.cancel()

    # --- storage -------------------------------------------------------------------------------------------
    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple:
        return (kmock.resource(kind.group, kind.version, kind.plural), namespace if kind.namespaced else None, name)

    def stored(self, kind: Kind, namespace: str | None, name: str) -> dict | None:
        key = self._key(kind, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def all(self, kind: Kind | None = None) -> list[tuple[Kind, dict]]:
        out = []
        for (res, _ns, _name), obj in list(self.objects.items()):
            found = BY_PLURAL.get((res.group, res.version, res.plural))
            if found and (kind is None or found == kind) and not obj.deleted:
                out.append((found, obj.raw))
        return out

    def write(self, kind: Kind, obj: dict, event: str = "MODIFIED") -> dict:
        """Store a new version with the next resourceVersion and tell the watchers."""
        self.version += 1
        obj = {"apiVersion": kind.group_version, "kind": kind.kind, **obj}
        obj["metadata"]["resourceVersion"] = str(self.version)
        key = self._key(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key not in self.objects:
            self.objects[key] = obj
        elif self.objects[key].deleted:
            self.objects[key].create(obj)
        else:
            self.objects[key].history.append(obj)
        self._emit(kind, event, obj)
        return copy.deepcopy(obj)

    def remove(self, kind: Kind, obj: dict) -> None:
        self.version += 1
        meta = obj["metadata"]
        self.objects[self._key(kind, meta.get("namespace"), meta["name"])].delete()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.version)
        self._emit(kind, "DELETED", gone)

    def _emit(self, kind: Kind, event: str, obj: dict) -> None:
        self.events.append((self.version, kind.plural, event, obj))
        if len(self.events) > 5000:
            del self.events[:1000]
            self.oldest_event = self.events[0][0]
        self.tick.set()
        self.tick = asyncio.Event()

    def seed(self, obj: dict) -> dict:
        """Store an object as given (status included), stamping only the metadata it lacks."""
        kind = BY_KIND[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        if not kind.namespaced:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        return self.write(kind, obj, "MODIFIED" if self.stored(kind, meta.get("namespace"), meta["name"]) else "ADDED")

    # --- dispatch ------------------------------------------------------------------------------------------
    async def serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        path = request.url.path
        if path.startswith("/_test/"):
            return await self.control(path[len("/_test/"):], request.data if isinstance(request.data, dict) else {})
        if self.latency:
            await asyncio.sleep(self.latency)        # a remote API server's round trip (benchmarks only)
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        self.log.append({"method": method, "path": path, "query": dict(request.params)})
        for fault in self.faults:
            if fault["times"] > 0 and fault["method"] == method and re.search(fault["path"], path):
                fault["times"] -= 1
                return aiohttp.web.json_response(fault["body"], status=fault["status"], headers=fault["headers"])
        try:
            return await self._serve(request, raw, method, path)
        except ApiError as err:
            return err.response()

    async def _serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest, method: str,
                     path: str) -> aiohttp.web.StreamResponse | None:
        accept = request.headers.get("Accept", "")
        path = path.rstrip("/") or "/"                    # the official client asks for /api/, /apis/batch/v1/
        if method == "GET" and path == "/version":
            return aiohttp.web.json_response(SERVER_VERSION)
        if method == "GET" and path in ("/api", "/apis"):
            if self.aggregated and "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept + ";":
                return aiohttp.web.Response(body=json.dumps(aggregated(path == "/api")).encode(),
                                            headers={"Content-Type": AGGREGATED})
            if path == "/api":
                return aiohttp.web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                                  "serverAddressByClientCIDRs": [{
                                                      "clientCIDR": "0.0.0.0/0", "serverAddress": raw.host}]})
            return aiohttp.web.json_response(group_list())
        m = re.fullmatch(r"/api/(v1)|/apis/([^/]+/[^/]+)", path)
        if method == "GET" and m:
            gv = m.group(1) or m.group(2)
            if gv not in group_versions():
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.json_response(resource_list(gv))
        if method == "GET" and re.fullmatch(r"/apis/[^/]+", path):
            listed = [g for g in group_list()["groups"] if g["name"] == path.split("/")[2]]
            if not listed:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.json_response({"kind": "APIGroup", "apiVersion": "v1", **listed[0]})
        if method == "GET" and path == "/openapi/v2":
            protobuf = "protobuf" in accept
            return aiohttp.web.Response(body=openapi_v2(protobuf),
                                        content_type="application/octet-stream" if protobuf else "application/json")
        if method == "GET" and path == "/openapi/v3":
            return aiohttp.web.json_response(openapi_index())
        if method == "GET" and path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):].split("/", 1)[-1]
            if gv not in group_versions():
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.Response(text=openapi_doc(gv), content_type="application/json")
        m = re.fullmatch(r"/api/v1/namespaces(?:/([^/]+))?", path)
        if m and method == "GET":
            return self.namespaces(m.group(1), dict(request.params), accept)
        if request.resource is None:
            return None
        res = request.resource
        kind = BY_PLURAL.get((res.group, res.version, res.plural))
        if kind is None or (request.namespace is not None and not kind.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource(kind, request, raw, method)

    async def _resource(self, kind: Kind, request: kmock.Request, raw: aiohttp.web.BaseRequest,
                        method: str) -> aiohttp.web.StreamResponse:
        ns, name, sub, params = request.namespace, request.name, request.subresource, dict(request.params)
        verb = {"GET": "list" if name is None else "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "deletecollection" if name is None else "delete"}.get(method, "")
        if sub is None and verb not in kind.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        body = request.data
        if method in ("POST", "PUT") and "protobuf" in request.headers.get("Content-Type", ""):
            body = decode_protobuf(request.body)
        dry = params.get("dryRun") == "All"
        if name is None:
            if method == "GET" and params.get("watch") in ("true", "1"):
                return await self.watch_events(kind, ns, params, raw)
            if method == "GET":
                return self.list_page(kind, ns, params, request.headers.get("Accept", ""))
            if method == "POST":
                return self.create_object(kind, ns, body, params)
            if method == "DELETE":
                return self.delete_collection(kind, ns, params, request.data)
        elif sub is None or (sub == "status" and ("status", kind.kind, STATUS_VERBS) in kind.subresources):
            if method == "GET":
                obj = self.stored(kind, ns, name)
                if obj is None:
                    raise not_found(kind, name)
                return aiohttp.web.json_response(obj)
            if method == "PUT":
                return self.update_object(kind, ns, name, body, sub, dry)
            if method == "PATCH":
                return self.patch_object(kind, ns, name, request.data, request.headers.get("Content-Type", ""), sub,
                                         dry)
            if method == "DELETE" and sub is None:
                return self.delete_object(kind, ns, name, params, request.data)
        elif kind.kind == "Pod" and sub == "log" and method == "GET":
            return self.pod_log(ns, name, params)
        elif kind.kind == "Pod" and sub == "exec" and method in ("GET", "POST"):
            return await self.exec_tar(request, raw)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def namespaces(self, name: str | None, params: dict, accept: str) -> aiohttp.web.Response:
        """Namespaces exist implicitly: the usual three plus every one that holds an object."""
        def namespace(ns: str) -> dict:
            return {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, ns)), "resourceVersion": "1",
                                 "creationTimestamp": self.started, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        kind = BY_KIND["Namespace"]
        if name is not None:
            obj = namespace(name)
            if "as=Table" in accept:
                return aiohttp.web.json_response(to_table(kind, [obj], {"resourceVersion": "1"}, ""))
            return aiohttp.web.json_response(obj)
        names = {"default", "kube-public", "kube-system"} | {o["metadata"]["namespace"] for _, o in self.all()
                                                            if o["metadata"].get("namespace")}
        items = [namespace(ns) for ns in sorted(names)
                 if matches_labels(namespace(ns)["metadata"]["labels"], params.get("labelSelector"))]
        for item in items:
            del item["apiVersion"], item["kind"]
        if "as=Table" in accept:
            return aiohttp.web.json_response(to_table(kind, items, {"resourceVersion": str(self.version)}, ""))
        return aiohttp.web.json_response({"kind": "NamespaceList", "apiVersion": "v1",
                                          "metadata": {"resourceVersion": str(self.version)}, "items": items})

    # --- lists and watches ---------------------------------------------------------------------------------
    def _matching(self, kind: Kind, ns: str | None, params: dict) -> list[tuple[tuple[str, str], dict]]:
        try:
            found = [((o["metadata"].get("namespace") or "", o["metadata"]["name"]), o) for _, o in self.all(kind)
                     if (ns is None or o["metadata"].get("namespace") == ns)
                     and matches_labels(o["metadata"].get("labels") or {}, params.get("labelSelector"))
                     and matches_fields(o, params.get("fieldSelector"))]
        except ValueError as err:
            raise bad_request(f"unable to parse requirement: {err}") from None
        return sorted(found, key=lambda pair: pair[0])

    def list_page(self, kind: Kind, ns: str | None, params: dict, accept: str) -> aiohttp.web.Response:
        """A page of the list: from a snapshot taken at the first page, so later pages see the same state."""
        filtered = bool(params.get("labelSelector") or params.get("fieldSelector"))
        snapshot_key = (kind.plural, ns, params.get("labelSelector"), params.get("fieldSelector"))
        token = params.get("continue")
        if token:
            try:
                state = json.loads(base64.b64decode(token))
                rv, start = int(state["rv"]), tuple(state["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: the continue token cannot be decoded") from None
            items = self.snapshots.get((*snapshot_key, rv))
            if items is None:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter.")
            items = [pair for pair in items if pair[0] > start]
        else:
            rv, items = self.version, self._matching(kind, ns, params)
        limit = int(params.get("limit") or 0)
        if limit and self.max_page:
            limit = min(limit, self.max_page)
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            if not token:
                self.snapshots[(*snapshot_key, rv)] = items
            while len(self.snapshots) > 64:
                del self.snapshots[next(iter(self.snapshots))]
            metadata["continue"] = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                                "start": list(items[limit - 1][0])}).encode()).decode()
            if not filtered:
                metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        # list items carry no type (the list says it once); serialised as they are, never modified
        objects = [{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")} for _, obj in items]
        if "as=Table" in accept:
            return aiohttp.web.json_response(to_table(kind, objects, metadata, params.get("includeObject", "")))
        return aiohttp.web.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.group_version,
                                          "metadata": metadata, "items": objects})

    async def watch_events(self, kind: Kind, ns: str | None, params: dict,
                    raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Watch events as JSON lines: the current objects first unless a resourceVersion is given."""
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        since = int(params.get("resourceVersion") or 0)
        deadline = asyncio.get_running_loop().time() + float(params.get("timeoutSeconds") or 1800)

        async def send(event: str, obj: dict) -> None:
            await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
        if since and since + 1 < self.oldest_event:
            await send("ERROR", ApiError(410, "Expired", f"too old resource version: {since} "
                                         f"({self.oldest_event - 1})").body())
            return response
        if not since:
            for _, obj in self._matching(kind, ns, params):
                await send("ADDED", obj)
            since = self.version
        while True:
            tick = self.tick
            for rv, plural, event, obj in [e for e in self.events if e[0] > since]:
                since = rv
                if plural == kind.plural and (ns is None or obj["metadata"].get("namespace") == ns) and \
                        matches_labels(obj["metadata"].get("labels") or {}, params.get("labelSelector")) and \
                        matches_fields(obj, params.get("fieldSelector")):
                    await send(event, obj)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return response
            try:
                await asyncio.wait_for(tick.wait(), timeout=left)
            except asyncio.TimeoutError:
                return response

    # --- writes --------------------------------------------------------------------------------------------
    def _checked_fields(self, kind: Kind, obj: dict, params: dict) -> list[str]:
        """fieldValidation: Strict refuses unknown fields (400), Warn drops them and warns; unset keeps them."""
        mode = params.get("fieldValidation")
        if mode not in ("Strict", "Warn"):
            return []
        unknown = unknown_fields(kind, obj)
        if unknown and mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
        strip_unknown(obj, unknown)
        return [f'299 - "unknown field \\"{p}\\""' for p in unknown]

    def create_object(self, kind: Kind, ns: str | None, body: Any, params: dict) -> aiohttp.web.Response:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        if obj.get("kind", kind.kind) != kind.kind or obj.get("apiVersion", kind.group_version) != kind.group_version:
            raise bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match the expected "
                              f"API version ({kind.group_version}) or the kind ({obj.get('kind')}) is not "
                              f"{kind.kind}")
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise invalid(kind, "", [("metadata.name", "Required value: name or generateName is required")])
        warnings = self._checked_fields(kind, obj, params)
        validate_new(kind, obj)
        if self.stored(kind, ns, meta["name"]) is not None:
            raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if kind.kind in ("Job", "Pod"):
            meta["generation"] = 1
        if kind.kind == "Job":
            default_job(obj)
            obj["status"] = {}
        elif kind.kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": pod_qos(obj)}
        headers = {"Warning": ", ".join(warnings)} if warnings else None
        if params.get("dryRun") == "All":
            return aiohttp.web.json_response({"apiVersion": kind.group_version, "kind": kind.kind, **obj},
                                             status=201, headers=headers)
        stored = self.write(kind, obj, "ADDED")
        if kind.kind == "Job" and self.controller:
            self.spawn_pod(stored)
        return aiohttp.web.json_response(stored, status=201, headers=headers)

    def update_object(self, kind: Kind, ns: str | None, name: str, body: Any, sub: str | None,
               dry: bool) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        meta = body.get("metadata") or {}
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if kind.namespaced and meta.get("namespace", ns) != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        return self._commit(kind, current, copy.deepcopy(body), sub, dry)

    def patch_object(self, kind: Kind, ns: str | None, name: str, body: Any, content_type: str, sub: str | None,
              dry: bool) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        media = content_type.split(";")[0].strip()
        if media == "application/json-patch+json" and isinstance(body, list):
            new = json_patch(current, body)
        elif media in ("application/merge-patch+json", "application/strategic-merge-patch+json") \
                and isinstance(body, dict):
            new = merge_patch(current, body)      # strategic merge: lists are replaced, not merged by key
        else:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/strategic-merge-patch+json")
        return self._commit(kind, current, new, sub, dry)

    def _commit(self, kind: Kind, current: dict, new: dict, sub: str | None, dry: bool) -> aiohttp.web.Response:
        """The shared end of PUT and PATCH: optimistic concurrency, immutable fields, status kept apart."""
        name = current["metadata"]["name"]
        asked = (new.get("metadata") or {}).get("resourceVersion")
        if asked and asked != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object '
                           "has been modified; please apply your changes to the latest version and try again",
                           {"name": name, "group": kind.group, "kind": kind.plural})
        has_status = any(s == "status" for s, _, _ in kind.subresources)
        if sub == "status":
            new = {**current, "status": new.get("status")}
        elif has_status:
            new["status"] = current.get("status")
            if new["status"] is None:
                del new["status"]
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
            else:
                meta.pop(key, None)
        causes = immutable_changes(kind, current, new)
        if causes:
            raise invalid(kind, name, causes)
        if new.get("spec") != current.get("spec") and sub != "status" and "generation" in meta:
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        new = {"apiVersion": kind.group_version, "kind": kind.kind, **new}
        if new == current or dry:
            return aiohttp.web.json_response(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.remove(kind, new)                  # the last finalizer is gone: the object goes too
            return aiohttp.web.json_response(new)
        return aiohttp.web.json_response(self.write(kind, new))

    # --- deletion and garbage collection -------------------------------------------------------------------
    @staticmethod
    def _delete_options(params: dict, body: Any) -> dict:
        options = dict(body) if isinstance(body, dict) else {}
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in params:
                options.setdefault(key, params[key] if key != "orphanDependents" else params[key] == "true")
        if "dryRun" in params:
            options.setdefault("dryRun", [params["dryRun"]])
        return options

    def delete_object(self, kind: Kind, ns: str | None, name: str, params: dict, body: Any) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        options = self._delete_options(params, body)
        warning = None
        if "propagationPolicy" not in options and "orphanDependents" not in options and kind.kind == "Job":
            warning = ('299 - "child pods are preserved by default when jobs are deleted; set '
                       'propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress '
                       'this warning"')
        result = self._delete_one(kind, current, options)
        return aiohttp.web.json_response(result, headers={"Warning": warning} if warning else None)

    def delete_collection(self, kind: Kind, ns: str | None, params: dict, body: Any) -> aiohttp.web.Response:
        options = self._delete_options(params, body)
        deleted = [self._delete_one(kind, obj, options) for _, obj in self._matching(kind, ns, params)]
        for obj in deleted:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return aiohttp.web.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.group_version,
                                          "metadata": {"resourceVersion": str(self.version)}, "items": deleted})

    def _delete_one(self, kind: Kind, current: dict, options: dict) -> dict:
        """Delete now, or mark (deletionTimestamp, finalizers) and let the garbage collector finish."""
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != meta.get(field):
                raise ApiError(409, "Conflict", f"Precondition failed: {field.replace('uid', 'UID')} in precondition: "
                               f"{pre[field]}, {field.replace('uid', 'UID')} in object meta: {meta.get(field)}",
                               {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        policy = options.get("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents")
            policy = "Orphan" if orphan is True or (orphan is None and kind.kind == "Job") else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f'Unsupported value: "{policy}": supported values: "Foreground", "Background", '
                              '"Orphan"')
        current = copy.deepcopy(current)
        meta = current["metadata"]
        if "All" in (options.get("dryRun") or []) or meta.get("deletionTimestamp"):
            return current
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        if extra and self._dependents(meta["uid"]):
            finalizers.append(extra)
        if finalizers:
            meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=0, finalizers=finalizers)
            marked = self.write(kind, current)
            if extra in finalizers:
                self._collect_later(kind, marked, policy)
            return marked
        self.remove(kind, current)
        if self._dependents(meta["uid"]):
            self._collect_later(kind, current, "Background")
        return current

    def _dependents(self, uid: str) -> list[tuple[Kind, dict]]:
        return [(k, o) for k, o in self.all() if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences")
                                                      or [])]

    def _collect_later(self, kind: Kind, owner: dict, policy: str) -> None:
        if not self.gc_delay:
            self._collect(kind, owner, policy)
            return

        async def later() -> None:
            await asyncio.sleep(self.gc_delay)
            self._collect(kind, owner, policy)
        task = asyncio.get_running_loop().create_task(later())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _collect(self, kind: Kind, owner: dict, policy: str) -> None:
        """The garbage collector's work for one owner: orphan or delete its dependents, then release it."""
        uid, live_uids = owner["metadata"]["uid"], {o["metadata"]["uid"] for _, o in self.all()}
        for dep_kind, dep in self._dependents(uid):
            dep = copy.deepcopy(dep)
            others = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if policy == "Orphan" or any(r.get("uid") in live_uids - {uid} for r in others):
                dep["metadata"]["ownerReferences"] = others
                if not others:
                    del dep["metadata"]["ownerReferences"]
                self.write(dep_kind, dep)
            else:
                self._delete_one(dep_kind, dep, {"propagationPolicy": policy})
        current = self.stored(kind, owner["metadata"].get("namespace"), owner["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != uid:
            return
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        left = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        if left:
            current["metadata"]["finalizers"] = left
            self.write(kind, current)
        else:
            self.remove(kind, current)

    # --- pods: the fake Job controller, logs, exec ---------------------------------------------------------
    def spawn_pod(self, job: dict) -> None:
        """What the Job controller does first: one Pending pod owned by the Job."""
        meta, template = job["metadata"], job["spec"]["template"]
        pod = {"metadata": {"name": f"{meta['name']}-{uuid.uuid4().hex[:5]}", "namespace": meta["namespace"],
                            "labels": dict(template["metadata"].get("labels") or {}),
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": copy.deepcopy(template["spec"]), "status": {"phase": "Pending"}}
        pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        self.write(BY_KIND["Pod"], pod, "ADDED")

    def pod_log(self, ns: str | None, name: str, params: dict) -> aiohttp.web.Response:
        pod = self.stored(BY_KIND["Pod"], ns, name)
        if pod is None:
            raise not_found(BY_KIND["Pod"], name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if params.get("container") and containers and params["container"] not in containers:
            raise bad_request(f"container {params['container']} is not valid for pod {name}")
        text = self.pod_logs.get((ns or "", name), "")
        tail = params.get("tailLines")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-int(tail):]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def exec_tar(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Exec over a websocket (v5/v4 channel protocol). Only `tar xmf - -C DIR` is understood: the archive
        from stdin is unpacked into this pod's directory under `self.files`, where tests read it back."""
        commands = raw.query.getall("command", [])
        ws = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(raw)
        stdin = bytearray()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                if msg.data[0] == 0:
                    stdin += msg.data[1:]
                elif msg.data[0] == 255 and msg.data[1:2] == b"\x00":       # v5: stdin closed
                    break
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
        status = {"metadata": {}, "status": "Success"}
        if commands[:3] == ["tar", "xmf", "-"] and "-C" in commands:
            target = self.files / (request.name or "") / commands[commands.index("-C") + 1].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(bytes(stdin))) as tar:
                tar.extractall(target, filter="data")
        else:
            status = {"metadata": {}, "status": "Failure", "message": f"unsupported command {commands}"}
        if not ws.closed:
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
        return ws

    # --- test controls -------------------------------------------------------------------------------------
    async def control(self, action: str, data: dict) -> aiohttp.web.Response:
        """What a test may do besides the API: seed objects, inject faults, set logs and server behaviour."""
        if action == "reset":
            self.clear()
        elif action == "seed":
            self.seed(data)
        elif action == "fault":
            self.faults.append({"method": data["method"].upper(), "path": data["path"], "status": data["status"],
                                "times": data.get("times", 1), "headers": data.get("headers") or {},
                                "body": data.get("body") or {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                             "code": data["status"], "message": "injected fault"}})
        elif action == "log":
            self.pod_logs[(data["namespace"], data["pod"])] = data["text"]
        elif action == "pod-file":
            path = self.files / data["pod"] / data["path"].lstrip("/")
            return aiohttp.web.json_response({"text": path.read_text() if path.is_file() else None})
        elif action == "controller":
            self.controller = bool(data.get("on"))
        elif action == "paging":
            self.max_page = data.get("max_page") or None
        elif action == "gc":
            self.gc_delay = float(data.get("delay") or 0)
        elif action == "discovery":
            self.aggregated = bool(data.get("aggregated", True))
        elif action == "expire-lists":
            self.snapshots.clear()
        elif action == "requests":
            return aiohttp.web.json_response(self.log)
        elif action == "clear-requests":
            self.log.clear()
        elif action == "objects":
            kind = next(k for k in KINDS if k.plural == data["plural"])
            ns = data.get("namespace") if kind.namespaced else None
            return aiohttp.web.json_response([o for _, o in self._matching(kind, ns, {})])
        else:
            return aiohttp.web.json_response({"error": f"unknown control {action}"}, status=404)
        return aiohttp.web.json_response({"ok": True})


async def serve(port: int, latency_ms: float = 0.0, max_page: int | None = None, gc_delay: float = 0.0) -> None:
    emulator = Emulator()
    emulator.latency = latency_ms / 1000
    emulator.defaults.update(max_page=max_page, gc_delay=gc_delay)
    emulator.clear()
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API response (benchmarks)")
    parser.add_argument("--max-page", type=int, default=None,
                        help="answer a list that has a limit with at most N items per page (shows client paging)")
    parser.add_argument("--gc-delay", type=float, default=0.0,
                        help="seconds before the garbage collector handles dependents (0: before the response)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms, args.max_page, args.gc_delay))


if __name__ == "__main__":
    main()
