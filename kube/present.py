"""What the user reads, in one place: the status and runs tables, totals, the failure summary, JSON, the line
after `make job`. Pure text from typed results; everything that came from the cluster is made terminal-safe.
"""
from __future__ import annotations

import re
from collections import Counter
import dataclasses
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

from . import yamltext
from .naming import value_text
from .settings import Project, Run

if TYPE_CHECKING:                   # `make runs` and `make local` print without loading the status code
    from .status import Cell

RESOURCES = {"Job": "job.batch", "Pod": "pod", "Secret": "secret", "ConfigMap": "configmap", "Service": "service",
             "PyTorchJob": "pytorchjob.kubeflow.org"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Text from the cluster (names, reasons, event messages) with control characters shown, never sent to the
    terminal: an escape sequence in an Event any namespace user can write must not retitle or clear a screen."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def columns(rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded. With `width` (a terminal's), the
    last column is cut to fit, marked with `…` (a pipe gets every character)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    room = None if width is None else max(width - sum(w + 2 for w in widths), 12)
    return "\n".join(("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + _cut(row[-1], room)).rstrip()
                     for row in rows) + "\n"


def _cut(text: str, room: int | None) -> str:
    return text if room is None or len(text) <= room else text[:room - 1] + "…"


def age_text(seconds: float | None) -> str:
    """kubectl's style: 45s, 12m, 5h, 3d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def status_table(rows: Sequence[Cell], width: int | None = None) -> str:
    """Fixed-width text table, grouped by model x dataset (rows keep grid order inside a group)."""
    header = ("MODEL", "DATASET", "NAME", "STATE", "AGE", "NODE", "GPU", "REASON")
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in rows:
        groups.setdefault((c.model, c.dataset), []).append(c)
    lines = [header]
    for (model, dataset), members in groups.items():
        for i, c in enumerate(members):
            state = (f"{c.stage} " if c.stage else "") + c.state + (" *" if c.stale else "")
            state += f" ({plural(c.restarts, 'restart')})" if c.restarts else ""
            lines.append((model if i == 0 else "", dataset if i == 0 else "", safe(c.name), state,
                          age_text(c.age), safe(c.node) or "-", safe(c.gpu) or "-", safe(c.reason or "")))
    return columns(lines, width)


def totals(rows: Sequence[Cell]) -> str:
    from .status import STATES
    count = Counter(c.state for c in rows)
    parts = [f"{count[s]} {s}" for s in STATES if count[s]]
    stale = sum(c.stale for c in rows)
    text = f"{len(rows)} cells: " + ", ".join(parts)
    return text + (f"; {stale} ran code other than HEAD (marked *)" if stale else "")


def failure_summary(rows: Sequence[Cell]) -> str:
    """Failures grouped by reason and by node, and a hostname_blacklist hint when one node dominates."""
    failed = [c for c in rows if c.state == "failed"]
    if not failed:
        return ""
    lines = [f"Failures ({len(failed)}):"]
    for reason, n in Counter(c.reason or "unknown" for c in failed).most_common():
        lines.append(f"  {n:>4}  {safe(reason)}")
    nodes = Counter(c.node for c in failed if c.node)
    if nodes:
        lines.append("By node:")
        lines += [f"  {n:>4}  {safe(node)}" for node, n in nodes.most_common()]
        node, n = nodes.most_common(1)[0]
        if len(failed) >= 2 and n * 2 > len(failed):
            lines.append(f"Most failures ran on {safe(node)}: consider `hostname_blacklist: [{node}]` in config/launch.yaml")
    return "\n".join(lines) + "\n"


def status_json(grid: Sequence[Cell], orphans: Sequence[Cell]) -> dict[str, Any]:
    return {"cells": [asdict(c) for c in grid], "not_in_grid": [asdict(c) for c in orphans],
            "totals": dict(Counter(c.state for c in grid))}


def runs_table(runs: Sequence[Run]) -> str:
    """`make runs`: index, name, model, dataset and the public hparams of each selected combination."""
    rows = [("#", "NAME", "MODEL", "DATASET", "HPARAMS")]
    for run in runs:
        hp = " ".join(f"{k}={value_text(v)}" for k, v in run.public_hparams.items())
        rows.append((str(run.index), run.name, run.model, run.dataset, hp))
    return columns(rows) + plural(len(runs), "combination") + "\n"


def merged_config(project: Project, run: Run) -> str:
    """`make print-config`: the project, the cell and its merged settings as YAML, .env values redacted."""
    doc = {
        "project": {"project_name": project.project_name, "user": project.user, "namespace": project.namespace,
                    "conda_env_name": project.conda_env_name, "root": str(project.root),
                    "dotenv": {k: "<redacted>" for k in project.dotenv}},
        "run": {"name": run.name, "model": run.model, "dataset": run.dataset, "hparams": dict(run.hparams),
                "labels": dict(run.labels), "local_command": run.local_command,
                "remote_command": run.remote_command},
        "settings": {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v)
                     for k, v in dataclasses.asdict(run.settings).items()},
    }
    return yamltext.document(doc)


def submission_notes(project: Project, prov: Any, warn: bool) -> list[str]:
    """What to tell before jobs or a pod are made: laptop-only .env values, and (`warn`) code the jobs would not
    find: uncommitted changes, no commit, a commit on no remote branch."""
    from .render import LAPTOP_ONLY_ENV
    lines = [f"note: {key} from .env stays on this machine; jobs and pods see every GPU they request"
             for key in LAPTOP_ONLY_ENV if key in project.dotenv]
    if not warn or prov is None:
        return lines
    if prov.dirty:
        lines.append(f"warning: the working tree has uncommitted changes (diff {prov.diff_hash}); jobs run the "
                     f"committed code pulled at start")
    if prov.commit is None:
        lines.append("warning: the project is not a git repository with a commit; jobs run the code in the image")
    elif not prov.pushed:
        lines.append("warning: HEAD is on no remote branch: push it (git push) or jobs will not find this commit")
    return lines


def status_report(cells: Sequence[Cell], orphans: Sequence[Cell], calls: int, as_json: bool,
                  width: int | None = None) -> str:
    """`make status`: the table, the totals, Jobs no longer in the grid, the failure summary (or all as JSON).
    `width`: the terminal's columns (reasons are cut to fit); None for a pipe."""
    if as_json:
        return json.dumps({**status_json(cells, orphans), "api_calls": calls}, indent=2) + "\n"
    text = status_table(cells, width) + totals(cells) + "\n"
    if orphans:
        text += "\nJobs on the cluster that are no longer in the grid:\n" + status_table(orphans, width)
    summary = failure_summary(cells)
    return text + ("\n" + summary if summary else "")


def smoke_text(result: Any, timeout: float) -> str:
    """The outcome of `make smoke`: success, the failure's reason and last log lines, or still waiting."""
    if result.ok:
        return f"Smoke test succeeded: {safe(result.name)}\n"
    if result.state in ("succeeded", "failed"):
        text = f"Smoke test failed: {safe(result.reason or 'unknown reason')}\n"
        if result.log_tail:
            text += "Last log lines:\n" + result.log_tail + ("" if result.log_tail.endswith("\n") else "\n")
        return text
    return f"Smoke test still {result.state} after {timeout:g} s: {safe(result.reason or 'no reason given')}\n"


def checkpoint_lines(found: Sequence[Any]) -> str:
    """`make status checkpoints=1`: each checkpointed cell's newest checkpoint in the bucket, or none yet."""
    rows = [("NAME", "NEWEST CHECKPOINT", "AT")]
    for item in found:
        rows.append((item.cell, item.key or "-", item.time.strftime("%Y-%m-%d %H:%M:%S") if item.time else "-"))
    return "\nCheckpoints in the bucket:\n" + columns(rows)
