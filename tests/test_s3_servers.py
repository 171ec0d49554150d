"""The S3 test servers themselves: SeaweedFS holds a fixed budget of volumes whatever the free disk, takes every
port it opens from the free-port picker, two run side by side, and a failed start is retried on new ports."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.s3_fixtures import ACCESS_KEY, SECRET_KEY, SEAWEED_VOLUMES, Server, start_seaweedfs

FILESYSTEM_MB, FILLER_MB = 96, 84          # what is left (12 MB) holds no 128 MB volume of weed's own choosing


def client(url: str):
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1")


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on, read from /proc (its socket inodes, matched in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in list(fh)[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:          # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def small_filesystem(data: Path):
    """Run the server in a mount namespace of its own where its data folder is a small tmpfs, nearly full."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to give the server a small filesystem of its own"
    script = (f'mount -t tmpfs -o size={FILESYSTEM_MB}m tmpfs "$0" && head -c {FILLER_MB}M /dev/zero > "$0/filler" '
              '&& exec "$@"')
    as_root = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    return lambda command: [unshare, *as_root, "sh", "-c", script, str(data), *command]


def test_seaweedfs_holds_many_buckets_on_a_nearly_full_small_filesystem(tmp_path):
    work = tmp_path / "weed"
    server = start_seaweedfs(work, wrap=small_filesystem(work / "data"))
    try:
        s3 = client(server.url)
        names = [f"bucket-{i:03d}" for i in range(40)]
        for name in names:
            s3.create_bucket(Bucket=name)
            s3.put_object(Bucket=name, Key="data/x.txt", Body=name.encode())
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= set(names)
        assert all(s3.get_object(Bucket=n, Key="data/x.txt")["Body"].read() == n.encode() for n in names)
        assert not (work / "data" / "filler").exists()          # the small filesystem was the server's alone
        log = (work / "seaweedfs-1.log").read_text(errors="replace")
        assert f"Volume Count:     {SEAWEED_VOLUMES}" in log, log[-2000:]
    finally:
        server.stop()


def test_two_seaweedfs_servers_at_once_each_on_its_own_ports(tmp_path):
    first = start_seaweedfs(tmp_path / "one")
    second = start_seaweedfs(tmp_path / "two")
    try:
        for server, bucket in ((first, "only-in-one"), (second, "only-in-two")):
            client(server.url).create_bucket(Bucket=bucket)
            client(server.url).put_object(Bucket=bucket, Key="k", Body=bucket.encode())
        assert [b["Name"] for b in client(first.url).list_buckets()["Buckets"]] == ["only-in-one"]
        assert [b["Name"] for b in client(second.url).list_buckets()["Buckets"]] == ["only-in-two"]
        assert client(second.url).get_object(Bucket="only-in-two", Key="k")["Body"].read() == b"only-in-two"
        for server in (first, second):
            listening = listening_ports(server.proc.pid)
            assert listening <= set(server.ports.values()), listening - set(server.ports.values())
            assert {server.ports[p] for p in ("s3.port", "master.port", "filer.port", "volume.port")} <= listening
            command = open(f"/proc/{server.proc.pid}/cmdline").read().split("\0")
            assert "-master.telemetry=false" in command and f"-volume.max={SEAWEED_VOLUMES}" in command
        assert not set(first.ports.values()) & set(second.ports.values())
    finally:
        first.stop()
        second.stop()


def test_a_failed_start_is_retried_on_new_ports(tmp_path):
    tries: list[list[str]] = []

    def fail_first(command: list[str]) -> list[str]:
        tries.append(command)
        return ["sh", "-c", "exit 3"] if len(tries) == 1 else command
    server: Server = start_seaweedfs(tmp_path / "weed", wrap=fail_first)
    try:
        assert len(tries) == 2 and tries[0] != tries[1]              # the second start had new ports
        assert client(server.url).list_buckets()["Buckets"] == []
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="seaweedfs did not start in 3 attempts: exited with 3"):
        start_seaweedfs(tmp_path / "never", wrap=lambda command: ["sh", "-c", "exit 3"])
