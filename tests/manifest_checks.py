"""Validate rendered manifests: the official Kubernetes OpenAPI schema plus server-side rules it misses."""
from __future__ import annotations

import re
from typing import Any

import kubernetes_validate

K8S_VERSION = "1.37.0"        # the newest schemas shipped by kubernetes-validate 1.37.0 (pinned)
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]i?|Ki)?$")


def _pod_spec(obj: dict) -> dict:
    if obj["kind"] == "Job":
        return obj["spec"]["template"]["spec"]
    return obj.get("spec", {}) if obj["kind"] == "Pod" else {}


def validate_manifest(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the first problem."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise AssertionError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: schema: "
                             f"{'.'.join(map(str, err.path))}: {err.message}") from None
    meta = obj["metadata"]
    assert len(meta["name"]) <= 63 and NAME.match(meta["name"]), f"bad name {meta['name']!r}"
    for key, value in (meta.get("labels") or {}).items():
        assert LABEL_KEY.match(key) and len(key.split("/")[-1]) <= 63, f"bad label key {key!r}"
        assert isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.match(value), f"bad label value {value!r}"
    if obj["kind"] == "Job":
        assert _pod_spec(obj)["restartPolicy"] in ("Never", "OnFailure"), "Job pods must not restart Always"
    for container in _pod_spec(obj).get("containers", []):
        for kind in ("requests", "limits"):
            for res, q in (container.get("resources", {}).get(kind) or {}).items():
                assert isinstance(q, str), f"{res} {kind}: quantity must be a string, got {q!r}"
                assert QUANTITY.match(q), f"{res} {kind}: bad quantity {q!r}"
