"""The records every part of a transfer shares: one file to move, a batch, the result, and progress events.

Both backends (backend_boto3, backend_s5cmd) have one signature, `run(bucket, batch, done, result)`: move every
transfer of the batch, call `done` for each one complete, record per-file failures in `result`, and raise an
S3Error when the endpoint itself fails (the operation stops starting new transfers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Union

WORKERS = 16
MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Transfer:
    """One file to move: its key, the local file to read (upload) or to replace (download), its size."""

    key: str
    path: Path
    size: int


@dataclass(frozen=True)
class Batch:
    transfers: tuple[Transfer, ...]
    upload: bool
    mode: int = 0o644        # of a new downloaded file


class Failure(NamedTuple):
    key: str
    reason: str


@dataclass
class Result:
    transferred: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)          # local entries left out, with the reason

    def fail(self, key: str, reason: str) -> None:
        self.failed.append(Failure(key, reason))


@dataclass(frozen=True)
class Started:
    """Transfers begin: how many files and bytes will move."""

    files: int
    bytes: int


@dataclass(frozen=True)
class Moved:
    """One file is complete on the other side."""

    transfer: Transfer
    upload: bool


@dataclass(frozen=True)
class Skipped:
    """A local entry left out (a link leaving the root, a FIFO...): the reason, starting with its key."""

    message: str


@dataclass(frozen=True)
class Removed:
    """A key was deleted from the bucket (checkpoint keep, mirrored local deletes)."""

    key: str


@dataclass(frozen=True)
class Finished:
    """No more transfers of this operation."""


Event = Union[Started, Moved, Skipped, Removed, Finished]
Progress = Callable[[Event], None]
Done = Callable[[Transfer], None]


def quiet(_event: Event) -> None:
    """The progress callback that shows nothing."""
