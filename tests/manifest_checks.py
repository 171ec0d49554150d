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


OLDEST = "1.33.0"             # the oldest Kubernetes whose schema the toolbox's manifests must pass


def validate_oldest(obj: dict[str, Any]) -> None:
    """Strictly valid for the oldest Kubernetes the toolbox supports, and for the newest (validate_manifest)."""
    try:
        kubernetes_validate.validate(obj, OLDEST, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise AssertionError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {OLDEST} schema: "
                             f"{'.'.join(map(str, err.path))}: {err.message}") from None
    validate_manifest(obj)


# The PyTorchJob CRD (kubeflow.org/v1) is not vendored: its fields are checked one by one against the Kubeflow
# training operator's API types, and each pod template as a core PodTemplate (strict, oldest and newest schema).
PYTORCHJOB_SPEC = {"runPolicy", "elasticPolicy", "pytorchReplicaSpecs", "nprocPerNode"}
RUN_POLICY = {"cleanPodPolicy": str, "ttlSecondsAfterFinished": int, "activeDeadlineSeconds": int,
              "backoffLimit": int, "schedulingPolicy": dict, "suspend": bool, "managedBy": str}
REPLICA = {"replicas": int, "template": dict, "restartPolicy": str}


def validate_pytorchjob(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "kubeflow.org/v1" and obj["kind"] == "PyTorchJob"
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, set(obj)
    name = obj["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, f"not a DNS-1035 label: {name}"
    spec = obj["spec"]
    assert set(spec) <= PYTORCHJOB_SPEC, set(spec) - PYTORCHJOB_SPEC
    assert isinstance(spec.get("nprocPerNode", ""), str)
    for key, value in spec.get("runPolicy", {}).items():
        assert key in RUN_POLICY and isinstance(value, RUN_POLICY[key]), f"runPolicy.{key}: {value!r}"
    assert spec.get("runPolicy", {}).get("cleanPodPolicy", "None") in ("All", "Running", "None")
    replicas = spec["pytorchReplicaSpecs"]
    assert set(replicas) <= {"Master", "Worker"} and "Master" in replicas, set(replicas)
    assert replicas["Master"].get("replicas", 1) == 1
    for rtype, replica in replicas.items():
        for key, value in replica.items():
            assert key in REPLICA and isinstance(value, REPLICA[key]), f"{rtype}.{key}: {value!r}"
        assert replica.get("restartPolicy", "Never") in ("Always", "OnFailure", "Never", "ExitCode")
        containers = replica["template"]["spec"]["containers"]
        assert "pytorch" in [c["name"] for c in containers] and all(c.get("image") for c in containers)
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"{name}-{rtype.lower()}"},
                    "template": replica["template"]}
        validate_oldest(template)
