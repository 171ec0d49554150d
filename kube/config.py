"""Load and validate config/kube.yaml, config/launch.yaml and .env into frozen, merged settings."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields as dc_fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError
from .model import Project, RunSettings
from .naming import is_label_value, is_name

KUBE_FILE = "config/kube.yaml"
LAUNCH_FILE = "config/launch.yaml"
DOTENV_FILE = ".env"

PROJECT_KEYS = ("project_name", "user", "namespace", "conda_env_name")

# Every overridable field and the kind of value it takes; defaults come from RunSettings.
FIELD_KINDS: dict[str, str] = {
    "env": "str_map", "startup_script": "opt_str", "conda_home": "str", "ssh_host": "str",
    "ssh_port": "port", "server_command": "str", "gpu_count": "count", "cpu_count": "positive",
    "memory": "positive", "ephemeral_storage": "nonneg", "limit_ratio": "ratio", "volumes": "str_map",
    "image": "str", "gitlab_user": "str", "registry_host": "str", "image_pull_secrets": "str",
    "prefix": "str", "tolerations": "str_list", "gpu_whitelist": "str_list", "gpu_blacklist": "str_list",
    "hostname_whitelist": "str_list", "hostname_blacklist": "str_list", "special_gpu": "opt_str",
    "file": "str_list", "backoff_limit": "count", "ttl_seconds_after_finished": "opt_count",
}
ALIASES = {"ephermal_storage": "ephemeral_storage"}   # the reference's spelling
MERGED_MAPS = ("env", "volumes")                       # merged key by key across levels, not replaced
EXCLUSIVE = (("gpu_whitelist", "gpu_blacklist"), ("hostname_whitelist", "hostname_blacklist"))
SCALARS = (str, int, float, bool, type(None))

_EXPECTED = {
    "str": "a string", "opt_str": "a string or null", "port": "a port number (1-65535)",
    "count": "a whole number >= 0", "opt_count": "a whole number >= 0 or null",
    "positive": "a number > 0", "nonneg": "a number >= 0", "ratio": "a number >= 1",
    "str_list": "a list of strings", "str_map": "a mapping of strings to strings",
}


def type_name(value: Any) -> str:
    """How a YAML value is described in error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_field(kind: str, value: Any, source: str, key_path: str) -> Any:
    """Validate one overridable field and return it normalised (lists as tuples, maps of str)."""
    ok = {
        "str": isinstance(value, str), "opt_str": value is None or isinstance(value, str),
        "port": isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536,
        "count": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "opt_count": value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0),
        "positive": _is_number(value) and value > 0, "nonneg": _is_number(value) and value >= 0,
        "ratio": _is_number(value) and value >= 1,
        "str_list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "str_map": isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, SCALARS) and
                                                   not isinstance(v, type(None)) for k, v in value.items()),
    }[kind]
    if not ok:
        got = type_name(value) if not _is_number(value) or kind in ("str", "str_list", "str_map") else repr(value)
        raise ConfigError(source, key_path, f"expected {_EXPECTED[kind]}, got {got}")
    if kind == "str_list":
        return tuple(value)
    if kind == "str_map":
        return {k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in value.items()}
    return value


def unknown_key(source: str, key_path: str, key: str, allowed: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(source, key_path, f"unknown key{hint}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, source: str) -> dict:
    """Parse a YAML file that must hold a mapping (an empty file is an empty mapping)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found (run from the project root, where config/ lives)") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(source, "", f"invalid YAML: {where}{problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping at the top level, got {type_name(data)}")
    return data


def read_dotenv(path: Path) -> dict[str, str]:
    """The project's .env (quotes, `export`, comments handled by python-dotenv); missing file = empty."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values
    return {k: v if v is not None else "" for k, v in dotenv_values(path).items()}


def field_overrides(data: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    """The overridable fields present in one config level, validated; aliases renamed."""
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = ALIASES.get(raw_key, raw_key)
        if key in FIELD_KINDS:
            out[key] = check_field(FIELD_KINDS[key], value, source, f"{prefix}{raw_key}")
    return out


def merge_levels(levels: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Later levels win; env and volumes merge key by key."""
    merged: dict[str, Any] = {}
    for level in levels:
        for key, value in level.items():
            if key in MERGED_MAPS and key in merged:
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def resolve_settings(project: Project, merged: Mapping[str, Any], source: str, key_path: str) -> RunSettings:
    """Fill the derived defaults (image, gitlab_user, pull secret) and check cross-field rules."""
    values = dict(merged)
    for first, second in EXCLUSIVE:
        if values.get(first) and values.get(second):
            raise ConfigError(source, f"{key_path}{second}", f"cannot be set together with {first}; keep one of them")
    gitlab_user = values.get("gitlab_user") or project.user
    registry = values.get("registry_host", RunSettings.registry_host)
    values["gitlab_user"] = gitlab_user
    values["image"] = values.get("image") or f"{registry}/{gitlab_user}/{project.project_name}:latest"
    values["image_pull_secrets"] = values.get("image_pull_secrets") or f"{project.project_name}-read-registry"
    known = {f.name for f in dc_fields(RunSettings)}
    return RunSettings(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class Config:
    """Both files validated: the project, the base field levels, and the raw launch sections."""

    project: Project
    base_settings: RunSettings                # defaults < kube.yaml < launch.yaml root (the interactive pod)
    base_levels: tuple[Mapping[str, Any], ...] = field(hash=False)   # (kube fields, launch root fields)
    models: Mapping[str, Mapping[str, Any]] = field(hash=False)
    datasets: Mapping[str, Mapping[str, Any]] = field(hash=False)
    runs: tuple[Mapping[str, Any], ...] = field(hash=False)
    smoke: Mapping[str, Any] = field(default_factory=dict, hash=False)


def _check_project(kube: dict, launch: dict) -> dict[str, str]:
    allowed = list(PROJECT_KEYS) + list(FIELD_KINDS) + list(ALIASES)
    for key in kube:
        if key not in allowed:
            raise unknown_key(KUBE_FILE, str(key), str(key), allowed)
    values: dict[str, str] = {}
    for key in ("project_name", "user", "namespace"):
        if key not in kube or kube[key] in (None, ""):
            raise ConfigError(KUBE_FILE, key, "required project-wide key is missing")
        if not isinstance(kube[key], str):
            raise ConfigError(KUBE_FILE, key, f"expected a string, got {type_name(kube[key])}")
        values[key] = kube[key]
    name = values["project_name"]
    if not is_name(name) or len(name) > 40:
        raise ConfigError(KUBE_FILE, "project_name",
                          f"expected lowercase letters, digits and '-' (at most 40, no '_'), got {name!r}")
    if not is_label_value(values["user"]):
        raise ConfigError(KUBE_FILE, "user", f"expected a valid label value (letters, digits, '-', '_', '.'; "
                                              f"at most 63), got {values['user']!r}")
    if not is_name(values["namespace"]):
        raise ConfigError(KUBE_FILE, "namespace", f"expected a DNS-1123 label, got {values['namespace']!r}")
    conda_env = kube.get("conda_env_name", name)
    if not isinstance(conda_env, str) or not conda_env:
        raise ConfigError(KUBE_FILE, "conda_env_name", f"expected a string, got {type_name(conda_env)}")
    values["conda_env_name"] = conda_env
    for key in PROJECT_KEYS:
        if key in launch and launch[key] != values[key]:
            raise ConfigError(LAUNCH_FILE, key, f"project-wide key: set it in {KUBE_FILE} "
                                                f"(launch.yaml may only repeat {values[key]!r})")
    return values


def _check_section(launch: dict, section: str, entry_keys: tuple[str, ...], required: bool) -> dict:
    data = launch.get(section)
    if data is None:
        if required:
            raise ConfigError(LAUNCH_FILE, section, "required section is missing (a mapping of names to entries)")
        return {}
    if not isinstance(data, dict) or not data:
        raise ConfigError(LAUNCH_FILE, section, f"expected a non-empty mapping of names, got {type_name(data)}")
    allowed = list(entry_keys) + list(FIELD_KINDS) + list(ALIASES)
    out = {}
    for name, entry in data.items():
        path = f"{section}.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(LAUNCH_FILE, path, "expected a string name")
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise ConfigError(LAUNCH_FILE, path, f"expected a mapping, got {type_name(entry)}")
        for key in entry:
            if key not in allowed:
                raise unknown_key(LAUNCH_FILE, f"{path}.{key}", str(key), allowed)
        field_overrides(entry, LAUNCH_FILE, f"{path}.")
        out[name] = entry
    return out


def _check_runs(launch: dict, models: dict, datasets: dict) -> tuple[dict, ...]:
    raw = launch.get("run")
    if raw is None:
        return ({},)
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        raise ConfigError(LAUNCH_FILE, "run", "expected a mapping or a non-empty list of mappings")
    out = []
    for i, entry in enumerate(entries):
        path = f"run[{i}]" if isinstance(raw, list) else "run"
        if not isinstance(entry, dict):
            raise ConfigError(LAUNCH_FILE, path, f"expected a mapping, got {type_name(entry)}")
        clean: dict[str, Any] = {}
        for key, value in entry.items():
            if key in ("model", "dataset"):
                names = [value] if isinstance(value, str) else value
                pool = models if key == "model" else datasets
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
                    raise ConfigError(LAUNCH_FILE, f"{path}.{key}", f"expected a name or a list of names, "
                                                                   f"got {type_name(value)}")
                for n in names:
                    if n not in pool:
                        raise ConfigError(LAUNCH_FILE, f"{path}.{key}", f"no {key} named {n!r} "
                                                                       f"(defined: {', '.join(pool)})")
                clean[key] = names
            elif key == "hparam":
                if not isinstance(value, dict):
                    raise ConfigError(LAUNCH_FILE, f"{path}.hparam", f"expected a mapping, got {type_name(value)}")
                clean[key] = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
            else:
                raise unknown_key(LAUNCH_FILE, f"{path}.{key}", str(key), ["model", "dataset", "hparam"])
        out.append(clean)
    return tuple(out)


def load(root: Path) -> Config:
    """Read and validate everything under `root`; raises ConfigError before anything runs."""
    root = Path(root).resolve()
    kube = read_yaml(root / KUBE_FILE, KUBE_FILE)
    launch = read_yaml(root / LAUNCH_FILE, LAUNCH_FILE)
    project_values = _check_project(kube, launch)
    allowed_root = ["model", "dataset", "run", "smoke", *PROJECT_KEYS, *FIELD_KINDS, *ALIASES]
    for key in launch:
        if key not in allowed_root:
            raise unknown_key(LAUNCH_FILE, str(key), str(key), allowed_root)
    kube_fields = field_overrides(kube, KUBE_FILE, "")
    launch_fields = field_overrides(launch, LAUNCH_FILE, "")
    models = _check_section(launch, "model", ("command", "hparam"), required=True)
    for name, entry in models.items():
        if not isinstance(entry.get("command"), str) or not entry["command"].strip():
            raise ConfigError(LAUNCH_FILE, f"model.{name}.command", "expected a non-empty command string")
    datasets = _check_section(launch, "dataset", ("hparam",), required=False) or {"default": {}}
    runs = _check_runs(launch, models, datasets)
    smoke = launch.get("smoke") or {}
    if not isinstance(smoke, dict):
        raise ConfigError(LAUNCH_FILE, "smoke", f"expected a mapping of hparam overrides, got {type_name(smoke)}")
    project = Project(root=root, dotenv=read_dotenv(root / DOTENV_FILE), **project_values)
    base = resolve_settings(project, merge_levels([kube_fields, launch_fields]), LAUNCH_FILE, "")
    return Config(project=project, base_settings=base, base_levels=(kube_fields, launch_fields),
                  models=models, datasets=datasets, runs=runs, smoke=smoke)


def local_environment(project: Project, settings: RunSettings) -> dict[str, str]:
    """Environment of a local run: the shell's, then `env:` from the configs, then `.env` (which wins)."""
    return {**os.environ, **settings.env, **project.dotenv}
