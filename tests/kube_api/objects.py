"""Objects as the real API server treats them: errors, validation, patches, defaulting, tables, protobuf."""
from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from typing import Any

import aiohttp
import aiohttp.web
from .kinds import Kind


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


def default_service(service: dict) -> None:
    """What the API server fills in on a new Service (a headless one keeps clusterIP None)."""
    spec = service.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("clusterIP", "10.96.0.%d" % (sum(map(ord, service["metadata"]["name"])) % 250 + 2))
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    service["status"] = {"loadBalancer": {}}


DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PYTORCHJOB_RESTART = ("Always", "OnFailure", "Never", "ExitCode")


def _pytorchjob_causes(obj: dict) -> list[tuple[str, str]]:
    """The training operator's validation of a PyTorchJob (its webhook and the CRD's enums)."""
    specs = (obj.get("spec") or {}).get("pytorchReplicaSpecs")
    if not isinstance(specs, dict) or not specs:
        return [("spec.pytorchReplicaSpecs", "Required value")]
    causes = []
    for rtype, replica in specs.items():
        where = f"spec.pytorchReplicaSpecs.{rtype}"
        if rtype not in ("Master", "Worker"):
            causes.append((where, f'Unsupported value: "{rtype}": supported values: "Master", "Worker"'))
            continue
        containers = ((replica.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            causes.append((f"{where}.template.spec.containers", "Required value"))
        elif "pytorch" not in [c.get("name") for c in containers]:
            causes.append((f"{where}.template.spec.containers", "Invalid value: there is no container named pytorch"))
        if any(not c.get("image") for c in containers):
            causes.append((f"{where}.template.spec.containers", "Required value: image"))
        if rtype == "Master" and replica.get("replicas", 1) != 1:
            causes.append((f"{where}.replicas", "Invalid value: there must be only 1 master replica"))
        if replica.get("restartPolicy", "Never") not in PYTORCHJOB_RESTART:
            causes.append((f"{where}.restartPolicy", f'Unsupported value: "{replica.get("restartPolicy")}"'))
    return causes


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
    if kind.kind in ("Service", "PyTorchJob") and not DNS_1035.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
                       "alphanumeric characters or '-', start with an alphabetic character, and end with an "
                       "alphanumeric character"))
    if kind.kind == "Service":
        spec = obj.get("spec") or {}
        if spec.get("clusterIP") != "None" and not spec.get("ports"):
            causes.append(("spec.ports", "Required value"))
        for key, value in (spec.get("selector") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                causes.append((f"spec.selector.{key}", f'Invalid value: "{value}"'))
    if kind.kind == "PyTorchJob":
        causes += _pytorchjob_causes(obj)
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
    elif kind.kind == "Service":
        spec = obj.get("spec") or {}
        ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        columns = [("Type", "string", spec.get("type", "ClusterIP")), ("Cluster-IP", "string", spec.get("clusterIP", "")),
                   ("External-IP", "string", "<none>"), ("Port(s)", "string", ports or "<none>")]
    elif kind.kind == "PyTorchJob":
        conditions = status.get("conditions") or []
        columns = [("State", "string", conditions[-1].get("type", "") if conditions else "")]
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
