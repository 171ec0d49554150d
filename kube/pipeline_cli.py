"""The command line of pipelines, beside launch.py: the `--stage`, `--wait` and `--follow-only` arguments, and
`make job` for a grid with stages (or `wait=1`), printing as launch.py does (results on stdout, notes on stderr).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

from .console import err, out, retrying, submitted

if TYPE_CHECKING:              # imported where used
    from . import driver, grid, operations
    from .config import Config
    from .settings import Run

def log_name(cfg: Config, name: str, stage: str | None) -> str:
    """`make logs name=CELL stage=NAME`: the Job of that stage of the cell (without stage: the cell's name)."""
    from . import grid, stages
    cell = grid.resolve_name(cfg, name)
    return stages.stage_job(grid.build_runs(cfg, f"name={cell}"), cell, stage) if stage else cell


def _report_follow(event: driver.Event) -> None:
    from .present import plural, safe
    s = event.step
    where = f" (stage {s.where} of {s.cell.name})" if s.where else ""
    if event.kind in ("created", "exists"):
        out(f"job.batch/{s.unit.name} {'created' if event.kind == 'created' else 'was already there'}{where}")
    elif event.kind == "error":
        err(f"error: {event.error}")
    elif event.kind == "done":
        out(f"{s.cell.name} completed" + (f" ({plural(len(s.cell.stages), 'stage')})" if s.cell.stages else ""))
    else:
        out(f"{s.cell.name} stopped: " + (f"stage {s.where} failed" if s.where else "its Job failed") +
             f" ({safe(s.reason)})")


def job(args: Any, cfg: Config, selection: grid.Selection, runs: list[Run], annotations: Mapping[str, str]) -> int:
    """`make job` of a pipeline: submit what is ready, start the driver Job (`driver: cluster`), and with
    `wait` (or in the driver's pod, `follow_only`) follow the cells until each has completed or stopped."""
    from . import driver, driver_job, grid, operations, stages
    from .errors import UsageError
    from .present import plural
    if args.follow_only:
        project = driver_job.pod_dotenv(cfg.project)
        if project is not cfg.project:
            cfg = dataclasses.replace(cfg, project=project)
            runs = stages.pick(grid.build_runs(cfg, grid.Selection(selection.text, selection.filters)), args.stage)
    project = cfg.project
    if any(unit.settings.shared > 1 or unit.settings.max_parallel for unit in stages.flatten(runs)):
        raise UsageError("wait: follows one Job per cell or stage; not with shared or max_parallel")
    gw = operations.gateway(project, retrying)
    listed = driver.list_jobs(gw, project)
    cells = driver.choose(runs, listed, selection.states)
    flat = stages.flatten(cells)
    rendered = operations.render_grid(flat, project, annotations)
    status = 0
    followed = bool(args.wait or args.follow_only)
    if not args.follow_only:
        result, steps = driver.start(gw, project, cells, listed, rendered, args.overwrite,
                                     "failed" in selection.states, submitted)
        parts = [f"{result.count(k)} {k}" for k in ("created", "replaced", "unchanged", "failed")
                 if result.count(k) or k in ("created", "failed")]
        held = f" ({plural(len(flat), 'stage Job')})" if len(flat) != len(cells) else ""
        out(f"{plural(len(cells), 'cell')}{held}: {', '.join(parts)} ({plural(result.calls, 'API call')})")
        status = 1 if result.failed else 0
        if cfg.driver.where == "cluster" and any(s.submits or s.kind == "wait" for s in steps):
            made = driver_job.render(cfg, flat, selection.filters, args.set or [], args.stage, annotations)
            outcome = driver_job.start(gw, project, made)
            out(f"job.batch/{made.job.name} {outcome}: the driver follows these cells in the cluster "
                 f"(service account {made.account}); `make status` shows them, `make delete` removes it")
    if not followed:
        return status
    report = driver.follow(gw, project, cells, {j.name: j for j in rendered.jobs}, args.poll, _report_follow,
                           first_sleep=not args.follow_only)
    stopped = [f"{s.cell.name} ({s.unit.stage or 'its Job'})" for s in report.stopped]
    out(f"Followed {plural(len(cells), 'cell')}: {len(report.done)} completed, {len(stopped)} stopped"
         + (f": {', '.join(stopped)}" if stopped else "") + (f", {len(report.idle)} not started" if report.idle
                                                             else "") + f" ({plural(report.polls, 'poll')})")
    return status or (1 if stopped and not args.follow_only else 0)
