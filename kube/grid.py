"""Expand models x datasets x hparams into Runs, in a stable documented order, and select among them."""
from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import command
from .config import (FIELD_KINDS, LAUNCH_FILE, SCALARS, Config, check_field, field_overrides, merge_levels,
                     resolve_settings, type_name)
from .errors import ConfigError, UsageError
from .model import Run, RunSettings
from .naming import label_value, run_name, value_text

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STATE_WORDS = ("failed", "missing")      # `only=failed`: resolved against the cluster, not the grid
BUILTINS = ("model", "dataset", "name", "project")


@dataclass(frozen=True)
class Option:
    label: str                     # how the value reads in names and selections
    values: Mapping[str, Any]      # the hparams this option sets (a group member sets several)


@dataclass(frozen=True)
class Axis:
    key: str
    options: tuple[Option, ...]


def _is_value(v: Any) -> bool:
    return isinstance(v, SCALARS) or (isinstance(v, list) and all(isinstance(x, SCALARS) for x in v))


def _group(key: str, members: Iterable[tuple[str, Any]], path: str) -> Axis:
    options, first_keys, first_name = [], None, ""
    for name, member in members:
        if not isinstance(member, dict):
            raise ConfigError(LAUNCH_FILE, f"{path}.{name}", f"expected a mapping of hparams, got {type_name(member)}")
        keys = tuple(member)
        if first_keys is None:
            first_keys, first_name = keys, name
        elif set(keys) != set(first_keys):
            raise ConfigError(LAUNCH_FILE, f"{path}.{name}", f"expected the same keys as {key}.{first_name} "
                                                             f"({', '.join(map(str, first_keys))}), got {', '.join(map(str, keys))}")
        for inner, v in member.items():
            if not isinstance(inner, str) or not IDENT.match(inner):
                raise ConfigError(LAUNCH_FILE, f"{path}.{name}.{inner}", "expected an identifier (letters, digits, _)")
            if not _is_value(v):
                raise ConfigError(LAUNCH_FILE, f"{path}.{name}.{inner}", f"expected a scalar, got {type_name(v)}")
        options.append(Option(str(name), {key: str(name), **member}))
    return Axis(key, tuple(options))


def parse_axes(hparam: Any, path: str) -> list[Axis]:
    """One axis per hparam key: scalars are one-element lists; a mapping of mappings is a named group."""
    if hparam is None:
        return []
    if not isinstance(hparam, dict):
        raise ConfigError(LAUNCH_FILE, path, f"expected a mapping of hparams, got {type_name(hparam)}")
    axes = []
    for key, value in hparam.items():
        kpath = f"{path}.{key}"
        if not isinstance(key, str) or not IDENT.match(key):
            raise ConfigError(LAUNCH_FILE, kpath, "expected an identifier as hparam name (letters, digits, _)")
        if isinstance(value, dict):
            if value and all(isinstance(m, dict) for m in value.values()):
                axes.append(_group(key, value.items(), kpath))
                continue
            raise ConfigError(LAUNCH_FILE, kpath, "expected a list or a scalar, got a mapping")
        if isinstance(value, list):
            if not value:
                raise ConfigError(LAUNCH_FILE, kpath, "expected a non-empty list")
            if all(isinstance(m, dict) for m in value):
                axes.append(_group(key, ((str(i), m) for i, m in enumerate(value)), kpath))
                continue
            for i, v in enumerate(value):
                if not _is_value(v):
                    raise ConfigError(LAUNCH_FILE, f"{kpath}[{i}]", f"expected a scalar, got {type_name(v)}")
            labels = [value_text(v) for v in value]
            if len(set(labels)) != len(labels):
                raise ConfigError(LAUNCH_FILE, kpath, "expected distinct values, got a repeated one")
            axes.append(Axis(key, tuple(Option(value_text(v), {key: v}) for v in value)))
        else:
            axes.append(Axis(key, (Option(value_text(value), {key: value}),)))
    return axes


def merge_axes(dataset_axes: list[Axis], model_axes: list[Axis]) -> list[Axis]:
    """Model hparams win over dataset hparams of the same name; the dataset's position is kept."""
    merged = {a.key: a for a in dataset_axes}
    merged.update({a.key: a for a in model_axes})
    return list(merged.values())


def parse_only(only: str | None) -> tuple[dict[str, set[str]], set[str]]:
    """`model=a,b dataset=d lr=0.1 failed` -> ({key: allowed values}, {state words})."""
    filters: dict[str, set[str]] = {}
    states: set[str] = set()
    try:
        tokens = shlex.split(only or "")
    except ValueError as err:
        raise UsageError(f"only: {err}") from None
    for token in tokens:
        if "=" not in token:
            if token not in STATE_WORDS:
                raise UsageError(f"only: expected key=value or one of {', '.join(STATE_WORDS)}, got {token!r}")
            states.add(token)
            continue
        key, _, values = token.partition("=")
        if not key or not values:
            raise UsageError(f"only: expected key=value, got {token!r}")
        filters.setdefault(key, set()).update(v for v in values.split(",") if v)
    return filters, states


def _select(axes: list[Axis], selection: Mapping[str, list], path: str) -> list[Axis]:
    out = []
    for axis in axes:
        if axis.key in selection:
            wanted = {value_text(v) for v in selection[axis.key]}
            options = tuple(o for o in axis.options if o.label in wanted)
            missing = wanted - {o.label for o in options}
            if missing:
                raise ConfigError(LAUNCH_FILE, f"{path}.hparam.{axis.key}",
                                  f"expected values among {', '.join(o.label for o in axis.options)}, "
                                  f"got {', '.join(sorted(missing))}")
            axis = Axis(axis.key, options)
        out.append(axis)
    return out


def _model_fields(entry: Mapping[str, Any], values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The model's own overridable fields, with `<placeholders>` replaced in every string."""
    def sub(text: str, key: str) -> str:
        try:
            return command.substitute(text, values, quote=False)
        except KeyError as err:
            raise ConfigError(LAUNCH_FILE, f"{path}.{key}", f"unresolved placeholder <{err.args[0]}>") from None
    fields = field_overrides(entry, LAUNCH_FILE, f"{path}.")
    for key, value in fields.items():
        if isinstance(value, str):
            fields[key] = sub(value, key)
        elif isinstance(value, tuple):
            fields[key] = tuple(sub(v, key) for v in value)
        elif isinstance(value, dict):
            fields[key] = {k: sub(v, f"{key}.{k}") for k, v in value.items()}
    return fields


def build_runs(config: Config, only: str | None = None, overrides: Mapping[str, Any] | None = None) -> list[Run]:
    """Every selected combination as a Run, in grid order: run entries, then dataset, model, hparams.

    `overrides` (the `smoke:` section) replaces or adds hparam values; such runs are named `...-smoke-...`.
    """
    filters, _states = parse_only(only)
    runs: list[Run] = []
    names: dict[str, str] = {}
    seen_keys: set[str] = set(BUILTINS)
    for i, entry in enumerate(config.runs):
        used_selection: set[str] = set()
        path = f"run[{i}]" if len(config.runs) > 1 else "run"
        selection = entry.get("hparam", {})
        for dataset in entry.get("dataset", list(config.datasets)):
            d_entry = config.datasets[dataset]
            d_axes = parse_axes(d_entry.get("hparam"), f"dataset.{dataset}.hparam")
            d_fields = field_overrides(d_entry, LAUNCH_FILE, f"dataset.{dataset}.")
            for model in entry.get("model", list(config.models)):
                m_entry = config.models[model]
                axes = merge_axes(d_axes, parse_axes(m_entry.get("hparam"), f"model.{model}.hparam"))
                seen_keys.update(k for a in axes for o in a.options for k in o.values)
                used_selection.update(k for k in selection if any(a.key == k for a in axes))
                axes = _select(axes, selection, path)
                for combo in itertools.product(*(a.options for a in axes)):
                    run = _make_run(config, len(runs), model, dataset, axes, combo, d_fields, filters, overrides)
                    if run is None:
                        continue
                    identity = repr((model, dataset, sorted(run.hparams.items(), key=str)))
                    if names.get(run.name, identity) != identity:
                        raise ConfigError(LAUNCH_FILE, path, f"two combinations share the name {run.name}")
                    if run.name not in names:    # the same combination may be selected by two run entries
                        names[run.name] = identity
                        runs.append(run)
        unknown = set(selection) - used_selection
        if unknown:
            raise ConfigError(LAUNCH_FILE, f"{path}.hparam.{sorted(unknown)[0]}", "no selected model or dataset "
                                                                                   "has this hparam")
    bad = set(filters) - seen_keys
    if bad:
        raise UsageError(f"only: unknown key {sorted(bad)[0]!r} (expected model, dataset, name or an hparam: "
                         f"{', '.join(sorted(seen_keys - set(BUILTINS)))})")
    if filters and not runs:
        raise UsageError(f"only: {only!r} selects no combination of {config.project.root / LAUNCH_FILE}")
    return runs


def _make_run(config: Config, index: int, model: str, dataset: str, axes: list[Axis], combo: tuple[Option, ...],
              d_fields: Mapping[str, Any], filters: Mapping[str, set[str]],
              overrides: Mapping[str, Any] | None = None) -> Run | None:
    project = config.project
    hparams: dict[str, Any] = {}
    for option in combo:
        hparams.update(option.values)
    name_parts = {a.key: o.label for a, o in zip(axes, combo) if not a.key.startswith("_")}
    if overrides:
        hparams.update(overrides)
        name_parts = {"smoke": "", **{k: value_text(v) for k, v in overrides.items() if not k.startswith("_")}}
    builtins = {"model": model, "dataset": dataset, "project": project.project_name}
    attrs = {**builtins, **{k: value_text(v) for k, v in hparams.items()}}
    for key, allowed in filters.items():
        if key != "name" and attrs.get(key) not in allowed:
            return None
    mpath = f"model.{model}"
    hp_fields = {k: check_field(FIELD_KINDS[k], v, LAUNCH_FILE, f"{mpath}.hparam.{k}")
                 for k, v in hparams.items() if k in FIELD_KINDS}
    # `<fn>` reads the hidden hparam `_fn` too (the reference's example), unless `fn` itself exists.
    values = {**builtins, **{k[1:]: v for k, v in hparams.items() if k.startswith("_")}, **hparams}
    m_fields = _model_fields(config.models[model], values, mpath)
    merged = merge_levels([*config.base_levels, d_fields, m_fields, hp_fields])
    settings: RunSettings = resolve_settings(project, merged, LAUNCH_FILE, f"{mpath}.")
    name = run_name(settings.prefix, project.project_name, model, dataset, name_parts, hparams)
    if "name" in filters and name not in filters["name"]:
        return None
    values.setdefault("name", name)
    try:
        local, remote = command.process(config.models[model]["command"], values)
    except KeyError as err:
        raise ConfigError(LAUNCH_FILE, f"{mpath}.command",
                          f"unresolved placeholder <{err.args[0]}>: no hparam of that name for {model} x {dataset} "
                          f"(known: {', '.join(sorted(values))})") from None
    except ValueError as err:
        raise ConfigError(LAUNCH_FILE, f"{mpath}.command", f"bad [local](remote) sugar: {err}") from None
    labels = {"user": project.user, "project": project.project_name,
              "model": label_value(model), "dataset": label_value(dataset)}
    return Run(index=index, name=name, model=model, dataset=dataset, hparams=hparams, labels=labels,
               local_command=local, remote_command=remote, settings=settings, project=project)
