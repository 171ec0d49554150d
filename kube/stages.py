"""Pipelines, pure: `stages:` and `driver:` parsed and checked, a cell's stage Runs, one stage picked, and a cell's
state folded from the states of its stage Jobs.

A stage is a named command with settings of its own (a CPU download next to an 8-GPU training); the stages of a
cell run in order, each as a Job of its own on the cluster. A model without stages is one stage: its Run, its
name and its Job are the ones it always had.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from .errors import ConfigError, UsageError
from .hparams import type_name
from .naming import is_name
from .settings import Run

if TYPE_CHECKING:                   # grid expansion (make local, make runs) does not load the status code
    from .status import Cell

MAX_STAGE = 20                  # a stage name's length: the cell's readable name keeps 33 characters or more
STAGE_KEYS = ("name", "command")
DRIVER_KEYS = ("where", "service_account", "poll")
DRIVER_PLACES = ("local", "cluster")


@dataclass(frozen=True)
class Stage:
    """One entry of a `stages:` list: its name, its command (None: the model's) and its own settings."""

    name: str
    command: str | None
    fields: Mapping[str, Any] = field(hash=False)      # validated overrides, strings may hold <placeholders>
    path: str = ""                                      # `model.m.stages[1]`, for messages


@dataclass(frozen=True)
class DriverSpec:
    """`driver:` at the launch.yaml root: who submits each next stage, here (`make job wait=1`) or a Job."""

    where: Literal["local", "cluster"] = "local"
    service_account: str | None = None       # an existing ServiceAccount for the driver Job (else one is made)
    poll: float = 30.0                       # seconds between two looks at the cluster, in the cluster


def _unknown(source: str, path: str, key: Any, allowed: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    return ConfigError(source, f"{path}.{key}", "unknown key" + (f"; did you mean '{close[0]}'?" if close else ""))


def parse(raw: Any, source: str, path: str, settings: Sequence[str],
          check_fields: Callable[[Mapping[str, Any], str], dict[str, Any]]) -> tuple[Stage, ...]:
    """A `stages:` list: each a mapping with a unique DNS-safe `name`, an optional `command` and any settings
    (`settings` are their names, `check_fields(entry, prefix)` validates them); None: no stages."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ConfigError(source, path, f"expected a non-empty list of stages ({{name, command, settings}}), "
                                        f"got {type_name(raw)}")
    allowed = [*STAGE_KEYS, *settings]
    out: list[Stage] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(source, where, f"expected a mapping with a name and a command, got {type_name(entry)}")
        for key in entry:
            if key not in allowed:
                raise _unknown(source, where, key, allowed)
        name = entry.get("name")
        if not isinstance(name, str) or not is_name(name) or len(name) > MAX_STAGE:
            raise ConfigError(source, f"{where}.name", f"expected a stage name of lowercase letters, digits and "
                                                       f"'-' (at most {MAX_STAGE}), got {name!r}")
        if name in seen:
            raise ConfigError(source, f"{where}.name", f"expected unique stage names; {name!r} is also {seen[name]}")
        seen[name] = where
        command = entry.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            raise ConfigError(source, f"{where}.command", "expected a non-empty command string (leave the key out "
                                                          "to run the model's command)")
        out.append(Stage(name, command, check_fields(entry, f"{where}."), where))
    return tuple(out)


def parse_driver(raw: Any, source: str) -> DriverSpec:
    """`driver: local|cluster`, or `{where: cluster, service_account: NAME, poll: SECONDS}`."""
    if raw is None:
        return DriverSpec()
    data = {"where": raw} if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise ConfigError(source, "driver", f"expected local, cluster or a mapping, got {type_name(raw)}")
    for key in data:
        if key not in DRIVER_KEYS:
            raise _unknown(source, "driver", key, DRIVER_KEYS)
    where = data.get("where", "local")
    if where not in DRIVER_PLACES:
        raise ConfigError(source, "driver" if isinstance(raw, str) else "driver.where",
                          f"expected local or cluster, got {where!r}")
    account = data.get("service_account")
    if account is not None and (not isinstance(account, str) or not is_name(account)):
        raise ConfigError(source, "driver.service_account", f"expected a ServiceAccount name, got {account!r}")
    poll = data.get("poll", DriverSpec.poll)
    if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not 1 <= poll <= 3600:
        raise ConfigError(source, "driver.poll", f"expected seconds between 1 and 3600, got {poll!r}")
    return DriverSpec(where, account, float(poll))


def chain_of(model_stages: tuple[Stage, ...], dataset_stages: tuple[Stage, ...],
             root_stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """The stages of a model x dataset: the model's, else the dataset's, else the root's (lists do not merge)."""
    return model_stages or dataset_stages or root_stages


def check_commands(models: Mapping[str, Any], datasets: Mapping[str, Any], root: tuple[Stage, ...],
                   source: str) -> None:
    """Every stage has a command to run, and a model's own command is run somewhere."""
    for name, model in models.items():
        for dataset in datasets.values():
            chain = chain_of(model.stages, dataset.stages, root)
            where = f"model.{name}.command"
            if not chain and not model.command:
                raise ConfigError(source, where, "expected a non-empty command string (or stages: with commands)")
            lacking = [s for s in chain if s.command is None]
            if lacking and not model.command:
                raise ConfigError(source, where, f"expected a command: stage '{lacking[0].name}' "
                                                 f"({lacking[0].path}) runs the model's command")
            if model.stages and model.command and not lacking:
                raise ConfigError(source, where, f"is never run: every stage of model.{name}.stages has its own "
                                                 f"command; remove it, or leave a stage's command out to run it")


# --- the Runs of stages -----------------------------------------------------------------------------------------

def units(run: Run) -> tuple[Run, ...]:
    """What runs for a cell, in order: its stages, or the cell itself."""
    return run.stages or (run,)


def flatten(runs: Sequence[Run]) -> list[Run]:
    """Every stage of every cell (cells without stages as they are): one Job each on the cluster."""
    return [unit for run in runs for unit in units(run)]


def staged(runs: Sequence[Run]) -> bool:
    return any(run.stages for run in runs)


def pick(runs: Sequence[Run], stage: str | None) -> list[Run]:
    """`stage=NAME`: the cells that have that stage, each with that stage alone."""
    if not stage:
        return list(runs)
    out = [dataclasses.replace(run, stages=chosen) for run in runs
           if (chosen := tuple(s for s in run.stages if s.stage == stage))]
    if not out:
        names = sorted({s.stage for run in runs for s in run.stages})
        raise UsageError(f"stage: no selected cell has a stage {stage!r} "
                         f"({'stages: ' + ', '.join(names) if names else 'no cell has stages'})")
    return out


def position(run: Run, unit: Run) -> str:
    """`train 2/4`: a stage and where it stands in its cell."""
    chain = units(run)
    return f"{unit.stage} {chain.index(unit) + 1}/{len(chain)}" if run.stages else ""


def stage_job(runs: Sequence[Run], cell: str, stage: str | None) -> str:
    """The Job of one stage of a cell (`make logs name=CELL stage=NAME`); the cell's name without `stage`."""
    if not stage:
        return cell
    run = next((r for r in runs if r.name == cell), None)
    if run is None:
        raise UsageError(f"stage: no cell named {cell!r} in the grid")
    found = next((s for s in run.stages if s.stage == stage), None)
    if found is None:
        names = ", ".join(s.stage for s in run.stages) or "none"
        raise UsageError(f"stage: cell {cell} has no stage {stage!r} (its stages: {names})")
    return found.name


# --- status -----------------------------------------------------------------------------------------------------

def fold(runs: Sequence[Run], flat: Sequence[Cell]) -> list[Cell]:
    """One row per cell from the rows of `flatten(runs)`: the last stage that has a Job tells the state;
    a completed stage whose next one has no Job yet makes the cell pending on that next stage."""
    out: list[Cell] = []
    rows = iter(flat)
    for run in runs:
        chain = units(run)
        mine = [next(rows) for _ in chain]
        if not run.stages:
            out.append(mine[0])
            continue
        started = [i for i, c in enumerate(mine) if c.state != "not submitted"]
        last = started[-1] if started else 0
        current = mine[last]
        if current.state == "succeeded" and last + 1 < len(chain):
            current = dataclasses.replace(mine[last + 1], state="pending",
                                          reason=f"{chain[last].stage} done; next stage not submitted yet")
            last += 1
        out.append(dataclasses.replace(current, name=run.name, model=run.model, dataset=run.dataset,
                                       stage=position(run, chain[last])))
    return out
