"""The resources the test API server serves, and label/field selectors as the real server reads them."""
from __future__ import annotations

import dataclasses
import re
from typing import Any


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
    crd: bool = False               # a custom resource: served only once a test installs it (Control.crd)

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
    Kind("", "v1", "services", "Service", short_names=("svc",), categories=("all",),
         subresources=(("status", "Service", STATUS_VERBS),)),
    Kind("", "v1", "events", "Event", short_names=("ev",)),
    Kind("", "v1", "nodes", "Node", namespaced=False, short_names=("no",),
         subresources=(("status", "Node", STATUS_VERBS),)),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    # Every namespace exists (kubectl asks for one when an object is not found); only get and list are served.
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), verbs=("get", "list")),
    # The Kubeflow training operator's CRD (kubeflow.org/v1), where a test installs it.
    Kind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", categories=("all", "kubeflow"),
         subresources=(("status", "PyTorchJob", STATUS_VERBS),), crd=True),
)
CRDS = frozenset(k.plural for k in KINDS if k.crd)
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
