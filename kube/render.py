"""Manifests, pure: a Run (or the base settings) -> Job, Pod, Secret and ConfigMap dicts via templates/*.j2."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .errors import ConfigError
from .model import Project, Run, RunSettings
from .naming import is_label_value, is_name, sanitize

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ANNOTATION_SPEC = "kube-toolbox/spec-hash"
ANNOTATION_HPARAMS = "kube-toolbox/hparams"
FILES_MOUNT = "/etc/toolbox/files"
SSH_MOUNT = "/etc/toolbox/ssh"
MAX_FILES_BYTES = 900 * 1024          # a ConfigMap holds at most 1 MiB in all
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)    # libyaml when the wheel has it: ~10x faster
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]i?|Ki)?$")


@lru_cache(maxsize=8)
def _environment(override_dir: str | None):
    import jinja2
    loaders = ([jinja2.FileSystemLoader(override_dir)] if override_dir else []) + [jinja2.FileSystemLoader(str(TEMPLATES))]
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True)
    env.filters["j"] = lambda value: json.dumps(value, sort_keys=False)
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    return env


def _template(project: Project, name: str):
    override = project.root / "config" / "templates"
    return _environment(str(override) if (override / name).is_file() else None).get_template(name)


def _drop_empty(obj: Any) -> Any:
    """Remove keys whose value is None or an empty list/dict: no empty affinity or env blocks."""
    if isinstance(obj, dict):
        return {k: _drop_empty(v) for k, v in obj.items() if v not in (None, [], {})}
    if isinstance(obj, list):
        return [_drop_empty(v) for v in obj]
    return obj


def _load(text: str, what: str) -> dict:
    try:
        doc = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as err:
        raise ConfigError(what, "", f"template rendered invalid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict) or "kind" not in doc:
        raise ConfigError(what, "", "template must render one Kubernetes object")
    return _drop_empty(doc)


def quantity(value: float, unit: str = "") -> str:
    """A Kubernetes quantity string: whole numbers as is, fractions in milli (CPU) or Mi (memory)."""
    if float(value).is_integer():
        return f"{int(value)}{unit}"
    if unit == "Gi":
        return f"{int(round(value * 1024))}Mi"
    return f"{int(round(value * 1000))}m"


def resources(s: RunSettings) -> dict:
    """Requests from the settings; limits = limit_ratio x requests for CPU and memory, = requests for GPUs."""
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


@dataclass(frozen=True)
class Extras:
    """Objects a workload refers to by name: the .env Secret and the `file:` ConfigMap (None when absent)."""

    env_secret: str | None = None
    files_configmap: str | None = None
    files: tuple[str, ...] = ()


def env_secret(project: Project) -> dict | None:
    """The .env variables as a Secret named by a hash of its content (a new content is a new Secret)."""
    if not project.dotenv:
        return None
    for key in project.dotenv:
        if not _ENV_NAME.match(key):
            raise ConfigError(".env", key, "expected a variable name (letters, digits, '_', '-', '.')")
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(project.dotenv.items())}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"{project.project_name}-env-{digest}", "namespace": project.namespace,
                         "labels": {"user": project.user, "project": project.project_name}},
            "data": data}


def files_configmap(project: Project, files: Sequence[str], source: str = "config/launch.yaml") -> dict | None:
    """The `file:` section as a ConfigMap; missing, binary, escaping or too large files are ConfigErrors."""
    if not files:
        return None
    data, total = {}, 0
    root = project.root.resolve()
    for i, rel in enumerate(sorted(set(files))):
        path = (root / rel).resolve()
        if Path(rel).is_absolute() or root not in path.parents:
            raise ConfigError(source, "file", f"expected a path inside the project, got {rel!r}")
        if not path.is_file():
            raise ConfigError(source, "file", f"no such file: {rel}")
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise ConfigError(source, "file", f"expected a text file, {rel} is binary (ship it through S3)") from None
        total += len(text.encode())
        data[f"f{i}"] = text
    if total > MAX_FILES_BYTES:
        raise ConfigError(source, "file", f"the files add up to {total // 1024} KiB, expected at most "
                                          f"{MAX_FILES_BYTES // 1024} KiB (ship large files through S3)")
    digest = hashlib.sha256(json.dumps([sorted(set(files)), data], sort_keys=True).encode()).hexdigest()[:10]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{project.project_name}-files-{digest}", "namespace": project.namespace,
                         "labels": {"user": project.user, "project": project.project_name}},
            "data": data}


def extras_for(project: Project, settings: RunSettings) -> tuple[Extras, list[dict]]:
    """The Secret/ConfigMap objects a workload with these settings needs, and how it refers to them."""
    objects = [o for o in (env_secret(project), files_configmap(project, settings.file)) if o]
    secret = next((o["metadata"]["name"] for o in objects if o["kind"] == "Secret"), None)
    cm = next((o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"), None)
    return Extras(secret, cm, tuple(sorted(set(settings.file)))), objects


def startup_script(project: Project, s: RunSettings, files: Sequence[str] = ()) -> str:
    """The script run before the command: `startup_script` if set, else the default template."""
    workdir = f"/workspace/{project.project_name}"
    if s.startup_script is not None:
        script = s.startup_script.rstrip() + "\n"
    else:
        script = _template(project, "startup.sh.j2").render(
            workdir=workdir, ssh_key=f"{SSH_MOUNT}/id_rsa", ssh_host=s.ssh_host, ssh_port=s.ssh_port,
            conda_sh=f"{s.conda_home}/etc/profile.d/conda.sh", conda_env=project.conda_env_name)
    if files:
        script += _template(project, "files.sh.j2").render(files=files, mount=FILES_MOUNT)
    return script


def _workload_values(project: Project, s: RunSettings, extras: Extras, command: str) -> dict:
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}},
               {"name": "ssh-key", "secret": {"secretName": f"{project.project_name}-ssh-key", "optional": True,
                                              "defaultMode": 0o400}}]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "ssh-key", "mountPath": SSH_MOUNT, "readOnly": True}]
    for pvc, path in s.volumes.items():
        vol = "pvc-" + sanitize(pvc)[:50]
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": pvc}})
        mounts.append({"name": vol, "mountPath": path})
    if extras.files_configmap:
        items = [{"key": f"f{i}", "path": p} for i, p in enumerate(extras.files)]
        volumes.append({"name": "files", "configMap": {"name": extras.files_configmap, "items": items}})
        mounts.append({"name": "files", "mountPath": FILES_MOUNT, "readOnly": True})
    env = [{"name": k, "value": v} for k, v in s.env.items()]
    env.append({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    return {
        "namespace": project.namespace, "settings": s, "affinity": affinity(s),
        "tolerations": [{"key": t, "operator": "Exists", "effect": "NoSchedule"} for t in s.tolerations],
        "volumes": volumes, "mounts": mounts, "env": env, "resources": resources(s),
        "env_from": [{"secretRef": {"name": extras.env_secret}}] if extras.env_secret else [],
        "script": startup_script(project, s, extras.files) + command + "\n",
    }


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """What decides whether a Job changed: its spec and labels (not annotations such as the git commit)."""
    material = {"spec": manifest.get("spec"), "labels": manifest.get("metadata", {}).get("labels")}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def render_job(run: Run, extras: Extras, annotations: Mapping[str, str] | None = None) -> dict:
    project = run.project
    assert project is not None
    values = _workload_values(project, run.settings, extras, run.remote_command)
    notes = {ANNOTATION_HPARAMS: json.dumps(dict(run.hparams), sort_keys=True, default=str), **(annotations or {})}
    doc = _load(_template(project, "job.yaml.j2").render(name=run.name, labels=dict(run.labels),
                                                         annotations=notes, **values), "templates/job.yaml.j2")
    doc["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC] = spec_hash(doc)
    check(doc)
    return doc


def pod_name(project: Project, name: str | None = None) -> str:
    return name or sanitize(f"{project.user}-{project.project_name}-interactive-pod")[:63].rstrip("-")


def render_pod(project: Project, settings: RunSettings, extras: Extras, name: str | None = None) -> dict:
    values = _workload_values(project, settings, extras, settings.server_command)
    labels = {"user": project.user, "project": project.project_name, "role": "interactive"}
    doc = _load(_template(project, "pod.yaml.j2").render(name=pod_name(project, name), labels=labels,
                                                         annotations={}, **values), "templates/pod.yaml.j2")
    check(doc)
    return doc


def check(doc: Mapping[str, Any]) -> None:
    """Server-side rules the OpenAPI schema does not catch, checked before any API call."""
    meta = doc.get("metadata", {})
    where = f"{doc.get('kind')} {meta.get('name')!r}"
    if not is_name(str(meta.get("name", ""))):
        raise ConfigError(where, "metadata.name", "expected a DNS-1123 label (lowercase, digits, '-', <= 63)")
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or not is_label_value(value):
            raise ConfigError(where, f"metadata.labels.{key}", f"expected a valid label value, got {value!r}")
    pod = doc.get("spec", {}).get("template", {}).get("spec") if doc.get("kind") == "Job" else doc.get("spec")
    if doc.get("kind") == "Job" and pod.get("restartPolicy") not in ("Never", "OnFailure"):
        raise ConfigError(where, "spec.template.spec.restartPolicy", "expected Never or OnFailure in a Job")
    for container in (pod or {}).get("containers", []):
        for kind in ("requests", "limits"):
            for res, q in (container.get("resources", {}).get(kind) or {}).items():
                if not isinstance(q, str) or not _QUANTITY.match(q):
                    raise ConfigError(where, f"resources.{kind}.{res}", f"expected a quantity string, got {q!r}")


def redacted(doc: Mapping[str, Any]) -> dict:
    """A copy safe to print or write: Secret values replaced."""
    if doc.get("kind") != "Secret":
        return dict(doc)
    return {**doc, "data": {k: "<redacted>" for k in doc.get("data", {})}}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as readable `|` blocks."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text and not re.search(r" \n| $", text) else None))


def to_yaml(docs: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML usable with `kubectl apply -f -` (Secrets redacted)."""
    return "---\n".join(yaml.dump(redacted(d), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                   width=120) for d in docs)
