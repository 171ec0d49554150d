"""S3 test servers on 127.0.0.1, started once per session: SeaweedFS (`weed mini`) and moto's server mode."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ACCESS_KEY, SECRET_KEY = "toolboxtest", "toolboxtestsecret"


def _free_ports(count: int, limit: int = 50000) -> list[int]:
    """`count` distinct free ports below `limit` (a gRPC port may default to port + 10000, kept below 65536)."""
    ports: list[int] = []
    for _ in range(200 * count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < limit and port not in ports:
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no %d free ports below %d" % (count, limit))


@dataclass
class Server:
    """A test server process, the ports it was given (name -> port) and the URL it answers on."""

    url: str
    proc: subprocess.Popen
    ports: dict[str, int]

    def stop(self, hard: bool = False) -> None:
        """Terminate (or, with hard=True, kill at once, as a crash or a network cut would)."""
        if hard:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return                          # it answers (403 without credentials is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"did not answer at {url} in {timeout} s")


def start_server(name: str, command: Callable[[dict[str, int]], list[str]], port_names: tuple[str, ...],
                 log_dir: Path, attempts: int = 3) -> Server:
    """The one way tests start a server: free ports for `port_names` (the first is the HTTP one it answers on),
    `command(ports)` run with its output in `log_dir`, then wait for an answer; a failed start is retried with new
    ports (another process may have taken one meanwhile), `attempts` times in all."""
    log_dir.mkdir(parents=True, exist_ok=True)
    why = ""
    for attempt in range(1, attempts + 1):
        ports = dict(zip(port_names, _free_ports(len(port_names))))
        log = log_dir / f"{name}-{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command(ports), stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{ports[port_names[0]]}"
        try:
            _wait_http(url, proc)
            return Server(url, proc, ports)
        except RuntimeError as err:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            why = f"{err}; its log ends: {log.read_text(errors='replace')[-1500:]}"
    raise RuntimeError(f"{name} did not start in {attempts} attempts: {why}")


# Every listener `weed mini` opens, each given a free port (none left to its fixed defaults, which two servers or
# another program would share); the Iceberg and Lance catalogs are turned off.
SEAWEED_PORTS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc",
                 "volume.port", "volume.port.grpc", "admin.port", "admin.port.grpc")
SEAWEED_VOLUMES = 400           # -volume.max: fixed, so the buckets it holds never depend on the free disk
SEAWEED_VOLUME_MB = 8           # -master.volumeSizeLimitMB: small volumes, so the budget is small too


def seaweedfs_command(workdir: Path, ports: dict[str, int], volume_mb: int = SEAWEED_VOLUME_MB) -> list[str]:
    """The `weed mini` command line: one identity, telemetry always off, a fixed volume budget, all ports given."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return [weed, "mini", "-dir", str(workdir / "data"), "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.config", str(workdir / "s3.json"),
            f"-volume.max={SEAWEED_VOLUMES}", f"-master.volumeSizeLimitMB={volume_mb}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", *(f"-{flag}={port}" for flag, port in ports.items())]


def start_seaweedfs(workdir: Path, wrap: Callable[[list[str]], list[str]] = lambda cmd: cmd,
                    volume_mb: int = SEAWEED_VOLUME_MB) -> Server:
    """SeaweedFS (`weed mini`, see seaweedfs_command) with its data in `workdir`; `wrap` turns the command into the
    one to run (e.g. inside a mount namespace with a small filesystem); benchmarks moving gigabytes take larger
    volumes (`volume_mb`: 400 of them hold 400 x volume_mb)."""
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    (workdir / "s3.json").write_text(json.dumps({"identities": [{"name": "test", "credentials": [
        {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List",
                                                                          "Tagging"]}]}))
    return start_server("seaweedfs", lambda ports: wrap(seaweedfs_command(workdir, ports, volume_mb)), SEAWEED_PORTS,
                        workdir)


def start_moto(workdir: Path) -> Server:
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    return start_server("moto", lambda ports: [server, "-H", "127.0.0.1", "-p", str(ports["http"])], ("http",),
                        workdir)


def _server_url(variable: str, start: Callable[[], Server]):
    """The URL of a running server named by `variable`, else of one started for the session (and stopped)."""
    if os.environ.get(variable):
        yield os.environ[variable]
        return
    server = start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_url(tmp_path_factory):
    yield from _server_url("TOOLBOX_TEST_SEAWEEDFS_URL", lambda: start_seaweedfs(tmp_path_factory.mktemp("seaweedfs")))


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory):
    yield from _server_url("TOOLBOX_TEST_MOTO_URL", lambda: start_moto(tmp_path_factory.mktemp("moto")))


@dataclass
class S3:
    """A fresh bucket on one server, with the environment set for s3utils, and a client to check results."""

    url: str
    bucket: str
    client: object

    def keys(self) -> dict[str, bytes]:
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        return out

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)


def make_s3(url: str, monkeypatch) -> S3:
    import boto3
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    for var, value in (("S3_BUCKET_NAME", bucket), ("S3_ENDPOINT_URL", url), ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                       ("AWS_SECRET_ACCESS_KEY", SECRET_KEY), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    return S3(url, bucket, client)


@pytest.fixture(params=["seaweedfs", "moto"])
def s3(request, monkeypatch) -> S3:
    url = request.getfixturevalue(f"{request.param}_url")
    return make_s3(url, monkeypatch)


@pytest.fixture
def seaweed(seaweedfs_url, monkeypatch) -> S3:
    return make_s3(seaweedfs_url, monkeypatch)


@pytest.fixture(params=["boto3", "s5cmd"])
def backend(request, monkeypatch) -> str:
    """Each s3utils backend in turn (S3UTILS_BACKEND)."""
    monkeypatch.setenv("S3UTILS_BACKEND", request.param)
    return request.param


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """An empty working directory: no `.env` of the checkout is read (s3utils reads the working directory's)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def tree(root: Path, files: dict[str, bytes]) -> Path:
    """Files under `root` (parents made), from relative path -> bytes."""
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


def dead_url() -> str:
    """An http URL on 127.0.0.1 where nobody listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------- sick servers (real sockets on 127.0.0.1)

def serve(sock: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Accept connections on a listening `sock` until it is closed, each handled by `handle(conn)` in its own thread."""
    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()


def pipe(src: socket.socket, dst: socket.socket, allow: Callable[[int], int] | None = None) -> None:
    """One direction of a TCP proxy: copy what `src` sends to `dst` until `src` ends or fails, then shut both down.

    `allow(n)`, when given, says how many of the next `n` bytes may pass; once it has held bytes back, both sockets
    are left open: the peer sees a connection gone silent, not one closed.
    """
    held = False
    try:
        while data := src.recv(65536):
            if allow is not None:
                passed = allow(len(data))
                data, held = data[:passed], held or passed < len(data)
            if data:
                dst.sendall(data)
    except OSError:
        pass
    if not held:
        for s in (src, dst):
            _shutdown(s)


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(s: socket.socket) -> None:
    _shutdown(s)
    s.close()


def _drain(conn: socket.socket) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


class Blackhole:
    """A TCP server that accepts every connection, reads what is sent and never answers (a hung endpoint)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        serve(self.sock, self._hold)

    def _hold(self, conn: socket.socket) -> None:
        self.held.append(conn)
        _drain(conn)

    def close(self) -> None:
        for s in [self.sock, *self.held]:
            _close(s)


_SICK_BODY = b"<Error><Code>InternalError</Code><Message>sick proxy</Message></Error>\n"
SICK_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(_SICK_BODY), _SICK_BODY))


class SickProxy:
    """An HTTP proxy in front of a real S3 server that misbehaves on the requests `rule(method, target)` picks.

    Actions: "pass"; "hang" (never answer); "stall" (answer, then go silent after `stall_bytes` of the response);
    "500" (an InternalError reply). Requests are parsed (head + Content-Length body); responses relayed as bytes.
    """

    def __init__(self, upstream: str, rule: Callable[[str, str], str], stall_bytes: int = 65536) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.rule, self.stall_bytes = rule, stall_bytes
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.log: list[tuple[str, str, str]] = []
        self.open: list[socket.socket] = []
        serve(self.sock, self._serve)

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection((self.upstream.hostname, self.upstream.port))
        self.open += [client, up]
        budget: list[int | None] = [None]           # bytes of the response still let through ("stall")

        def allow(n: int) -> int:
            if budget[0] is None:
                return n
            passed = min(n, budget[0])
            budget[0] -= passed
            return passed
        threading.Thread(target=pipe, args=(up, client, allow), daemon=True).start()
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
                action = self.rule(method, target)
                self.log.append((method, target, action))
                if action == "hang":
                    return _drain(client)
                if action == "500":
                    client.sendall(SICK_500)
                    return
                if action == "stall":
                    budget[0] = self.stall_bytes
                up.sendall(head + b"\r\n\r\n")
                if headers.get("transfer-encoding", "").lower() == "chunked":      # not parsed: relay the rest
                    up.sendall(buf)
                    while chunk := client.recv(65536):
                        up.sendall(chunk)
                    return
                remaining = int(headers.get("content-length", "0"))
                up.sendall(buf[:remaining])
                remaining, buf = remaining - len(buf[:remaining]), buf[remaining:]
                while remaining > 0:
                    chunk = client.recv(min(65536, remaining))
                    if not chunk:
                        return
                    up.sendall(chunk)
                    remaining -= len(chunk)
        except OSError:
            pass
        finally:
            _close(client)
            _close(up)

    def close(self) -> None:
        for s in [self.sock, *self.open]:
            _close(s)


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


def run_s3utils(capsys, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """s3utils.main in this process (it must return, never raise): exit status, stdout, stderr."""
    import io

    import s3utils
    capsys.readouterr()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        status = s3utils.main([str(a) for a in argv])
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return status, out, err
