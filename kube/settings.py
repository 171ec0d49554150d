"""The validated data the rest of the toolbox consumes: each setting declared once, the project, the Run."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping

# The kinds of value a setting takes; kube/config.py holds the one check per kind.
Kind = Literal["str", "opt_str", "port", "count", "opt_count", "positive", "nonneg", "ratio", "seconds",
               "bool", "duration", "str_list", "str_map", "env_map", "volume_map", "file_list", "secret_refs",
               "server", "shared", "folder", "cap", "label_map", "dns_name", "checkpoint", "code", "exit_code",
               "positive_count", "timeout", "engine"]



def setting(default: Any, kind: Kind, doc: str, shown: str | None = None) -> Any:
    """A RunSettings field: its default, the kind of value it takes, and its line in the reference."""
    meta = {"kind": kind, "doc": doc, "shown": shown}
    if isinstance(default, dict):
        return field(default_factory=dict, hash=False, metadata=meta)
    return field(default=default, hash=kind not in ("server",), metadata=meta)     # mappings are not hashable


@dataclass(frozen=True)
class Project:
    """Project-wide keys from config/kube.yaml; launch.yaml can never override them."""

    project_name: str
    user: str
    namespace: str
    conda_env_name: str
    root: Path                      # the project root (where config/ lives)
    dotenv: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False, repr=False)
    # .env values are secrets: never printed, never written into a manifest (repr=False on purpose)
    api_timeout: float = 30.0           # seconds to wait for one API answer
    api_connect_timeout: float = 10.0   # seconds to open a connection
    api_retry_seconds: float = 60.0     # total time spent retrying one call (429/5xx/connection errors)


@dataclass(frozen=True)
class Checkpoint:
    """`checkpoint:`: each cell's folder is `<path>/<cell name>/` ($CHECKPOINT_DIR), synced every `every`
    seconds while a job runs and once more when it stops; the bucket keeps the newest `keep` entries."""

    path: str
    every: int = 300
    keep: int | None = None


@dataclass(frozen=True)
class RunSettings:
    """Every overridable field after merging defaults < kube.yaml < launch root < dataset < model < hparam.

    Each field is declared here once: config.py derives validation from `kind`, the reference table in
    docs/configuration.md is checked against `doc`, and the defaults are the field defaults.
    """

    env: Mapping[str, str] = setting({}, "env_map", "extra environment variables (`.env` wins over them)")
    startup_script: str | None = setting(None, "opt_str", "replaces the default startup script")
    extra_startup_script: str | None = setting(None, "opt_str", "runs after the startup script, before the "
                                                                "command")
    workdir: str | None = setting(None, "opt_str", "where jobs run (default: the image's working directory)",
                                  "the image's")
    conda_home: str = setting("/opt/conda", "str", "conda installation used by the default startup script")
    ssh_host: str = setting("gitlab-ssh.nrp-nautilus.io", "str", "git host of the optional deploy key")
    ssh_port: int = setting(30622, "port", "its SSH port")
    server_command: str = setting("sleep infinity", "str", "what the interactive pod runs")
    gpu_count: int = setting(0, "count", "GPUs requested")
    cpu_count: float = setting(5, "positive", "CPUs requested")
    memory: float = setting(32, "positive", "memory requested, GiB")
    ephemeral_storage: float = setting(100, "nonneg", "local disk requested, GiB (0: none)")
    limit_ratio: float = setting(2.0, "ratio", "limits = ratio x requests for CPU and memory (GPUs: equal)")
    volumes: Mapping[str, str] = setting({}, "volume_map", "`{pvc-name: mount-path}`")
    image: str = setting("", "str", "the container image",
                         "`<registry_host>/<gitlab_user>/<project_name>:latest`")
    gitlab_user: str = setting("", "str", "part of the default image", "`<user>`")
    registry_host: str = setting("gitlab-registry.nrp-nautilus.io", "str", "part of the default image")
    image_pull_secrets: str = setting("", "dns_name", "the registry pull secret", "`<project_name>-read-registry`")
    prefix: str = setting("", "str", "put before every job name")
    tolerations: tuple[str, ...] = setting((), "str_list", "taint keys tolerated for NoSchedule")
    gpu_whitelist: tuple[str, ...] = setting((), "str_list", "GPU products allowed (not with gpu_blacklist)")
    gpu_blacklist: tuple[str, ...] = setting((), "str_list", "GPU products refused")
    hostname_whitelist: tuple[str, ...] = setting((), "str_list", "nodes allowed (not with hostname_blacklist)")
    hostname_blacklist: tuple[str, ...] = setting((), "str_list", "nodes refused")
    special_gpu: str | None = setting(None, "opt_str", "e.g. `a100`: requests `nvidia.com/a100`, "
                                                       "ignores the GPU lists")
    file: tuple[str, ...] = setting((), "file_list", "text files or folders shipped over the image's copies")
    backoff_limit: int = setting(0, "count", "retries of a failed Job")
    ttl_seconds_after_finished: int | None = setting(None, "opt_count", "delete finished Jobs after N seconds")
    grace_period: float = setting(10.0, "seconds", "seconds a local run gets to stop after Ctrl-C/SIGTERM")
    results: str = setting("results", "folder", "folder of each cell's results, relative to the project root: "
                                             "`<results>/<cell name>/` is `$RESULTS_DIR`")
    max_runtime: int | None = setting(None, "duration", "a Job's time limit: `90m`, `6h`, `2d` or seconds "
                                                        "(`activeDeadlineSeconds`)")
    max_parallel: int | None = setting(None, "cap", "array mode: the selected cells as one Indexed Job, "
                                                          "at most N running at once")
    fail_fast: bool = setting(True, "bool", "your command's non-zero exit fails the cell at once (no retry); "
                                            "preemption and eviction never count")
    priority_class: str | None = setting(None, "dns_name", "`priorityClassName` of jobs and pods")
    node_selector: Mapping[str, str] = setting({}, "label_map", "`nodeSelector`: node labels a pod needs")
    service_account: str | None = setting(None, "dns_name", "`serviceAccountName` of jobs and pods")
    queue: str | None = setting(None, "opt_str", "Kueue local queue: the Job is created suspended for Kueue "
                                                 "to admit")
    secret_env: Mapping[str, str] = setting({}, "secret_refs", "`{VAR: secret-name/key}` from Secrets already "
                                                               "in the cluster")
    scratch: float = setting(0, "nonneg", "GiB of scratch space at `/scratch`, deleted with the pod (0: none)")
    scratch_class: str | None = setting(None, "opt_str", "storage class of the scratch volume")
    server: Mapping[str, Any] | None = setting(None, "server", "`{command: ..., port: N}`: a sidecar next to "
                                                               "the command (e.g. TensorBoard), `make forward`")
    shared: int = setting(1, "shared", "cells packed per Job, run at once on the same GPUs (1: one cell a Job; "
                                       "a fraction f packs 1/f)")
    checkpoint: Checkpoint | None = setting(None, "checkpoint", "`checkpoints/` or `{path, every, keep}`: each "
                                                               "cell's `$CHECKPOINT_DIR`, restored and synced "
                                                               "through S3 (docs/checkpoints.md)")
    termination_grace: int = setting(120, "count", "seconds a stopping pod gets (`terminationGracePeriodSeconds`): "
                                                   "the checkpoint's final sync runs in them")
    requeue_exit_code: int | None = setting(None, "exit_code", "an exit status that starts the pod again "
                                                               "(from its checkpoint) instead of failing the cell")
    code: str = setting("commit", "code", "what jobs run: `commit` (the one submitted), `latest` (git pull), "
                                          "`image` (the image's copy)")
    nodes: int = setting(1, "positive_count", "nodes a cell runs on (`gpu_count`, `cpu_count`, `memory` are per "
                                              "node): [multi-node.md](multi-node.md)")
    master_port: int = setting(29500, "port", "`MASTER_PORT` of a cell on several nodes")
    rendezvous_timeout: int = setting(600, "timeout", "how long a node waits for node 0's address: `10m` or "
                                                      "seconds")
    engine: str = setting("job", "engine", "`job`, or `pytorchjob` where Kubeflow's PyTorchJob is installed")
    pod_max_gpu: int = setting(2, "count", "at most this many GPUs for the interactive pod")
    pod_max_cpu: float = setting(16, "positive", "at most this many CPUs for the interactive pod")
    pod_max_memory: float = setting(32, "positive", "at most this much memory (GiB) for the interactive pod")


def setting_fields() -> dict[str, Any]:
    """name -> dataclass Field of every overridable setting, in declaration order."""
    return {f.name: f for f in fields(RunSettings)}


def default_of(name: str) -> Any:
    f = setting_fields()[name]
    return f.default if f.default is not MISSING else f.default_factory()


@dataclass(frozen=True)
class Run:
    """One combination of the grid: what to run, decided once; where it runs is the backend's choice."""

    index: int                           # position in the stable grid order
    name: str                            # DNS-1123 name, unique in the grid, <= 63 chars
    model: str
    dataset: str
    hparams: Mapping[str, Any] = field(hash=False)      # every hparam of the combination, `_` ones included
    labels: Mapping[str, str] = field(hash=False)       # user, project (+ model, dataset)
    local_command: str = ""
    remote_command: str = ""
    settings: RunSettings = field(default_factory=RunSettings)
    project: Project | None = None
    # Pipelines (kube/stages.py): a cell's stages, in order (empty: the cell is its own one stage); a stage's
    # Run names its stage and its cell (whose results folder it shares).
    stages: tuple[Run, ...] = field(default=(), hash=False)
    stage: str = ""
    cell: str = ""

    @property
    def cell_name(self) -> str:
        """The cell this Run belongs to: its own name, or the cell of a stage."""
        return self.cell or self.name

    @property
    def public_hparams(self) -> dict[str, Any]:
        """The hparams that identify the run in names (those not starting with `_`)."""
        return {k: v for k, v in self.hparams.items() if not k.startswith("_")}


def reference_table() -> str:
    """The Markdown table of every setting, as docs/configuration.md shows it (a test keeps them equal)."""
    def shown(name: str, f: Any) -> str:
        if f.metadata["shown"]:
            return f.metadata["shown"]
        value = default_of(name)
        if value in (None, ""):
            return "none"
        if isinstance(value, (tuple, dict)):
            return "`[]`" if isinstance(value, tuple) else "`{}`"
        return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
    rows = ["| key | meaning | default |", "|---|---|---|"]
    rows += [f"| `{name}` | {f.metadata['doc']} | {shown(name, f)} |" for name, f in setting_fields().items()]
    return "\n".join(rows) + "\n"
