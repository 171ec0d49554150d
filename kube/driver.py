"""Pipelines on the cluster: which stage of each cell to submit, decided from the Jobs of one list; the first pass
of `make job` and the follow loop of `make job wait=1` and of the driver Job (kube/driver_job.py).

Every decision is taken again from what the cluster shows (stage Jobs found by name, their conditions), never from
a local state file: a driver can be stopped and started again at any point. A Job's name is its identity, so a
stage is never created twice: a second create of it is refused by the API server and read as "already there".
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from . import objects, operations, stages
from .cluster import Gateway
from .errors import AlreadyExists, ClusterError, NotFound, ToolboxError
from .ownership import selector
from .render import Rendered
from .settings import Project, Run
from .status import job_state

StepKind = Literal["create", "replace", "restart", "wait", "done", "stopped", "idle"]
EventKind = Literal["created", "exists", "done", "stopped", "error"]
SUBMITS = ("create", "replace", "restart")
FINAL_ERRORS = (400, 404, 422)          # a create refused for good: the cell stops (others are retried)


@dataclass(frozen=True)
class Step:
    """Where a cell stands and what to do: create its next stage, replace a failed one, wait, or nothing."""

    kind: StepKind
    cell: Run
    unit: Run                                   # the stage concerned (the cell itself without stages)
    existing: Mapping[str, Any] | None = None   # its Job, when there is one
    reason: str = ""                            # the state it waits in, or why it failed

    @property
    def where(self) -> str:
        """`train 2/3`, or "" for a cell without stages."""
        return stages.position(self.cell, self.unit)

    @property
    def submits(self) -> bool:
        return self.kind in SUBMITS

    def message(self) -> str:
        """The sentence `make job` prints for the cell, in the words of a Job without stages."""
        job = f"Job '{self.unit.name}'" + (f" (stage {self.where})" if self.where else "")
        return {"create": f"{job} not found" + (f"; {self.reason}" if self.reason else "") + ". Creating the job.",
                "replace": f"{job} failed. Replacing the job.",
                "restart": f"{job}: the cell starts again from its first stage (overwrite). Replacing the job.",
                "wait": f"{job} is {self.reason}. Left alone.",
                "done": f"{job} is succeeded. Left alone.",
                "stopped": f"{job} failed. Left alone; resume the cell at this stage with only=failed.",
                "idle": f"{job} not found. Left alone."}[self.kind]


def step(cell: Run, jobs: Mapping[str, Mapping[str, Any]], follow: bool, overwrite: bool = False,
         retry: bool = False) -> Step:
    """The last stage that has a Job tells where a cell is; a failed stage stops its cell. `follow` only
    carries started cells on; otherwise a cell with no Job starts, `retry` (only=failed) replaces a failed stage
    and `overwrite` starts every cell again from its first stage."""
    chain = stages.units(cell)
    started = [i for i, unit in enumerate(chain) if unit.name in jobs]
    if overwrite and not follow:
        return Step("restart" if started else "create", cell, chain[0], jobs.get(chain[0].name))
    if not started:
        return Step("idle" if follow else "create", cell, chain[0])
    last = started[-1]
    unit, job = chain[last], jobs[chain[last].name]
    if objects.meta(job).get("deletionTimestamp"):
        return Step("wait", cell, unit, job, "being deleted")
    state, reason = job_state(job)
    if state == "succeeded":
        if last + 1 == len(chain):
            return Step("done", cell, unit, job)
        return Step("create", cell, chain[last + 1], None, f"stage {unit.stage} completed")
    if state == "failed":
        return Step("replace" if retry and not follow else "stopped", cell, unit, job, reason or "failed")
    return Step("wait", cell, unit, job, state)


def list_jobs(gw: Gateway, project: Project) -> dict[str, dict]:
    """The user's Jobs of the project by name: one paged list, each Job slimmed to what `step` reads."""
    return {objects.name(j): j for j in gw.list("Job", selector(project), shape=objects.slim_job)}


def choose(cells: Sequence[Run], jobs: Mapping[str, Mapping[str, Any]], states: frozenset[str]) -> list[Run]:
    """`only=failed`: the cells stopped by a failed stage; `only=missing`: the cells with no Job at all."""
    if not states:
        return list(cells)
    wanted = {"stopped"} if "failed" in states else set()
    wanted |= {"idle"} if "missing" in states else set()
    return [cell for cell in cells if step(cell, jobs, follow=True).kind in wanted]


def _restart(gw: Gateway, project: Project, s: Step, job: Rendered, jobs: Mapping[str, Mapping[str, Any]]) -> str:
    """Overwrite: the cell's later stage Jobs go (exactly those listed), its first stage is replaced."""
    for unit in stages.units(s.cell)[1:]:
        if unit.name in jobs:
            try:
                gw.delete("Job", unit.name, uid=objects.uid(jobs[unit.name]))
            except NotFound:
                pass
    return operations.create_or_replace(gw, project, job, s.existing)


def start(gw: Gateway, project: Project, cells: Sequence[Run], jobs: Mapping[str, Mapping[str, Any]],
          rendered: operations.RenderedGrid, overwrite: bool = False, retry: bool = False,
          report: Callable[[operations.JobResult], None] | None = None) -> tuple[operations.SubmitReport, list[Step]]:
    """`make job` of a pipeline: each cell's next stage submitted (its first, or the one after a completed stage;
    a failed one replaced with `retry`). The Secrets and ConfigMaps of every stage are made now, while anything
    is left to submit, so that a driver only ever creates Jobs."""
    by_name = {j.name: j for j in rendered.jobs}
    steps = [step(cell, jobs, follow=False, overwrite=overwrite, retry=retry) for cell in cells]
    todo = [s for s in steps if s.submits]
    if todo:
        operations.check_secrets(gw, rendered.settings)
        by_name[todo[0].unit.name].manifest           # a broken project template fails before the first call
    if any(s.submits or s.kind == "wait" for s in steps):
        for obj in rendered.objects:
            operations.ensure(gw, project, obj)

    def one(s: Step) -> str:
        job = by_name[s.unit.name]
        if s.kind == "restart":
            return _restart(gw, project, s, job, jobs)
        return operations.create_or_replace(gw, project, job, s.existing if s.kind == "replace" else None)

    result = operations.SubmitReport()
    with ThreadPoolExecutor(max_workers=operations.WORKERS) as pool:
        futures = {s.unit.name: pool.submit(one, s) for s in todo}
        for s in steps:
            if not s.submits:
                item = operations.JobResult(s.unit.name, s.message(), "unchanged")
            else:
                try:
                    outcome: Any = futures[s.unit.name].result()
                    item = operations.JobResult(s.unit.name, s.message(), outcome)
                except ToolboxError as err:
                    item = operations.JobResult(s.unit.name, s.message(), "failed", str(err))
            result.results.append(item)
            if report:
                report(item)
    result.calls = gw.calls
    return result, steps


# --- following --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """What the follow loop tells: a stage created (or already there), a cell completed or stopped, an error."""

    kind: EventKind
    step: Step
    error: str = ""


@dataclass
class FollowReport:
    done: list[str] = field(default_factory=list)          # cells whose every stage completed
    stopped: list[Step] = field(default_factory=list)      # cells stopped by a failed stage
    idle: list[str] = field(default_factory=list)          # selected cells never started
    polls: int = 0
    calls: list[int] = field(default_factory=list)         # API calls of each poll (its list pages and creates)


def _create(gw: Gateway, job: Rendered) -> tuple[EventKind, str]:
    try:
        gw.create(job.manifest)
        return "created", ""
    except AlreadyExists:
        return "exists", ""                 # listed too early, or another driver was faster: it is there
    except ClusterError as err:
        return "error", str(err) + ("" if err.status in FINAL_ERRORS else "; retried at the next poll")


def follow(gw: Gateway, project: Project, cells: Sequence[Run], jobs: Mapping[str, Rendered], poll: float,
           report: Callable[[Event], None] | None = None, first_sleep: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> FollowReport:
    """Until every cell has completed or stopped, every `poll` seconds (or at once when a poll took longer): one
    list of the user's Jobs, then the next stage of each cell whose stage completed created. Never replaces a Job;
    safe to stop and start again."""
    result = FollowReport()
    told: set[str] = set()
    refused: set[str] = set()                               # stages the API server refused for good
    due = time.monotonic() + (poll if first_sleep else 0)
    while True:
        if due > time.monotonic():
            sleep(due - time.monotonic())
        due = time.monotonic() + poll
        before = gw.calls
        listed = list_jobs(gw, project)
        steps = [step(cell, listed, follow=True) for cell in cells]
        todo = [s for s in steps if s.kind == "create" and s.unit.name not in refused]
        with ThreadPoolExecutor(max_workers=operations.WORKERS) as pool:
            outcomes = list(pool.map(lambda s: _create(gw, jobs[s.unit.name]), todo))
        for s, (kind, error) in zip(todo, outcomes):
            if kind == "error" and "retried" not in error:
                refused.add(s.unit.name)
            if report:
                report(Event(kind, s, error))
        result.polls += 1
        result.calls.append(gw.calls - before)
        for s in steps:
            if s.kind in ("done", "stopped") and s.cell.name not in told:
                told.add(s.cell.name)
                if report:
                    report(Event("done" if s.kind == "done" else "stopped", s))
        if all(s.kind in ("done", "stopped", "idle") or s.unit.name in refused for s in steps):
            result.done = [s.cell.name for s in steps if s.kind == "done"]
            result.stopped = [s for s in steps if s.kind == "stopped" or s.unit.name in refused]
            result.idle = [s.cell.name for s in steps if s.kind == "idle"]
            return result
