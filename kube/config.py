"""Load and validate config/kube.yaml, config/launch.yaml and .env into frozen, merged settings."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import multinode
from .errors import ConfigError
from .checks import ENV_NAME, check_field, is_finite_number
from .hparams import Axis, is_scalar, parse_axes, type_name
from .search import SearchSpec, check_axes, parse_spec
from . import stages as pipeline
from .settings import Project, RunSettings, setting_fields
from .naming import is_label_value, is_name

KUBE_FILE = "config/kube.yaml"
LAUNCH_FILE = "config/launch.yaml"
DOTENV_FILE = ".env"

PROJECT_KEYS = ("project_name", "user", "namespace", "conda_env_name")
API_KEYS = ("api_timeout", "api_connect_timeout", "api_retry_seconds")    # kube.yaml only, numbers > 0
ALIASES = {"ephermal_storage": "ephemeral_storage"}   # the spelling of the toolbox this one replaces
MAX_ENV_BYTES = 100 * 1024       # one NAME=value in a process environment: the kernel takes 128 KiB at most
MERGED_MAPS = ("env", "volumes", "node_selector", "secret_env")     # merged key by key across levels
EXCLUSIVE = (("gpu_whitelist", "gpu_blacklist"), ("hostname_whitelist", "hostname_blacklist"))
FIELD_KINDS: dict[str, str] = {name: f.metadata["kind"] for name, f in setting_fields().items()}
MAX_YAML_NODES = 200_000        # values after alias expansion: a config is hundreds; an alias bomb billions


SIDE_KEYS = ("local_command", "remote_command", "cluster_command")     # what `[local](remote)` replaces


def unknown_key(source: str, key_path: str, key: str, allowed: list[str]) -> ConfigError:
    if key in SIDE_KEYS:
        return ConfigError(source, key_path, "unknown key: write both sides in command: with the [local](remote) "
                                             "notation, e.g. command: '[python train.py --cpu](python train.py)' "
                                             "(docs/grid.md)")
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(source, key_path, f"unknown key{hint}")


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading that refuses duplicate keys (merge keys `<<:` still work, own keys win over merged ones)."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(data: Any, limit: int) -> int:
    """How many values the document holds once aliases are expanded, counted with memoisation (cheap)."""
    sizes: dict[int, int] = {}

    def size(obj: Any) -> int:
        if not isinstance(obj, (dict, list)):
            return 1
        key = id(obj)
        if key not in sizes:
            sizes[key] = 0          # a cycle counts as nothing more
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            total = 1
            for _, child in items:
                total += size(child)
                if total > limit:
                    break
            sizes[key] = total
        return sizes[key]
    return size(data)


def parse_yaml(text: str, source: str) -> dict:
    """A YAML text that must hold a mapping (empty = empty mapping); alias bombs are refused."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(source, "", f"invalid YAML: {where}{problem}") from err
    except RecursionError as err:
        raise ConfigError(source, "", "invalid YAML: nested too deeply") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping at the top level, got {type_name(data)}")
    if _expanded_size(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise ConfigError(source, "", f"expected at most {MAX_YAML_NODES:,} values once aliases are expanded "
                                      f"(an alias bomb?)")
    return data


def read_yaml(path: Path, source: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found (run from the project root, where config/ lives)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, "", f"cannot read: {err}") from err
    return parse_yaml(text, source)


def read_dotenv(path: Path) -> dict[str, str]:
    """The project's .env (quotes, `export`, comments handled by python-dotenv); missing file = empty."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values
    try:
        values = {k: v if v is not None else "" for k, v in dotenv_values(path, encoding="utf-8").items()}
    except UnicodeDecodeError as err:
        raise ConfigError(".env", "", f"expected UTF-8 text, found a byte that is not (at offset {err.start})") \
            from None
    except OSError as err:
        raise ConfigError(".env", "", f"cannot read it ({err.strerror})") from None
    for key, value in values.items():
        if len(key) + len(value.encode()) > MAX_ENV_BYTES:
            raise ConfigError(".env", key, f"expected a value under {MAX_ENV_BYTES // 1024} KiB (the OS refuses "
                                           f"longer environment strings), got {len(value.encode()) // 1024} KiB; "
                                           f"ship large data through S3")
    return values


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
    settings = RunSettings(**{k: v for k, v in values.items() if k in FIELD_KINDS})
    multinode.check(settings, source, key_path, project.project_name)
    return settings


@dataclass(frozen=True)
class ModelEntry:
    name: str
    command: str
    axes: tuple[Axis, ...]
    fields: Mapping[str, Any] = field(hash=False)       # validated overrides; strings may hold <placeholders>
    search: SearchSpec | None = None             # its own `search:` section (else the root's)
    stages: tuple[pipeline.Stage, ...] = ()      # its own `stages:` (else the dataset's, else the root's)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    axes: tuple[Axis, ...]
    fields: Mapping[str, Any] = field(hash=False)
    stages: tuple[pipeline.Stage, ...] = ()


@dataclass(frozen=True)
class RunEntry:
    """One item of the `run:` section: which models and datasets, and which hparam values of them."""

    path: str                                   # `run` or `run[i]`, for messages
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    selection: Mapping[str, tuple[Any, ...]] = field(hash=False)


@dataclass(frozen=True)
class Config:
    """Both files validated: the project, the base field levels, models, datasets and run entries."""

    project: Project
    base_settings: RunSettings                # defaults < kube.yaml < launch.yaml root (the interactive pod)
    base_levels: tuple[Mapping[str, Any], ...] = field(hash=False)   # (kube fields, launch root fields)
    models: Mapping[str, ModelEntry] = field(hash=False)
    datasets: Mapping[str, DatasetEntry] = field(hash=False)
    runs: tuple[RunEntry, ...] = field(hash=False)
    smoke: Mapping[str, Any] = field(default_factory=dict, hash=False)
    search: SearchSpec | None = None           # the root `search:` section
    set_fields: Mapping[str, Any] = field(default_factory=dict, hash=False)   # `set=` settings: above all levels
    stages: tuple[pipeline.Stage, ...] = ()    # the root `stages:` (kube/stages.py)
    driver: pipeline.DriverSpec = pipeline.DriverSpec()


def _check_project(kube: Mapping[str, Any], launch: Mapping[str, Any]) -> dict[str, Any]:
    allowed = list(PROJECT_KEYS) + list(API_KEYS) + list(FIELD_KINDS) + list(ALIASES)
    for key in kube:
        if key not in allowed:
            raise unknown_key(KUBE_FILE, str(key), str(key), allowed)
    values: dict[str, Any] = {}
    for key in ("project_name", "user", "namespace"):
        if kube.get(key) in (None, ""):
            if key == "project_name":
                raise ConfigError(KUBE_FILE, key, "required project-wide key is missing")
            values[key] = ""             # local runs need no cluster identity; cluster commands check it
            continue
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
    if values["namespace"] and not is_name(values["namespace"]):
        raise ConfigError(KUBE_FILE, "namespace", f"expected a DNS-1123 label, got {values['namespace']!r}")
    conda_env = kube.get("conda_env_name", name)
    if not isinstance(conda_env, str) or not conda_env:
        raise ConfigError(KUBE_FILE, "conda_env_name", f"expected a string, got {type_name(conda_env)}")
    values["conda_env_name"] = conda_env
    for key in API_KEYS:
        if key in kube:
            if not (is_finite_number(kube[key]) and kube[key] > 0):
                raise ConfigError(KUBE_FILE, key, f"expected a number of seconds > 0, got {kube[key]!r}")
            values[key] = float(kube[key])
    for key in PROJECT_KEYS:
        if key in launch and launch[key] != values[key]:
            raise ConfigError(LAUNCH_FILE, key, f"project-wide key: set it in {KUBE_FILE} "
                                                f"(launch.yaml may only repeat {values[key]!r})")
    return values


def _entries(launch: Mapping[str, Any], section: str, entry_keys: tuple[str, ...], required: bool) -> dict:
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
        out[name] = (entry, field_overrides(entry, LAUNCH_FILE, f"{path}."),
                     parse_axes(entry.get("hparam"), LAUNCH_FILE, f"{path}.hparam"))
    return out


def _run_entries(launch: Mapping[str, Any], models: Mapping[str, Any], datasets: Mapping[str, Any]) -> tuple:
    raw = launch.get("run")
    if raw is None:
        return (RunEntry("run", tuple(models), tuple(datasets), {}),)
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        raise ConfigError(LAUNCH_FILE, "run", "expected a mapping or a non-empty list of mappings")
    out = []
    for i, entry in enumerate(entries):
        path = f"run[{i}]" if isinstance(raw, list) else "run"
        if not isinstance(entry, dict):
            raise ConfigError(LAUNCH_FILE, path, f"expected a mapping, got {type_name(entry)}")
        chosen: dict[str, tuple[str, ...]] = {"model": tuple(models), "dataset": tuple(datasets)}
        selection: dict[str, tuple[Any, ...]] = {}
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
                chosen[key] = tuple(names)
            elif key == "hparam":
                if not isinstance(value, dict):
                    raise ConfigError(LAUNCH_FILE, f"{path}.hparam", f"expected a mapping, got {type_name(value)}")
                for k, v in value.items():
                    for j, x in enumerate(v if isinstance(v, list) else [v]):
                        if not is_scalar(x):
                            raise ConfigError(LAUNCH_FILE, f"{path}.hparam.{k}" + (f"[{j}]" if isinstance(v, list)
                                                                                  else ""),
                                              f"expected a value or a list of values, got {type_name(x)}")
                    selection[k] = tuple(v) if isinstance(v, list) else (v,)
            else:
                raise unknown_key(LAUNCH_FILE, f"{path}.{key}", str(key), ["model", "dataset", "hparam"])
        out.append(RunEntry(path, chosen["model"], chosen["dataset"], selection))
    return tuple(out)


def from_mappings(kube: Mapping[str, Any], launch: Mapping[str, Any], dotenv: Mapping[str, str] | None = None,
                  root: Path | str = ".") -> Config:
    """Validate already-parsed configs (the same checks as `load`, no file access); raises ConfigError."""
    project_values = _check_project(kube, launch)
    allowed_root = ["model", "dataset", "run", "smoke", "search", "stages", "driver", *PROJECT_KEYS, *FIELD_KINDS,
                    *ALIASES]
    for key in launch:
        if key not in allowed_root:
            raise unknown_key(LAUNCH_FILE, str(key), str(key), allowed_root)
    kube_fields = field_overrides({k: v for k, v in kube.items() if k not in API_KEYS}, KUBE_FILE, "")
    launch_fields = field_overrides(launch, LAUNCH_FILE, "")
    root_search = parse_spec(launch.get("search"), LAUNCH_FILE, "search")
    models: dict[str, ModelEntry] = {}
    for name, (entry, fields, axes) in _entries(launch, "model", ("command", "hparam", "search", "stages"),
                                                required=True).items():
        if "command" in entry and (not isinstance(entry["command"], str) or not entry["command"].strip()):
            raise ConfigError(LAUNCH_FILE, f"model.{name}.command", "expected a non-empty command string")
        spec = parse_spec(entry.get("search"), LAUNCH_FILE, f"model.{name}.search")
        check_axes(axes, LAUNCH_FILE, f"model.{name}.hparam", bool(spec or root_search),
                   f"at the root of {LAUNCH_FILE} or in model.{name}")
        models[name] = ModelEntry(name, entry.get("command") or "", axes, fields, spec,
                                  _stages(entry, f"model.{name}.stages"))
    datasets = {name: DatasetEntry(name, axes, fields, _stages(entry, f"dataset.{name}.stages"))
                for name, (entry, fields, axes) in _entries(launch, "dataset", ("hparam", "stages"),
                                                            required=False).items()}
    every_model_searches = all(m.search for m in models.values())
    for name, entry in datasets.items():
        check_axes(entry.axes, LAUNCH_FILE, f"dataset.{name}.hparam", bool(root_search or every_model_searches),
                   f"at the root of {LAUNCH_FILE}, or in every model")
    datasets = datasets or {"default": DatasetEntry("default", (), {})}
    root_stages = _stages(launch, "stages")
    pipeline.check_commands(models, datasets, root_stages, LAUNCH_FILE)
    runs = _run_entries(launch, models, datasets)
    smoke = launch.get("smoke") or {}
    if not isinstance(smoke, dict):
        raise ConfigError(LAUNCH_FILE, "smoke", f"expected a mapping of hparam overrides, got {type_name(smoke)}")
    for key, value in smoke.items():
        if not is_scalar(value):
            raise ConfigError(LAUNCH_FILE, f"smoke.{key}", f"expected a value, got {type_name(value)}")
    dotenv = dict(dotenv or {})
    for key in dotenv:
        if not ENV_NAME.match(key):
            raise ConfigError(DOTENV_FILE, key, "expected a variable name (letters, digits, '_', '-', '.')")
    project = Project(root=Path(root).resolve(), dotenv=dotenv, **project_values)
    base = resolve_settings(project, merge_levels([kube_fields, launch_fields]), LAUNCH_FILE, "")
    return Config(project=project, base_settings=base, base_levels=(kube_fields, launch_fields),
                  models=models, datasets=datasets, runs=runs, smoke=smoke, search=root_search, stages=root_stages,
                  driver=pipeline.parse_driver(launch.get("driver"), LAUNCH_FILE))


def _stages(entry: Mapping[str, Any], path: str) -> tuple[pipeline.Stage, ...]:
    return pipeline.parse(entry.get("stages"), LAUNCH_FILE, path, [*FIELD_KINDS, *ALIASES],
                          lambda stage, prefix: field_overrides(stage, LAUNCH_FILE, prefix))


def require_identity(cfg: Config, command: str) -> None:
    """The cluster commands need `user` and `namespace` (local runs do not)."""
    for key, meaning in (("user", "your name on the cluster: the `user` label on everything you create"),
                         ("namespace", "the Kubernetes namespace you may use (`kubectl config view --minify`)")):
        if not getattr(cfg.project, key):
            raise ConfigError(KUBE_FILE, key, f"required for `{command}`: {meaning}")


def load(root: Path | str) -> Config:
    """Read and validate everything under `root`; raises ConfigError before anything runs."""
    root = Path(root).resolve()
    kube = read_yaml(root / KUBE_FILE, KUBE_FILE)
    launch = read_yaml(root / LAUNCH_FILE, LAUNCH_FILE)
    return from_mappings(kube, launch, read_dotenv(root / DOTENV_FILE), root)
