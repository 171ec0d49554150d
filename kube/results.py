"""Each cell's results folder: where it is, what a run leaves there, and the rows `make results` gathers from it.

A cell's command finds its folder in `$RESULTS_DIR` (`<project root>/<results>/<cell name>/`). It writes
`metrics.json` there (a flat JSON object), or prints `METRICS {json}` lines, which `make local` merges in order
into `metrics.json` when the command wrote none. `make local` also records the command's exit status in
`exit_status`. Reading, sorting, picking the best row and aggregating over an axis are pure functions of rows.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import shlex
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import UsageError
from .naming import value_text
from .settings import Run

METRICS_FILE = "metrics.json"
EXIT_FILE = "exit_status"
MARKER = b"METRICS "
ENV_NAME = "RESULTS_DIR"
FIXED_COLUMNS = ("name", "model", "dataset", "state")


def parent(run: Run) -> Path:
    """`<root>/<results>`: the `results` setting is relative to the project root (or absolute)."""
    assert run.project is not None
    base = Path(run.settings.results)
    return base if base.is_absolute() else run.project.root / base


def folder(run: Run) -> Path:
    """`<root>/<results>/<cell name>`: the cell's results folder, `$RESULTS_DIR` in its command (and in each
    of its stages)."""
    return parent(run) / run.cell_name


def shell_export(run: Run) -> str:
    """The line a pod runs before the cell's command: the same folder under the checkout the job runs in."""
    base = Path(run.settings.results) / run.cell_name
    where = shlex.quote(str(base)) if base.is_absolute() else f"\"$PWD\"/{shlex.quote(str(base))}"
    return f"export {ENV_NAME}={where}; mkdir -p \"${ENV_NAME}\" 2>/dev/null || true\n"


# --- what a local run leaves ------------------------------------------------------------------------------------

class Capture:
    """The `METRICS {json}` lines of a command's output, merged in order (a later key wins)."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}
        self.problems: list[str] = []
        self._partial = b""
        self.closed = False

    def feed(self, chunk: bytes) -> None:
        if self.closed:
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
        self._partial, self.closed = b"", True

    def _line(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if not line.startswith(MARKER):
            return
        text = line[len(MARKER):].decode("utf-8", "replace").strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.problems.append(f"a METRICS line is not a JSON object: {text[:60]!r}")
            return
        self.metrics.update(flatten(value))


def prepare(run: Run, fresh: bool = True) -> Capture:
    """Make the cell's folder and forget what its previous run left there (metrics.json, exit_status); a later
    stage of a pipeline (`fresh=False`) keeps what the earlier ones left."""
    target = folder(run)
    target.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, EXIT_FILE) if fresh else ():
        (target / name).unlink(missing_ok=True)
    return Capture()


def finish(run: Run, code: int, capture: Capture) -> list[str]:
    """Record the exit status, and the METRICS lines as metrics.json unless the command wrote one."""
    capture.close()
    target = folder(run)
    target.mkdir(parents=True, exist_ok=True)
    (target / EXIT_FILE).write_text(f"{128 - code if code < 0 else code}\n")
    if capture.metrics and not (target / METRICS_FILE).exists():
        (target / METRICS_FILE).write_text(json.dumps(capture.metrics, indent=2) + "\n")
    return [f"{run.name}: {p}" for p in capture.problems]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"val": {"loss": 1}}` -> `{"val.loss": 1}`; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- gathering --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stat:
    """A metric aggregated over the cells of a group: mean, sample standard deviation (n - 1), count."""

    mean: float | None
    std: float | None
    n: int


@dataclass(frozen=True)
class Row:
    name: str
    model: str
    dataset: str
    hparams: Mapping[str, Any] = field(hash=False)     # every hparam of the cell, `_` ones included
    state: str | None = None                            # succeeded, failed, interrupted; None: unknown
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)
    members: tuple[str, ...] = ()                       # the cells a group= row aggregates


def state_of(code: str | None) -> str | None:
    if code is None:
        return None
    try:
        status = int(code.strip())
    except ValueError:
        return None
    return "succeeded" if status == 0 else "interrupted" if status in (130, 143) else "failed"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_metrics(path: Path | str) -> tuple[dict[str, Any], str | None]:
    """(metrics, problem): a missing file is no metrics and no problem; a bad one is both."""
    try:
        text = _read(str(path))
        if text is None:
            return {}, None
        data = json.loads(text)
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return {}, f"{path}: not readable as JSON ({err}); its metrics are shown as missing"
    if not isinstance(data, dict):
        return {}, f"{path}: expected a JSON object, got {type(data).__name__}; its metrics are shown as missing"
    return flatten(data), None


def collect(runs: Iterable[Run]) -> tuple[list[Row], list[str]]:
    """One row per cell, in grid order, from its results folder; and the problems met on the way."""
    rows, problems = [], []
    parents: dict[tuple[Any, str], str] = {}         # plain strings: 10,000 cells are 20,000 files to read
    for run in runs:
        key = (run.project and run.project.root, run.settings.results)
        base = parents.get(key) or parents.setdefault(key, str(parent(run)))
        target = os.path.join(base, run.name)
        try:
            code = _read(os.path.join(target, EXIT_FILE))
        except (OSError, UnicodeDecodeError):
            code = None
        metrics, problem = read_metrics(os.path.join(target, METRICS_FILE))
        if problem:
            problems.append(problem)
        rows.append(Row(run.name, run.model, run.dataset, dict(run.hparams), state_of(code), metrics))
    return rows, problems


def with_states(rows: Sequence[Row], states: Mapping[str, str]) -> list[Row]:
    """Rows whose state another source knows (cell name -> state, e.g. from `make status`)."""
    return [replace(r, state=states.get(r.name, r.state)) for r in rows]


# --- arranging --------------------------------------------------------------------------------------------------

def number(value: Any) -> float | None:
    """The number a metric value compares as (a Stat by its mean); None for text, booleans, NaN, missing."""
    if isinstance(value, Stat):
        value = value.mean
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def columns(rows: Sequence[Row]) -> tuple[list[str], list[str]]:
    """(public hparam names, metric names), each in order of first appearance."""
    hparams: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for row in rows:
        hparams.update((k, None) for k in row.hparams if not k.startswith("_"))
        metrics.update((k, None) for k in row.metrics)
    return list(hparams), list(metrics)


def _unknown(arg: str, what: str, name: str, known: Sequence[str]) -> UsageError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known) or 'none yet'})"
    return UsageError(f"{arg}: unknown {what} {name!r}{hint}")


def value_of(row: Row, column: str) -> Any:
    if column in row.metrics:
        return row.metrics[column]
    if column in row.hparams:
        return row.hparams[column]
    return getattr(row, column, None) if column in FIXED_COLUMNS else None


def sort_rows(rows: Sequence[Row], spec: str) -> list[Row]:
    """`sort=val_loss` ascending, `sort=-val_loss` descending; cells without a value always come last."""
    column = spec[1:] if spec.startswith("-") else spec
    hparams, metrics = columns(rows)
    known = [*metrics, *hparams, *(k for r in rows for k in r.hparams if k.startswith("_")), *FIXED_COLUMNS]
    if column not in known:
        raise _unknown("sort", "column", column, list(dict.fromkeys(known)))
    present = [r for r in rows if value_of(r, column) is not None]
    missing = [r for r in rows if value_of(r, column) is None]

    def key(row: Row) -> tuple:
        value = value_of(row, column)
        n = number(value)
        return (0, n, "") if n is not None else (1, 0.0, value_text(value))
    return sorted(present, key=key, reverse=spec.startswith("-")) + missing


def best_row(rows: Sequence[Row], spec: str) -> Row:
    """`best=val_loss:min` (the default) or `best=accuracy:max`: the row with the best number."""
    metric, _, goal = spec.partition(":")
    goal = goal or "min"
    if goal not in ("min", "max"):
        raise UsageError(f"best: expected METRIC:min or METRIC:max, got {spec!r}")
    _, metrics = columns(rows)
    if metric not in metrics:
        raise _unknown("best", "metric", metric, metrics)
    scored = [(number(r.metrics.get(metric)), i, r) for i, r in enumerate(rows)]
    scored = [s for s in scored if s[0] is not None]
    if not scored:
        raise UsageError(f"best: no selected cell has a number for {metric!r}")
    pick = min if goal == "min" else max
    return pick(scored, key=lambda s: (s[0], -s[1] if goal == "max" else s[1]))[2]


def _state_summary(states: Sequence[str | None]) -> str | None:
    counts: dict[str, int] = {}
    for state in states:
        counts[state or "unknown"] = counts.get(state or "unknown", 0) + 1
    if set(counts) == {"unknown"}:
        return None
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def group_rows(rows: Sequence[Row], key: str) -> list[Row]:
    """`group=seed`: one row per combination of the other hparams, each metric as mean and std over `key`."""
    known = list(dict.fromkeys(k for r in rows for k in r.hparams))
    if key not in known:
        raise _unknown("group", "hparam", key, known)
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        rest = tuple((k, value_text(v)) for k, v in row.hparams.items() if k != key)
        groups.setdefault((row.model, row.dataset, rest), []).append(row)
    _, metrics = columns(rows)
    out = []
    for members in groups.values():
        stats = {}
        for metric in metrics:
            values = [n for n in (number(m.metrics.get(metric)) for m in members) if n is not None]
            stats[metric] = Stat(statistics.mean(values) if values else None,
                                 statistics.stdev(values) if len(values) > 1 else None, len(values))
        first = members[0]
        out.append(Row("", first.model, first.dataset, {k: v for k, v in first.hparams.items() if k != key},
                       _state_summary([m.state for m in members]), stats, tuple(m.name for m in members)))
    return out


def arrange(rows: Sequence[Row], sort: str | None = None, best: str | None = None,
            group: str | None = None) -> list[Row]:
    """group=, then sort=, then best= (which keeps the one best row)."""
    out = group_rows(rows, group) if group else list(rows)
    if sort:
        out = sort_rows(out, sort)
    if best:
        out = [best_row(out, best)]
    return out
