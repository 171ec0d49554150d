#!/usr/bin/env python3
"""Benchmark s3utils against a local SeaweedFS (started here; moto serves too few requests/s to compare).

Upload then download of 1,000 small files and of one 200 MB file, for the boto3 backend, the s5cmd backend and a
naive one-file-at-a-time boto3 loop (the baseline, measured in the same run), then a no-change re-sync of 10,000
files. Prints medians and ratios. `--hung SECONDS` instead times how long each backend takes to give up on an
endpoint that accepts connections and never answers (S3_READ_TIMEOUT=SECONDS, other settings from the environment).
Usage: python bench/bench_s3.py [--small 1000] [--big-mb 200] [--resync 10000] [--repeat 3] | --hung 60
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import s3utils  # noqa: E402
from tests.s3_fixtures import ACCESS_KEY, SECRET_KEY, Blackhole, start_seaweedfs  # noqa: E402


def naive(client, bucket: str, root: Path, prefix: str, upload: bool) -> None:
    """One file at a time, as a hand-written loop does."""
    if upload:
        for path in sorted((root / prefix).rglob("*")):
            if path.is_file():
                client.upload_file(str(path), bucket, path.relative_to(root).as_posix())
        return
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            dest = root / obj["Key"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(dest))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hung(read_timeout: str) -> None:
    """Seconds until the command line gives up on a hung endpoint, and the one line it prints."""
    hole = Blackhole()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        (Path(tmp) / "data" / "a.txt").write_text("a")
        env = {**os.environ, "S3_BUCKET_NAME": "bench", "S3_ENDPOINT_URL": hole.url, "AWS_ACCESS_KEY_ID": "k",
               "AWS_SECRET_ACCESS_KEY": "s", "S3_READ_TIMEOUT": read_timeout}
        for backend, args in (("boto3", ["download", "data/"]), ("s5cmd", ["upload", "data/", "--overwrite"])):
            start = time.perf_counter()
            run = subprocess.run([sys.executable, str(ROOT / "s3utils.py"), *args], cwd=tmp, capture_output=True,
                                 text=True, env={**env, "S3UTILS_BACKEND": backend})
            print(f"  {backend:5s} {' '.join(args):24s}: exit {run.returncode} after "
                  f"{time.perf_counter() - start:6.1f} s: {run.stderr.strip()}")
    hole.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--resync", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hung", metavar="SECONDS", help="only time the failure on a hung endpoint")
    args = parser.parse_args()
    if args.hung:
        return hung(args.hung)
    import boto3
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = start_seaweedfs(tmp / "weed", volume_mb=64)
        url = server.url
        try:
            client = boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY,
                                  aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
            os.environ.update({"S3_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                               "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"})
            src = tmp / "src"
            for i in range(args.small):
                path = src / "small" / f"d{i % 10}" / f"f{i}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(2048))
            (src / "big").mkdir()
            with open(src / "big" / "model.bin", "wb") as fh:
                for _ in range(args.big_mb):
                    fh.write(os.urandom(1 << 20))
            results: dict[tuple[str, str, str], list[float]] = {}
            for rep in range(args.repeat):
                for way in ("naive", "boto3", "s5cmd"):
                    bucket = f"bench-{way}-{rep}"
                    client.create_bucket(Bucket=bucket)
                    os.environ["S3_BUCKET_NAME"] = bucket
                    for prefix in ("small/", "big/"):
                        dst = tmp / f"dst-{way}-{rep}"
                        if way == "naive":
                            up = timed(lambda: naive(client, bucket, src, prefix, True))
                            down = timed(lambda: naive(client, bucket, dst, prefix, False))
                        else:
                            up = timed(lambda: s3utils.upload_s3_path(prefix, src, backend=way, out=io.StringIO()))
                            down = timed(lambda: s3utils.download_s3_path(prefix, dst, backend=way,
                                                                           out=io.StringIO()))
                        results.setdefault((way, prefix, "upload"), []).append(up)
                        results.setdefault((way, prefix, "download"), []).append(down)
                        shutil.rmtree(dst, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in results.items()}
            print(f"SeaweedFS on 127.0.0.1, medians of {args.repeat}")
            for prefix, label in (("small/", f"{args.small} x 2 KiB files"), ("big/", f"one {args.big_mb} MB file")):
                for op in ("upload", "download"):
                    n, b, s = (med[(w, prefix, op)] for w in ("naive", "boto3", "s5cmd"))
                    print(f"  {label:22s} {op:8s}: naive {n:6.2f} s | boto3 {b:6.2f} s ({n / b:4.1f}x naive, "
                          f"{b / s:4.2f}x s5cmd time) | s5cmd {s:6.2f} s ({n / s:4.1f}x naive)")
            # No-change re-sync: everything already identical on both sides.
            many = tmp / "many"
            for i in range(args.resync):
                path = many / "resync" / f"d{i % 100}" / f"f{i}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"%d" % i)
            os.environ["S3_BUCKET_NAME"] = "bench-resync"
            client.create_bucket(Bucket="bench-resync")
            s3utils.upload_s3_path("resync/", many, backend="s5cmd", out=io.StringIO())
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = s3utils.upload_s3_path("resync/", many, out=io.StringIO())
                times.append(time.perf_counter() - start)
                assert not result.transferred and len(result.unchanged) == args.resync
            print(f"  no-change re-sync of {args.resync} files: median {statistics.median(times):.2f} s "
                  f"(target < 3 s)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
