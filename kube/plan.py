"""What `make job` will do, pure: compare rendered Jobs with the ones already on the cluster."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .render import ANNOTATION_SPEC
from .status import _job_state


@dataclass(frozen=True)
class Action:
    kind: str                  # create | replace | unchanged | changed
    name: str
    manifest: Mapping[str, Any]
    message: str

    @property
    def submits(self) -> bool:
        return self.kind in ("create", "replace")


def plan(manifests: Sequence[Mapping[str, Any]], existing: Mapping[str, Mapping[str, Any]],
         overwrite: bool = False) -> list[Action]:
    """Missing -> create; failed -> replace; running/succeeded -> left alone (replace with overwrite);
    a different spec hash under the same name is reported, never silently skipped."""
    actions = []
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        job = existing.get(name)
        if job is None:
            actions.append(Action("create", name, manifest, f"Job '{name}' not found. Creating the job."))
            continue
        state, _ = _job_state(job)
        old_hash = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SPEC)
        changed = old_hash != manifest["metadata"]["annotations"][ANNOTATION_SPEC]
        if state == "failed":
            actions.append(Action("replace", name, manifest, f"Job '{name}' failed. Replacing the job."))
        elif overwrite:
            actions.append(Action("replace", name, manifest, f"Job '{name}' is {state}. Replacing it (overwrite)."))
        elif changed:
            actions.append(Action("changed", name, manifest,
                                  f"Job '{name}' is {state} with a different spec. Left alone; "
                                  f"use overwrite=true to replace it."))
        else:
            actions.append(Action("unchanged", name, manifest, f"Job '{name}' is {state}. Left alone."))
    return actions
