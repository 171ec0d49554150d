"""The validated data the rest of the toolbox consumes: project settings, per-run settings and the Run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


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


@dataclass(frozen=True)
class RunSettings:
    """Every overridable field after merging defaults < kube.yaml < launch root < dataset < model < hparam."""

    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    startup_script: str | None = None
    conda_home: str = "/opt/conda"
    ssh_host: str = "gitlab-ssh.nrp-nautilus.io"
    ssh_port: int = 30622
    server_command: str = "sleep infinity"
    gpu_count: int = 0
    cpu_count: float = 5
    memory: float = 32                   # GiB
    ephemeral_storage: float = 100       # GiB, 0 means "do not request"
    limit_ratio: float = 2.0             # limits = ratio x requests for CPU and memory
    volumes: Mapping[str, str] = field(default_factory=dict, hash=False)   # pvc name -> mount path
    image: str = ""                      # resolved: <registry_host>/<gitlab_user>/<project_name>:latest
    gitlab_user: str = ""                # resolved: <user>
    registry_host: str = "gitlab-registry.nrp-nautilus.io"
    image_pull_secrets: str = ""         # resolved: <project_name>-read-registry
    prefix: str = ""
    tolerations: tuple[str, ...] = ()
    gpu_whitelist: tuple[str, ...] = ()
    gpu_blacklist: tuple[str, ...] = ()
    hostname_whitelist: tuple[str, ...] = ()
    hostname_blacklist: tuple[str, ...] = ()
    special_gpu: str | None = None
    file: tuple[str, ...] = ()           # project-relative text files shipped to the pod/job
    backoff_limit: int = 0
    ttl_seconds_after_finished: int | None = None


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

    @property
    def public_hparams(self) -> dict[str, Any]:
        """The hparams that identify the run in names (those not starting with `_`)."""
        return {k: v for k, v in self.hparams.items() if not k.startswith("_")}
