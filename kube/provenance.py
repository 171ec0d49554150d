"""Which code a job runs: the project's git commit, whether the tree is dirty, and a hash of the diff."""
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ANNOTATION_COMMIT = "kube-toolbox/git-commit"
ANNOTATION_DIRTY = "kube-toolbox/git-dirty"
ANNOTATION_DIFF = "kube-toolbox/git-diff-hash"
ANNOTATION_OVERRIDES = "kube-toolbox/overrides"     # the `set=` text a job was submitted with (kube/overrides.py)


@dataclass(frozen=True)
class Provenance:
    commit: str | None          # None outside a git repository
    dirty: bool = False
    diff_hash: str | None = None
    pushed: bool = True         # HEAD is on some remote-tracking branch (a job's `git pull` can reach it)
    overrides: str | None = None    # read back from a job: the `set=` overrides it was submitted with

    def annotations(self) -> dict[str, str]:
        if self.commit is None:
            return {}
        out = {ANNOTATION_COMMIT: self.commit, ANNOTATION_DIRTY: "true" if self.dirty else "false"}
        if self.diff_hash:
            out[ANNOTATION_DIFF] = self.diff_hash
        return out


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=False)


def read(root: Path) -> Provenance:
    """Tracked changes (staged or not, submodules included) make the tree dirty; untracked files do not."""
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if head.returncode != 0:
        return Provenance(None)
    commit = head.stdout.decode().strip()
    remote = _git(root, "branch", "-r", "--contains", commit)
    pushed = remote.returncode == 0 and bool(remote.stdout.strip())
    diff = _git(root, "diff", "HEAD", "--submodule=diff", "--no-color", "--no-ext-diff")
    if diff.returncode != 0 or not diff.stdout:
        return Provenance(commit, pushed=pushed)
    return Provenance(commit, True, hashlib.sha256(diff.stdout).hexdigest()[:12], pushed)


def from_annotations(annotations: Mapping[str, str] | None) -> Provenance:
    annotations = annotations or {}
    return Provenance(annotations.get(ANNOTATION_COMMIT), annotations.get(ANNOTATION_DIRTY) == "true",
                      annotations.get(ANNOTATION_DIFF), overrides=annotations.get(ANNOTATION_OVERRIDES))
