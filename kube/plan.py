"""What `make job` will do, pure: compare rendered Jobs with the ones already on the cluster."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from .render import ANNOTATION_SPEC, Rendered
from .status import job_state

ActionKind = Literal["create", "replace", "unchanged", "changed"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    job: Rendered
    message: str

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def submits(self) -> bool:
        return self.kind in ("create", "replace")


def plan(jobs: Sequence[Rendered], existing: Mapping[str, Mapping[str, Any]], overwrite: bool = False) -> list[Action]:
    """Missing -> create; failed -> replace; running/succeeded -> left alone (replace with overwrite);
    a different spec hash under the same name is reported, never silently skipped."""
    actions = []
    for job in jobs:
        name = job.name
        current = existing.get(name)
        if current is None:
            actions.append(Action("create", job, f"Job '{name}' not found. Creating the job."))
            continue
        state, _ = job_state(current)
        old_hash = ((current.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SPEC)
        if state == "failed" and job.workload != "cell" and not overwrite:
            actions.append(Action("unchanged", job, f"Job '{name}' has failed cells. Left alone; resubmit just "
                                                    f"them with only=failed."))
        elif state == "failed":
            actions.append(Action("replace", job, f"Job '{name}' failed. Replacing the job."))
        elif overwrite:
            actions.append(Action("replace", job, f"Job '{name}' is {state}. Replacing it (overwrite)."))
        elif old_hash != job.spec_hash:
            actions.append(Action("changed", job, f"Job '{name}' is {state} with a different spec. Left alone; "
                                                  f"use overwrite=true to replace it."))
        else:
            actions.append(Action("unchanged", job, f"Job '{name}' is {state}. Left alone."))
    return actions
