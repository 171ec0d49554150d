"""Expand models x datasets x hparams into Runs, in a stable documented order, and select among them."""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import command, multinode, ownership, search, stages
from .config import (FIELD_KINDS, LAUNCH_FILE, Config, ModelEntry, check_field, merge_levels,
                     resolve_settings)
from .errors import ConfigError, UsageError
from .hparams import Axis, Option, merge_axes
from .settings import Run, RunSettings
from .naming import label_value, run_name, value_text

STATE_WORDS = ("failed", "missing")      # `only=failed`: resolved against the cluster, not the grid
BUILTINS = ("model", "dataset", "name", "project")
MAX_CELLS = 100_000              # one selection; an Indexed Job holds as many, a namespace rarely more Jobs
MAX_COMMAND = 100 * 1024         # bytes of one command: `bash -c` takes it as one argument (128 KiB at most)


@dataclass(frozen=True)
class Selection:
    """`only=` parsed once: `model=a,b dataset=d lr=0.1 failed` -> key filters and cluster-state words."""

    text: str = ""
    filters: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    states: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, only: str | None) -> Selection:
        filters: dict[str, set[str]] = {}
        states: set[str] = set()
        try:
            tokens = shlex.split(only or "")
        except ValueError as err:
            raise UsageError(f"only: {err}") from err
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
        return cls(only or "", {k: frozenset(v) for k, v in filters.items()}, frozenset(states))


def as_selection(only: Selection | str | None) -> Selection:
    return only if isinstance(only, Selection) else Selection.parse(only)


def _select(axes: list[Axis], selection: Mapping[str, tuple], path: str) -> list[Axis]:
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


def _has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return "<" in value
    if isinstance(value, tuple):
        return any("<" in v for v in value)
    if isinstance(value, dict):
        return any("<" in v for v in value.values())
    return False


SHELL_FIELDS = ("startup_script", "extra_startup_script", "server_command")      # placeholders in them are quoted like in commands


def _model_fields(entry: ModelEntry | stages.Stage, values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The model's (or a stage's) own overridable fields, with `<placeholders>` replaced in every string."""
    def sub(text: str, key: str) -> str:
        try:
            return command.substitute(text, values, for_bash=key in SHELL_FIELDS)
        except KeyError as err:
            raise ConfigError(LAUNCH_FILE, f"{path}.{key}", f"unresolved placeholder <{err.args[0]}>") from None
        except ValueError as err:
            raise ConfigError(LAUNCH_FILE, f"{path}.{key}", str(err)) from None
    fields = dict(entry.fields)
    for key, value in fields.items():
        if isinstance(value, str):
            fields[key] = sub(value, key)
        elif isinstance(value, tuple):
            fields[key] = tuple(sub(v, key) for v in value)
        elif isinstance(value, dict):
            fields[key] = {k: sub(v, f"{key}.{k}") for k, v in value.items()}
    return fields


class _Builder:
    """State of one expansion: settings shared by the cells that cannot differ, names seen so far."""

    def __init__(self, config: Config, selection: Selection, overrides: Mapping[str, Any] | None) -> None:
        self.config, self.selection, self.overrides = config, selection, overrides
        self.settings_cache: dict[tuple[str, str, str], RunSettings] = {}
        self.names: dict[str, str] = {}
        self.runs: list[Run] = []

    def settings(self, model: str, dataset: str, values: Mapping[str, Any], hparams: Mapping[str, Any],
                 stage: stages.Stage | None = None) -> RunSettings:
        """Merged settings of one cell (or of a stage of it: its own settings above the hparams); cached per
        model x dataset (x stage) when no hparam or placeholder changes them."""
        config, mpath = self.config, f"model.{model}"
        entry = config.models[model]
        hp_fields = {k: check_field(FIELD_KINDS[k], v, LAUNCH_FILE, f"{mpath}.hparam.{k}")
                     for k, v in hparams.items() if k in FIELD_KINDS}
        dynamic = bool(hp_fields) or any(_has_placeholder(v) for v in entry.fields.values()) or \
            bool(stage and any(_has_placeholder(v) for v in stage.fields.values()))
        key = (model, dataset, stage.name if stage else "")
        if not dynamic and key in self.settings_cache:
            return self.settings_cache[key]
        m_fields = _model_fields(entry, values, mpath) if dynamic else entry.fields
        s_fields = {} if stage is None else _model_fields(stage, values, stage.path) if dynamic else stage.fields
        merged = merge_levels([*config.base_levels, config.datasets[dataset].fields, m_fields, hp_fields, s_fields,
                               config.set_fields])
        settings = resolve_settings(config.project, merged, LAUNCH_FILE, f"{stage.path if stage else mpath}.")
        if not dynamic:
            self.settings_cache[key] = settings
        return settings

    def add(self, model: str, dataset: str, axes: list[Axis], combo: tuple[Option, ...], path: str) -> None:
        config, project, filters, overrides = self.config, self.config.project, self.selection.filters, self.overrides
        hparams: dict[str, Any] = {}
        for option in combo:
            hparams.update(option.values)
        name_parts = {a.key: o.label for a, o in zip(axes, combo) if not a.key.startswith("_")}
        if overrides:
            hparams.update(overrides)
            name_parts = {"smoke": "", **{k: value_text(v) for k, v in overrides.items() if not k.startswith("_")}}
        builtins = {"model": model, "dataset": dataset, "project": project.project_name}
        for key, allowed in filters.items():
            if key != "name" and (builtins[key] if key in builtins else
                                  value_text(hparams[key]) if key in hparams else None) not in allowed:
                return
        # `<fn>` reads the hidden hparam `_fn` too (the reference's example), unless `fn` itself exists.
        values = {**builtins, **{k[1:]: v for k, v in hparams.items() if k.startswith("_")}, **hparams}
        settings = self.settings(model, dataset, {**values, "name": ""} if "name" not in values else values, hparams)
        name = run_name(settings.prefix, project.project_name, model, dataset, name_parts, hparams, project.user,
                        multinode.name_limit(settings))     # a cell on several nodes leaves room for its pods
        if "name" not in values and any("<name>" in str(v) for v in config.models[model].fields.values()):
            settings = self.settings(model, dataset, {**values, "name": name}, hparams)    # `<name>` in env, image
        if "name" in filters and name not in filters["name"]:
            return
        values.setdefault("name", name)
        chain = stages.chain_of(config.models[model].stages, config.datasets[dataset].stages, config.stages)
        local, remote = ("", "") if chain else _commands(config.models[model].command, values,
                                                         f"model.{model}.command", model, dataset)
        identity = repr((model, dataset, sorted(hparams.items(), key=str)))
        if self.names.get(name, identity) != identity:
            raise ConfigError(LAUNCH_FILE, path, f"two combinations share the name {name}")
        if name in self.names:              # the same combination may be selected by two run entries
            return
        longest = max(len(local.encode()), len(remote.encode()))
        if longest > MAX_COMMAND:
            raise ConfigError(LAUNCH_FILE, f"model.{model}.command",
                              f"expected a command under {MAX_COMMAND // 1024} KiB once placeholders are filled "
                              f"(the OS refuses longer arguments), got {longest // 1024} KiB for {name}")
        if len(self.runs) >= MAX_CELLS:
            raise ConfigError(LAUNCH_FILE, "run", f"expected at most {MAX_CELLS:,} cells in one selection, the grid "
                                                  f"has more: narrow it with only=, or draw samples with search:")
        self.names[name] = identity
        labels = {**ownership.labels(project), "model": label_value(model), "dataset": label_value(dataset)}
        cell = Run(index=len(self.runs), name=name, model=model, dataset=dataset, hparams=hparams, labels=labels,
                   local_command=local, remote_command=remote, settings=settings, project=project)
        self.runs.append(dataclasses.replace(cell, stages=self.stage_runs(cell, chain, values)) if chain else cell)

    def stage_runs(self, cell: Run, chain: tuple[stages.Stage, ...], values: Mapping[str, Any]) -> tuple[Run, ...]:
        """A cell's stages as Runs: named from the cell and the stage, labelled with both, `<stage>` known."""
        out = []
        for stage in chain:
            given = {"stage": stage.name, **values}
            settings = self.settings(cell.model, cell.dataset, given, cell.hparams, stage)
            if settings.shared > 1 or settings.max_parallel:
                raise ConfigError(LAUNCH_FILE, stage.path, "expected neither shared nor max_parallel for a stage: "
                                                           "each stage of a cell is a Job of its own")
            if settings.engine == "pytorchjob":
                raise ConfigError(LAUNCH_FILE, stage.path, "expected engine: job for a stage (a pipeline chains "
                                                           "Jobs; nodes: N runs a stage on several nodes)")
            where = f"{stage.path}.command" if stage.command else f"model.{cell.model}.command"
            local, remote = _commands(stage.command or self.config.models[cell.model].command, given, where,
                                      cell.model, cell.dataset)
            out.append(dataclasses.replace(
                cell, name=ownership.stage_job_name(cell.name, stage.name, multinode.name_limit(settings)),
                local_command=local,
                remote_command=remote, settings=settings, stage=stage.name, cell=cell.name,
                labels={**cell.labels, **ownership.stage_labels(stage.name, cell.name)}))
        if len({r.name for r in out}) < len(out):
            raise ConfigError(LAUNCH_FILE, chain[0].path.rsplit("[", 1)[0], f"expected stage names that keep the "
                                                                           f"Job names of cell {cell.name} apart")
        return tuple(out)


def _commands(text: str, values: Mapping[str, Any], path: str, model: str, dataset: str) -> tuple[str, str]:
    """(local, remote) of a command, its placeholders replaced; errors name the key path."""
    try:
        return command.process(text, values)
    except KeyError as err:
        raise ConfigError(LAUNCH_FILE, path, f"unresolved placeholder <{err.args[0]}>: no hparam of that name for "
                                             f"{model} x {dataset} (known: {', '.join(sorted(values))})") from None
    except ValueError as err:
        raise ConfigError(LAUNCH_FILE, path, f"bad [local](remote) sugar: {err}") from None


def build_runs(config: Config, only: Selection | str | None = None,
               overrides: Mapping[str, Any] | None = None) -> list[Run]:
    """Every selected combination as a Run, in grid order: run entries, then dataset, model, hparams.

    `overrides` (the `smoke:` section) replaces or adds hparam values; such runs are named `...-smoke-...`.
    """
    selection = as_selection(only)
    builder = _Builder(config, selection, overrides)
    seen_keys: set[str] = set(BUILTINS)
    for entry in config.runs:
        used: set[str] = set()
        for dataset in entry.datasets:
            d_axes = config.datasets[dataset].axes
            for model in entry.models:
                axes = merge_axes(d_axes, config.models[model].axes)
                seen_keys.update(k for a in axes for o in a.options for k in o.values)
                used.update(k for k in entry.selection if any(a.key == k for a in axes))
                axes = _select(axes, entry.selection, entry.path)
                axes, combos = search.expand(axes, config.models[model].search or config.search)
                seen_keys.update(a.key for a in axes)
                for combo in combos:
                    builder.add(model, dataset, axes, combo, entry.path)
        unknown = set(entry.selection) - used
        if unknown:
            raise ConfigError(LAUNCH_FILE, f"{entry.path}.hparam.{sorted(unknown)[0]}",
                              "no selected model or dataset has this hparam")
    bad = set(selection.filters) - seen_keys
    if bad:
        raise UsageError(f"only: unknown key {sorted(bad)[0]!r} (expected model, dataset, name or an hparam: "
                         f"{', '.join(sorted(seen_keys - set(BUILTINS)))})")
    if selection.filters and not builder.runs:
        raise UsageError(f"only: {selection.text!r} selects no combination of "
                         f"{config.project.root / LAUNCH_FILE}")
    return builder.runs


def resolve_name(cfg: Config, name: str, command: str = "logs") -> str:
    """A job name, or a `key=value` selection that picks exactly one cell."""
    if not name:
        raise UsageError(f"{command}: expected name=JOB or name='key=value ...' (see `make status` for names)")
    if "=" not in name:
        return name
    runs = build_runs(cfg, name)
    if len(runs) != 1:
        raise UsageError(f"{command}: name={name!r} selects {len(runs)} cells; expected exactly one "
                         f"({', '.join(r.name for r in runs[:5])}{'...' if len(runs) > 5 else ''})")
    return runs[0].name
