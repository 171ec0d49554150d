"""Manifests, pure (no file read but the templates): a Run (or the base settings) -> Job/Pod text via
templates/*.j2, Secret and ConfigMap dicts.

A Job is rendered once, straight to YAML text: that text is what `make dryrun` prints, what build/ holds and
(parsed by libyaml) what `make job` sends. Every value is checked before rendering (names, labels, quantities)
and written through kube/yamltext.py, so no value can break the document.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shlex
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import checkpoints, multinode, ownership, podspec, pytorchjob, workloads, yamltext
from .checks import check_claims
from .provenance import ANNOTATION_COMMIT
from .errors import ConfigError
from .files import FileSet
from .settings import Project, Run, RunSettings
from .naming import is_label_value, is_name, volume_name

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ANNOTATION_SPEC = "kube-toolbox/spec-hash"
ANNOTATION_HPARAMS = "kube-toolbox/hparams"
FILES_MOUNT = "/etc/toolbox/files"
SSH_MOUNT = "/etc/toolbox/ssh"
MAX_OBJECT_BYTES = 900 * 1024        # a Secret or ConfigMap holds 1 MiB in all, keys and metadata included
MAX_ANNOTATIONS_BYTES = 256 * 1024   # all annotations of one object together
LAPTOP_ONLY_ENV = ("CUDA_VISIBLE_DEVICES",)    # a laptop's GPU choice would hide a job's GPUs
JOB_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "UTF-8", "KUBE_TOOLBOX_CLUSTER": "1"}
_MARK = "@kube-toolbox:"              # stands in for per-submission annotation values while hashing


class SharedList(list):
    """A list shared by every cell with the same settings: its YAML text is made once per indentation."""

    texts: dict[int, str]


class SharedDict(dict):
    texts: dict[int, str]


def _shared(value: Any) -> Any:
    if isinstance(value, list):
        out: Any = SharedList(value)
    elif isinstance(value, dict):
        out = SharedDict(value)
    else:
        return value
    out.texts = {}
    return out


def _block(value: Any, indent: int) -> str:
    texts = getattr(value, "texts", None)
    if texts is None:
        return yamltext.value_text(value, indent)
    text = texts.get(indent)
    if text is None:
        text = texts[indent] = yamltext.value_text(value, indent)
    return text


@lru_cache(maxsize=8)
def _environment(override_dir: str | None):
    import jinja2
    loaders = ([jinja2.FileSystemLoader(override_dir)] if override_dir else []) + [jinja2.FileSystemLoader(str(TEMPLATES))]
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True)
    env.filters["y"] = yamltext.flow
    env.filters["block"] = _block
    env.filters["j"] = yamltext.flow          # the name older project templates use
    env.filters["sh"] = lambda value: shlex.quote(str(value))
    return env


def _template(project: Project, name: str):
    import jinja2
    override = project.root / "config" / "templates"
    try:
        return _environment(str(override) if (override / name).is_file() else None).get_template(name)
    except jinja2.TemplateError as err:
        raise ConfigError(f"templates/{name}", "", f"template error: {err}") from err


@dataclass(frozen=True)
class Extras:
    """Objects a workload refers to by name: the .env Secret and the `file:` ConfigMap (None when absent)."""

    env_secret: str | None = None
    files_configmap: str | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """One rendered workload: its YAML text (printed, written, sent) and what planning needs without parsing."""

    kind: str
    name: str
    text: str
    spec_hash: str = ""
    workload: str = "cell"            # cell | pack | array
    cells: int = 1                    # how many cells of the grid it runs
    companions: tuple[str, ...] = ()  # objects created right after it: a multi-node cell's Service

    @cached_property
    def manifest(self) -> dict:
        """The object as a dict (libyaml), for the API call."""
        import yaml
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            doc = yaml.load(self.text, Loader=loader)
        except yaml.YAMLError as err:
            raise ConfigError(f"{self.kind} {self.name!r}", "", f"template rendered invalid YAML: "
                                                                 f"{str(err).splitlines()[0]}") from err
        if not isinstance(doc, dict) or doc.get("kind") != self.kind:
            raise ConfigError(f"{self.kind} {self.name!r}", "", "template must render one Kubernetes object")
        return doc


def env_secret(project: Project) -> dict | None:
    """The .env variables (laptop-only ones left out) as a Secret named by a hash of its user and content."""
    values = {k: v for k, v in project.dotenv.items() if k not in LAPTOP_ONLY_ENV}
    if not values:
        return None
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_OBJECT_BYTES:
        raise ConfigError(".env", "", f"the values add up to {size // 1024} KiB once encoded, expected at most "
                                      f"{MAX_OBJECT_BYTES // 1024} KiB (a Secret holds 1 MiB; ship large values "
                                      f"through S3)")
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": ownership.object_name(project, "env", data), "namespace": project.namespace,
                         "labels": ownership.labels(project)},
            "data": data}


def files_configmap(project: Project, found: FileSet | None) -> dict | None:
    """The files of a `file:` setting as a ConfigMap (keys f0, f1, ... in name order)."""
    if found is None:
        return None
    data = {f"f{i}": text for i, text in enumerate(found.texts)}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ownership.object_name(project, "files", [found.names, data]),
                         "namespace": project.namespace, "labels": ownership.labels(project)},
            "data": data}


def extras_for(project: Project, found: FileSet | None) -> tuple[Extras, list[dict]]:
    """The Secret/ConfigMap objects a workload shipping these files needs, and how it refers to them."""
    secret, cm = env_secret(project), files_configmap(project, found)
    return (Extras(secret["metadata"]["name"] if secret else None, cm["metadata"]["name"] if cm else None,
                   found.names if found else ()),
            [o for o in (secret, cm) if o])


def workdir(settings: RunSettings) -> str | None:
    """Where workloads run: `workdir:` when set, else the image's working directory (None)."""
    return settings.workdir or None


def startup_script(project: Project, s: RunSettings, files: Sequence[str] = (), commit: str = "") -> str:
    """The script run before the command: `startup_script` if set, else the default template. `commit` is what
    `code: commit` checks out (a placeholder while the spec hash is computed: see Renderer)."""
    if s.startup_script is not None:
        script = s.startup_script.rstrip() + "\n"
    else:
        script = _template(project, "startup.sh.j2").render(
            workdir=workdir(s), ssh_key=f"{SSH_MOUNT}/id_rsa", ssh_host=s.ssh_host, ssh_port=s.ssh_port,
            conda_sh=f"{s.conda_home}/etc/profile.d/conda.sh", conda_env=project.conda_env_name, code=s.code,
            commit=commit)
    if files:
        script += _template(project, "files.sh.j2").render(files=files, mount=FILES_MOUNT)
    if s.extra_startup_script:
        script += s.extra_startup_script.rstrip() + "\n"
    return script


def _workload_values(project: Project, s: RunSettings, extras: Extras, commit: str = "") -> dict:
    """Everything but the command: the same for every cell that shares settings (cached by the caller)."""
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}},
               {"name": "ssh-key", "secret": {"secretName": f"{project.project_name}-ssh-key", "optional": True,
                                              "defaultMode": 0o400}}]
    mounts: list[dict] = [{"name": "dshm", "mountPath": "/dev/shm"},
                          {"name": "ssh-key", "mountPath": SSH_MOUNT, "readOnly": True}]
    check_claims(s.volumes, ("config/launch.yaml", "volumes"))     # levels merged key by key can collide
    for pvc, path in s.volumes.items():
        vol = volume_name(pvc)
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": pvc}})
        mounts.append({"name": vol, "mountPath": path})
    if extras.files_configmap:
        items = [{"key": f"f{i}", "path": p} for i, p in enumerate(extras.files)]
        volumes.append({"name": "files", "configMap": {"name": extras.files_configmap, "items": items}})
        mounts.append({"name": "files", "mountPath": FILES_MOUNT, "readOnly": True})
    checkpoints.check(s)
    for more_volumes, more_mounts in (podspec.scratch(s), checkpoints.volume(s)):
        volumes += more_volumes
        mounts += more_mounts
    podspec.check_mounts([*mounts, {"name": "cells", "mountPath": workloads.CELLS_MOUNT}], s.volumes)
    # `.env` wins over `env:` as it does locally; in a pod `env` would win over `envFrom`, so leave those out.
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in {**JOB_ENV, **s.env}.items()
           if k not in LAPTOP_ONLY_ENV and k not in project.dotenv]
    env += podspec.secret_env(s)
    env.append({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    res = podspec.resources(s)
    podspec.check_quantities(res, "settings")
    env_from = [{"secretRef": {"name": extras.env_secret}}] if extras.env_secret else []
    startup = startup_script(project, s, extras.files, commit)
    sidecars = [c for c in (podspec.sidecar(s, startup, env, env_from, mounts),
                            checkpoints.sidecar(s, startup, env, env_from, mounts)) if c]
    return {
        "namespace": project.namespace, "settings": s, "affinity": _shared(podspec.affinity(s)),
        "tolerations": _shared([{"key": t, "operator": "Exists", "effect": "NoSchedule"} for t in s.tolerations]),
        "volumes": _shared(volumes), "mounts": _shared(mounts), "env": _shared(env), "resources": _shared(res),
        "env_from": _shared(env_from), "startup": startup,
        "pod_extra": {k: _shared(v) for k, v in podspec.pod_fields(s, sidecars).items()},
        "job_extra": {k: _shared(v) for k, v in podspec.job_fields(s, None).items()},
        "backoff_limit": s.backoff_limit,
    }


def check_meta(kind: str, name: str, labels: Mapping[str, Any]) -> None:
    """Server-side rules the OpenAPI schema does not catch, checked before rendering."""
    where = f"{kind} {name!r}"
    if not is_name(name):
        raise ConfigError(where, "metadata.name", "expected a DNS-1123 label (lowercase, digits, '-', <= 63)")
    for key, value in labels.items():
        if not isinstance(value, str) or not is_label_value(value):
            raise ConfigError(where, f"metadata.labels.{key}", f"expected a valid label value, got {value!r}")


class Renderer:
    """Renders the Jobs of one project; values shared by cells with equal settings are computed once."""

    def __init__(self, project: Project, annotations: Mapping[str, str] | None = None,
                 files: Mapping[tuple[str, ...], FileSet | None] | None = None) -> None:
        self.project = project
        self.files = dict(files or {})                 # each `file:` setting's contents, read by the caller
        self.annotations = dict(annotations or {})
        self.objects: dict[str, dict] = {}             # Secrets and ConfigMaps the Jobs refer to, by name
        self._values: dict[RunSettings, dict] = {}
        self._labels: dict[tuple, SharedDict] = {}
        self._job = _template(project, "job.yaml.j2")

    def _shared(self, settings: RunSettings) -> dict:
        cached = self._values.get(settings)        # equal settings (hashable, frozen) share everything
        if cached is None:
            if settings.file and settings.file not in self.files:
                raise ValueError(f"the files of file: {list(settings.file)} were not read before rendering")
            extras, objects = extras_for(self.project, self.files.get(settings.file))
            self.objects.update((o["metadata"]["name"], o) for o in objects)
            commit = _MARK + ANNOTATION_COMMIT if ANNOTATION_COMMIT in self.annotations else ""
            cached = self._values[settings] = _workload_values(self.project, settings, extras, commit)
        return cached

    def _labels_of(self, labels: Mapping[str, str], settings: RunSettings) -> SharedDict:
        key = (tuple(labels.items()), settings.queue)
        shared = self._labels.get(key)
        if shared is None:
            shared = self._labels[key] = _shared({**labels, **podspec.job_labels(settings)})
        return shared

    def job(self, run: Run) -> Rendered:
        """The Job of one cell."""
        notes = {ANNOTATION_HPARAMS: json.dumps(dict(run.hparams), sort_keys=True, default=str)}
        if multinode.is_multinode(run.settings):
            return self._nodes(run, notes)
        return self._render(run.name, self._labels_of(run.labels, run.settings), run.settings, notes,
                            workloads.unit_script((run,)))      # the command, after `export RESULTS_DIR=...`

    def _nodes(self, run: Run, notes: dict) -> Rendered:
        """A cell on several nodes (kube/multinode.py): an Indexed Job and its Service, or a PyTorchJob."""
        s, labels = run.settings, self._labels_of(run.labels, run.settings)
        job = self._render(run.name, labels, s, {**notes, multinode.ANNOTATION_NODES: str(s.nodes)},
                           workloads.unit_script((run,)), multinode.values(self._shared(s), run.name, s))
        if s.engine == "pytorchjob":
            return dataclasses.replace(job, kind=pytorchjob.KIND,
                                       text=pytorchjob.text(pytorchjob.from_job(job.manifest, s)))
        service = multinode.service(self.project.namespace, run.name, run.labels)
        return dataclasses.replace(job, text=multinode.SUCCESS_NOTE + job.text,
                                   companions=(multinode.SERVICE_NOTE + yamltext.document(service),))

    def workload(self, w: workloads.Workload) -> Rendered:
        """The Job of a cell, of packed cells, or an Indexed array of units."""
        if w.kind == "cell":
            return self.job(w.units[0][0])
        assert self.project is not None
        labels = self._labels_of(w.labels(self.project), w.settings)
        notes = {workloads.ANNOTATION_CELLS: w.cells_annotation()}
        if w.kind == "pack":
            return self._render(w.name, labels, w.settings, notes, workloads.unit_script(w.units[0]),
                                workload="pack", cells=len(w.cells))
        cm = workloads.cells_configmap(w, self.project)
        self.objects[cm["metadata"]["name"]] = cm
        values = dict(self._shared(w.settings))
        values["volumes"] = [*values["volumes"], {"name": "cells", "configMap": {"name": cm["metadata"]["name"]}}]
        values["mounts"] = [*values["mounts"], {"name": "cells", "mountPath": workloads.CELLS_MOUNT,
                                                "readOnly": True}]
        values["job_extra"] = podspec.job_fields(w.settings, len(w.units), w.parallelism)
        values["backoff_limit"] = None
        return self._render(w.name, labels, w.settings, notes, workloads.array_dispatch(), values, "array",
                            len(w.cells))

    def _render(self, name: str, labels: Mapping[str, str], settings: RunSettings, notes: dict, command: str,
                values: dict | None = None, workload: str = "cell", cells: int = 1) -> Rendered:
        values = values or self._shared(settings)
        check_meta("Job", name, labels)
        marks = {k: _MARK + k for k in self.annotations}
        notes = {**notes, ANNOTATION_SPEC: _MARK + ANNOTATION_SPEC, **marks}
        text = self._job.render(name=name, labels=labels, annotations=notes, script=values["startup"] + command,
                                **values)
        if _MARK + ANNOTATION_SPEC not in text:
            raise ConfigError("templates/job.yaml.j2", "metadata.annotations",
                              "the template must render `annotations` (they carry the spec hash)")
        size = sum(len(k) + len(v) for k, v in {**notes, **self.annotations}.items())
        if size > MAX_ANNOTATIONS_BYTES:
            raise ConfigError(f"Job {name!r}", "metadata.annotations",
                              f"the annotations add up to {size // 1024} KiB, expected at most "
                              f"{MAX_ANNOTATIONS_BYTES // 1024} KiB (the API server's limit; long hparam values?)")
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        text = text.replace(_MARK + ANNOTATION_SPEC, digest)
        for key, value in self.annotations.items():
            text = text.replace(_MARK + key, value)
        return Rendered("Job", name, text, digest, workload, cells)


def render_pod(project: Project, settings: RunSettings, name: str | None = None,
               found: FileSet | None = None) -> tuple[Rendered, list[dict]]:
    """The interactive pod (requests capped by pod_max_*) and the Secret/ConfigMap it needs."""
    settings = dataclasses.replace(settings, gpu_count=min(settings.gpu_count, settings.pod_max_gpu),
                                   cpu_count=min(settings.cpu_count, settings.pod_max_cpu),
                                   memory=min(settings.memory, settings.pod_max_memory), server=None)
    extras, objects = extras_for(project, found)
    values = _workload_values(project, settings, extras)
    labels = {**ownership.labels(project), "role": "interactive"}
    name = ownership.pod_name(project, name)
    check_meta("Pod", name, labels)
    text = _template(project, "pod.yaml.j2").render(name=name, labels=labels, annotations={},
                                                    script=values["startup"] + settings.server_command + "\n",
                                                    **values)
    return Rendered("Pod", name, text), objects


def document(obj: Mapping[str, Any]) -> str:
    """A Secret or ConfigMap as YAML text."""
    return yamltext.document(dict(obj))
