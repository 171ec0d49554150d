"""Checkpoint sync: a folder's complete files uploaded as they appear, the newest N entries kept, and restored.

A file is complete when its name is not a temporary one (TEMPORARY) and it is not being written: either the engine
saw it with the same size, modification time and inode at its previous pass (unchanged for one interval), or it is
new since then (a name that appeared, or was replaced by a rename) and not modified for RENAME_LOOK seconds (a file
written then renamed into place appears at its final size, its modification time that of its last write). A file that
changed in place since the previous pass waits for the next one. Replacing an object goes through a temporary key
and a server-side copy, so a complete object is never replaced by a half-written file. docs/checkpoints.md.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import sync
from .bucket import Bucket, ObjectInfo
from .errors import NothingMatched, S3ConfigError
from .etags import same_content
from .selection import TEMP_SUFFIX, local_files, select
from .settings import Settings
from .transfer import Event, Moved, Progress, Removed, Result, Transfer, quiet

TEMPORARY = (".*", "*.tmp", "*.temp", "*.part", "*.partial", "*~")
RENAME_LOOK = 1.0                    # seconds between the two looks at a new name
STATE, LOCK = ".s3sync-state.json", ".s3sync.lock"


def temporary(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in TEMPORARY)


def natural(name: str) -> list[int | str]:
    """Sort key with numbers in number order: step_9 < step_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int
    inode: int

    @staticmethod
    def of(path: Path) -> "Stat | None":
        try:
            st = os.stat(path)
        except OSError:
            return None
        return Stat(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class Options:
    folder: str                  # project-relative, no trailing /
    keep: int | None = None      # newest entries kept in the bucket
    mirror_deletes: bool = False     # a key whose local file is gone is removed from the bucket
    backend: str | None = None


@dataclass
class Pass:
    """What one pass did."""

    result: Result = field(default_factory=Result)
    waiting: list[str] = field(default_factory=list)       # files not complete yet
    removed: list[str] = field(default_factory=list)


def checkpoint_folder(root: Path, folder: str) -> str:
    """The folder's project-relative path, checked like any selection (inside the root, no `..`)."""
    sel = select(folder.rstrip("/") + "/")
    real = os.path.realpath(root / sel.head)
    if not (Path(real) == root or Path(real).is_relative_to(root)):
        raise S3ConfigError(f"folder: {folder!r} leads outside the project root {root}")
    return sel.head


class Lock:
    """One engine per folder: a lock file holding the pid; a lock of a dead process is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder and _alive(holder):
                    raise S3ConfigError(f"{self.path.parent}: already synced by process {holder} "
                                        f"(lock file {self.path})") from None
                self.path.unlink(missing_ok=True)          # a stale lock: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            return
        raise S3ConfigError(f"{self.path}: cannot take the lock")

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Engine:
    """Uploads the complete files of one folder, pass after pass; remembers what it saw and what it uploaded."""

    def __init__(self, root: Path, options: Options, progress: Progress = quiet,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.root, self.options, self.progress, self.sleep = root, options, progress, sleep
        self.folder = root / options.folder
        self.prefix = options.folder + "/"
        self.bucket = Bucket(Settings.load(root))
        self.seen: dict[str, Stat] = {}
        self.state = self._load_state()

    # ------------------------------------------------------------ state: what was uploaded, as (size, mtime_ns)
    def _load_state(self) -> dict[str, list[int]]:
        try:
            data = json.loads((self.folder / STATE).read_text())
            return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 2}
        except (OSError, ValueError, AttributeError):
            return {}

    def _save_state(self) -> None:
        temp = self.folder / f".{STATE}.{os.getpid()}"
        temp.write_text(json.dumps(self.state, sort_keys=True))
        os.replace(temp, self.folder / STATE)

    # ------------------------------------------------------------ one pass
    def scan(self) -> dict[str, tuple[Path, Stat]]:
        """key -> (file, stat) of the folder's files with non-temporary names, by the link rules of uploads."""
        found = {}
        if not self.folder.is_dir():
            return {}
        for entry in local_files(self.root, select(self.prefix), lambda message: None):
            if any(temporary(part) for part in entry.key[len(self.prefix):].split("/")):
                continue
            st = Stat.of(entry.path)
            if st:
                found[entry.key] = (entry.path, st)
        return found

    def complete(self, files: dict[str, tuple[Path, Stat]], fresh: bool) -> tuple[list[str], list[str]]:
        """(complete, waiting) keys; `fresh` treats every file as new (a first or final pass)."""
        done, waiting, new = [], [], []
        for key, (_path, st) in files.items():
            before = None if fresh else self.seen.get(key)
            if before is None or before.inode != st.inode:
                new.append(key)
            elif before == st:
                done.append(key)
            else:
                waiting.append(key)
        youngest = max((files[key][1].mtime_ns for key in new), default=0) / 1e9
        if new and time.time() - youngest < RENAME_LOOK:          # a second look, a second after the last write
            self.sleep(min(RENAME_LOOK, youngest + RENAME_LOOK - time.time()))
        for key in new:
            again = Stat.of(files[key][0])
            (done if again == files[key][1] and time.time() - again.mtime_ns / 1e9 >= RENAME_LOOK * 0.99
             else waiting).append(key)
        self.seen = {key: st for key, (_path, st) in files.items()}
        return sorted(done), sorted(waiting)

    def uploaded(self, key: str, path: Path, st: Stat, remote: dict[str, ObjectInfo]) -> bool:
        """In the bucket already: as this engine uploaded it (its state), else the same size and ETag (read once)."""
        if key not in remote or remote[key].size != st.size:
            return False
        if self.state.get(key) == [st.size, st.mtime_ns]:
            return True
        if same_content(path, remote[key].size, remote[key].etag):
            self.state[key] = [st.size, st.mtime_ns]
            return True
        return False

    def run_pass(self, fresh: bool = False) -> Pass:
        """Upload what is complete and not in the bucket yet, then remove what keep (or mirror deletes) allow."""
        outcome = Pass()
        remote = self.bucket.objects(self.prefix)
        self._drop_temporary_keys(remote)
        files = self.scan()
        done, outcome.waiting = self.complete(files, fresh)
        kept = self._kept(files, remote)
        todo = [key for key in done if self._entry(key) in kept and not self.uploaded(key, *files[key], remote)]
        new = [Transfer(k, files[k][0], files[k][1].size) for k in todo if k not in remote]
        replacing = [k for k in todo if k in remote]
        temps = {k: f"{k.rsplit('/', 1)[0]}/.{k.rsplit('/', 1)[1][:60]}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
                 for k in replacing}
        moves = new + [Transfer(temps[k], files[k][0], files[k][1].size) for k in replacing]
        result = outcome.result
        try:
            if moves:
                sync.move(self.bucket, moves, True, self.options.backend, self._progress(temps), result)
        finally:
            if moves and len(result.transferred) < len(moves):     # stopped or failed: no parts left behind
                self.bucket.abort_all(self.prefix)
        moved = set(result.transferred)
        for key in replacing:
            if temps[key] in moved:
                if Stat.of(files[key][0]) == files[key][1]:
                    self.bucket.copy(temps[key], key)
                    self.progress(Moved(Transfer(key, files[key][0], files[key][1].size), True))
                self.bucket.delete([temps[key]])
        for key in todo:
            target = temps.get(key, key)
            if target not in moved:
                continue
            if Stat.of(files[key][0]) != files[key][1]:        # written again meanwhile: not complete after all
                if key not in remote:
                    self.bucket.delete([key])
                outcome.waiting.append(key)
                result.transferred.remove(target)
                continue
            self.state[key] = [files[key][1].size, files[key][1].mtime_ns]
            if target != key:
                result.transferred[result.transferred.index(target)] = key
        self.state = {k: v for k, v in self.state.items() if k in files}
        self._save_state()
        outcome.removed = self._remove_old(files, remote, outcome, kept)
        return outcome

    def _progress(self, temps: dict[str, str]) -> Progress:
        """The caller's callback, without the temporary keys (their files are reported once copied into place)."""
        hidden = set(temps.values())

        def forward(event: Event) -> None:
            if not (isinstance(event, Moved) and event.transfer.key in hidden):
                self.progress(event)
        return forward

    def _drop_temporary_keys(self, remote: dict[str, ObjectInfo]) -> None:
        """Temporary keys of an engine stopped between upload and copy, and its multipart uploads (one engine per
        folder: they are all ours)."""
        self.bucket.abort_all(self.prefix)
        stale = [k for k in remote if k.rsplit("/", 1)[-1].startswith(".") and k.endswith(TEMP_SUFFIX)]
        if stale:
            self.bucket.delete(stale)
            for key in stale:
                del remote[key]

    def _entry(self, key: str) -> str:
        """The checkpoint entry of a key: the top-level file or folder of the synced folder it belongs to."""
        return key[len(self.prefix):].split("/", 1)[0]

    def _kept(self, files: dict[str, tuple[Path, Stat]], remote: dict[str, ObjectInfo]) -> set[str]:
        """The entries to have in the bucket: all, or the newest `keep` by name in number order, ties by mtime."""
        names = {self._entry(k) for k in files} | {self._entry(k) for k in remote}
        if not self.options.keep:
            return names
        mtimes = {name: _mtime(self.folder / name) for name in names}
        return set(sorted(names, key=lambda name: (natural(name), mtimes[name]))[-self.options.keep:])

    def _remove_old(self, files: dict[str, tuple[Path, Stat]], remote: dict[str, ObjectInfo], outcome: Pass,
                    kept: set[str]) -> list[str]:
        gone: list[str] = []
        if self.options.mirror_deletes and files:      # an empty or missing folder (unmounted?) deletes nothing
            gone += [k for k in remote if k not in files and not temporary(k.rsplit("/", 1)[-1])]
        if self.options.keep:
            gone += self._beyond_keep(files, remote, outcome, kept)
        gone = sorted(set(gone))
        if gone:
            refused = {f.key for f in self.bucket.delete(gone)}
            gone = [k for k in gone if k not in refused]
            for key in gone:
                self.progress(Removed(key))
        return gone

    def _beyond_keep(self, files: dict[str, tuple[Path, Stat]], remote: dict[str, ObjectInfo], outcome: Pass,
                     kept: set[str]) -> list[str]:
        """Keys of the entries older than the kept ones, once every kept entry is complete in the bucket (so the
        only complete checkpoint is never deleted)."""
        in_bucket = set(remote) | set(outcome.result.transferred)
        unfinished = {self._entry(k) for k in outcome.waiting} | {self._entry(k) for k, _ in outcome.result.failed}
        unfinished |= {self._entry(k) for k in files if k not in in_bucket}
        if kept & unfinished or not kept & {self._entry(k) for k in in_bucket}:
            return []                   # a kept entry is not complete in the bucket yet: the older ones stay
        return sorted(k for k in remote if self._entry(k) not in kept)


def _mtime(path: Path) -> int:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return 0


def restore(root: Path, folder: str, backend: str | None = None, progress: Progress = quiet) -> Result:
    """Download the folder's checkpoint files that are missing or different here; nothing in the bucket is fine."""
    folder = checkpoint_folder(root, folder)
    try:
        plan = sync.plan_download(folder + "/", root)
    except NothingMatched:
        return Result()
    result = sync.execute(plan, backend, progress)
    engine_state = root / folder / STATE            # what is now here as in the bucket needs no upload later
    try:
        state = json.loads(engine_state.read_text()) if engine_state.exists() else {}
        for key in [*result.transferred, *result.unchanged]:
            st = Stat.of(root / key)
            if st:
                state[key] = [st.size, st.mtime_ns]
        temp = engine_state.with_name(f".{STATE}.{os.getpid()}")
        temp.write_text(json.dumps(state, sort_keys=True))
        os.replace(temp, engine_state)
    except (OSError, ValueError):
        pass
    return result


