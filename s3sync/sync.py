"""Sync planning and running: what an upload or download moves, decided before any byte moves, then moved.

The library's entry points (`upload`, `download`, `listing`) return a Result and print nothing: progress goes to
the `progress` callback as events (transfer.py). The local root is where keys map to and whose `.env` is read.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from . import backend_boto3, backend_s5cmd
from .bucket import Bucket, ObjectInfo
from .errors import NothingMatched, S3ConfigError, S3Error, reason
from .etags import same_content
from .landing import check_request, local_target, new_file_mode
from .selection import Selection, local_files, select
from .settings import Settings
from .transfer import (MULTIPART_THRESHOLD, Batch, Finished, Moved, Progress, Result, Skipped, Started, Transfer,
                       quiet)

Root = str | os.PathLike[str] | None


def root_folder(local_path: Root, must_exist: bool = False) -> Path:
    """The local root, resolved: the working directory unless `local_path` names another folder."""
    root = Path(local_path or ".").resolve()
    if root.exists() and not root.is_dir() or must_exist and not root.exists():
        raise S3ConfigError(f"local path: expected a folder, got {str(local_path or '.')!r}")
    return root


def choose_backend(backend: str | None, env: Mapping[str, str]) -> str:
    """s5cmd needs /proc/<pid>/io (Linux) for its stall watchdog; without it, boto3 (which has real timeouts)."""
    watchable = backend_s5cmd.io_count(os.getpid()) >= 0
    found = backend_s5cmd.binary()
    choice = backend or env.get("S3UTILS_BACKEND") or ("s5cmd" if found and watchable else "boto3")
    if choice not in ("boto3", "s5cmd"):
        raise S3ConfigError(f"S3UTILS_BACKEND: expected boto3 or s5cmd, got {choice!r}")
    if choice == "s5cmd" and not found:
        raise S3ConfigError("S3UTILS_BACKEND=s5cmd but no s5cmd on PATH")
    if choice == "s5cmd" and not watchable:
        raise S3ConfigError("S3UTILS_BACKEND=s5cmd needs /proc/<pid>/io (Linux) to bound stalls: use boto3")
    return choice


@dataclass
class Plan:
    """One upload or download, decided before any byte moves: what to transfer, what is already identical."""

    upload: bool
    sel: Selection
    root: Path
    bucket: Bucket
    transfers: list[Transfer]
    result: Result
    remote: dict[str, ObjectInfo] | None = None    # the bucket under the selection (None: not listed)

    def replaced(self) -> list[str]:
        """The keys whose transfer replaces something: a local file (download), an object (upload)."""
        if not self.upload:
            return [t.key for t in self.transfers if os.path.lexists(t.path)]
        remote = self.bucket.listing(self.sel) if self.remote is None else self.remote
        return [t.key for t in self.transfers if t.key in remote]


def _skipper(result: Result, progress: Progress) -> Callable[[str], None]:
    def skip(message: str) -> None:
        result.skipped.append(message)
        progress(Skipped(message))
    return skip


def plan_upload(path: str, local_path: Root = None, overwrite: bool = False, progress: Progress = quiet,
                bucket: Bucket | None = None) -> Plan:
    """What `upload` would transfer; a selection matching no local file is bad input (S3ConfigError)."""
    sel = select(path)
    root = root_folder(local_path, must_exist=True)
    result = Result()
    files = local_files(root, sel, _skipper(result, progress))
    if not files:
        raise S3ConfigError(f"file: no local file matches {sel.text!r} under {root}: nothing uploaded")
    bucket = bucket or Bucket(Settings.load(root))
    remote = None if overwrite else bucket.listing(sel)
    transfers = []
    for found in files:
        try:
            size = found.path.stat().st_size
        except OSError as err:
            result.fail(found.key, reason(err))
            continue
        info = remote.get(found.key) if remote else None
        if info and same_content(found.path, info.size, info.etag):
            result.unchanged.append(found.key)
        else:
            transfers.append(Transfer(found.key, found.path, size))
    return Plan(True, sel, root, bucket, transfers, result, remote)


def plan_download(path: str, local_path: Root = None, overwrite: bool = False, bucket: Bucket | None = None,
                  remote: dict[str, ObjectInfo] | None = None) -> Plan:
    """What `download` would transfer; NothingMatched when the bucket has nothing the selection picks."""
    sel = select(path)
    root = root_folder(local_path)
    check_request(root, sel)
    bucket = bucket or Bucket(Settings.load(root))
    remote = bucket.listing(sel) if remote is None else remote
    if not remote:
        raise NothingMatched(f"nothing in s3://{bucket.name} matches {sel.text!r}: nothing downloaded")
    folders = {key[:i] for key in remote for i, c in enumerate(key) if c == "/"}
    result = Result()
    transfers = []
    for key, info in sorted(remote.items()):
        try:
            if key.endswith("/"):                       # a folder marker (S3 consoles make them): the folder
                local_target(root, key, folder=True)
                continue
            if key in folders:
                raise S3Error(f"the bucket also has keys under {key}/: a file and a folder cannot share the name")
            local = local_target(root, key)
        except (S3Error, OSError) as err:
            result.fail(key, str(err) if isinstance(err, S3Error) else reason(err))
            continue
        if not overwrite and same_content(local, info.size, info.etag):
            result.unchanged.append(key)
        else:
            transfers.append(Transfer(key, local, info.size))
    return Plan(False, sel, root, bucket, transfers, result, remote)


def execute(plan: Plan, backend: str | None = None, progress: Progress = quiet) -> Result:
    """Transfer the plan (see `move`)."""
    if plan.transfers:
        move(plan.bucket, plan.transfers, plan.upload, backend, progress, plan.result)
    return plan.result


def move(bucket: Bucket, transfers: list[Transfer], upload: bool, backend: str | None = None,
         progress: Progress = quiet, result: Result | None = None) -> Result:
    """Move `transfers`: s5cmd for the names it can take, boto3 for the rest; abort what a failed upload left."""
    result = Result() if result is None else result
    s5 = choose_backend(backend, bucket.settings.env) == "s5cmd"
    progress(Started(len(transfers), sum(t.size for t in transfers)))
    started, mode = time.time(), new_file_mode()

    def done(transfer: Transfer) -> None:
        result.transferred.append(transfer.key)
        progress(Moved(transfer, upload))
    fast = tuple(t for t in transfers if s5 and backend_s5cmd.can_take(t))
    rest = tuple(t for t in transfers if not (s5 and backend_s5cmd.can_take(t)))
    try:
        if fast:
            backend_s5cmd.run(bucket, Batch(fast, upload, mode), done, result)
        if rest:
            backend_boto3.run(bucket, Batch(rest, upload, mode), done, result)
    finally:
        progress(Finished())
        moved = set(result.transferred)
        if upload:
            bucket.abort_unfinished([t.key for t in transfers if t.size >= MULTIPART_THRESHOLD
                                     and t.key not in moved], started)
    return result


def upload(path: str, local_path: Root = None, overwrite: bool = False, backend: str | None = None,
           progress: Progress = quiet) -> Result:
    """Upload the files under `path` (relative to `local_path`, default the working directory)."""
    return execute(plan_upload(path, local_path, overwrite, progress), backend, progress)


def download(path: str, local_path: Root = None, overwrite: bool = False, backend: str | None = None,
             progress: Progress = quiet) -> Result:
    """Download the keys under `path` to the same relative paths under `local_path` (default: cwd).

    Raises NothingMatched (an S3Error) when the bucket holds nothing under `path`.
    """
    return execute(plan_download(path, local_path, overwrite), backend, progress)


def listing(path: str, local_path: Root = None) -> dict[str, ObjectInfo]:
    """key -> (size, ETag) of what the path selects (settings from the local root's `.env`)."""
    return Bucket(Settings.load(root_folder(local_path))).listing(select(path))
