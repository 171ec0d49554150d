"""Fixtures for the test Kubernetes API server: started once per session, reset per test, a real kubeconfig, and
kubectl as a second, independent client."""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency_ms: float = 0.0, max_page: int | None = None,
                 gc_delay: float = 0.0) -> tuple[str, Callable[[], None]]:
    """Start tests/kube_api in its own process; returns (url, stop)."""
    port = free_port()
    extra = (["--max-page", str(max_page)] if max_page else []) + (["--gc-delay", str(gc_delay)] if gc_delay else [])
    proc = subprocess.Popen([sys.executable, "-m", "tests.kube_api", "--port", str(port),
                             "--latency-ms", str(latency_ms), *extra], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/version", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"test API server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return url, stop


class Control:
    """What a test may do to the server besides the official client's calls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, action: str, data: dict | None = None) -> Any:
        req = urllib.request.Request(f"{self.url}/_test/{action}", data=json.dumps(data or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def reset(self) -> None:
        self._post("reset")

    def seed(self, obj: dict) -> None:
        self._post("seed", obj)

    def seed_many(self, objects: list[dict]) -> None:
        """Store many objects in one request (benchmarks seed tens of thousands)."""
        for i in range(0, len(objects), 100):               # the server takes bodies up to 1 MiB
            self._post("seed-many", {"items": objects[i:i + 100]})

    def fail(self, method: str, path: str, status: int, times: int = 1, body: dict | None = None,
             headers: dict | None = None) -> None:
        self._post("fault", {"method": method, "path": path, "status": status, "times": times, "body": body,
                             "headers": headers})

    def requests(self) -> list[dict]:
        return self._post("requests")

    def clear_requests(self) -> None:
        self._post("clear-requests")

    def set_log(self, namespace: str, pod: str, text: str) -> None:
        self._post("log", {"namespace": namespace, "pod": pod, "text": text})

    def objects(self, plural: str, namespace: str | None = "lab") -> list[dict]:
        return self._post("objects", {"plural": plural, "namespace": namespace})

    def pod_file(self, pod: str, path: str) -> str | None:
        """A file that an exec'd `tar x` wrote in the pod (None when absent)."""
        return self._post("pod-file", {"pod": pod, "path": path})["text"]

    def controller(self, on: bool) -> None:
        """Each Job created through the API gets a Pending pod owned by it, as the Job controller would do."""
        self._post("controller", {"on": on})

    def paging(self, max_page: int | None) -> None:
        """Lists that carry a limit answer at most `max_page` items per page (None: the client's limit)."""
        self._post("paging", {"max_page": max_page})

    def gc_delay(self, seconds: float) -> None:
        """The garbage collector handles an owner's dependents after this delay (0: before the response)."""
        self._post("gc", {"delay": seconds})

    def aggregated_discovery(self, on: bool) -> None:
        self._post("discovery", {"aggregated": on})

    def crd(self, plural: str, on: bool = True) -> None:
        """Install (or remove) a custom resource the server knows, e.g. `pytorchjobs` (kubeflow.org/v1): it enters
        discovery and its API answers; without it, both 404 as on a cluster without the CRD."""
        self._post("crd", {"plural": plural, "on": on})

    def server_version(self, minor: int) -> None:
        """The Kubernetes version `GET /version` reports: 1.<minor> (1.34 by default)."""
        self._post("version", {"minor": minor})

    def expire_lists(self) -> None:
        """Forget the list snapshots: continue tokens given so far get 410 Expired."""
        self._post("expire-lists")


def write_kubeconfig(path: Path, url: str, namespace: str = "lab") -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": url}}],
        "users": [{"name": "alice", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "alice", "namespace": namespace}}],
    }))
    return path


@functools.lru_cache(maxsize=None)
def kubectl_path() -> str | None:
    return shutil.which("kubectl")


@functools.lru_cache(maxsize=None)
def kubectl_version() -> tuple[int, int]:
    out = subprocess.run([kubectl_path(), "version", "--client", "-o", "json"], capture_output=True, text=True,
                         timeout=60).stdout
    info = json.loads(out)["clientVersion"]
    return int(info["major"]), int(re.sub(r"\D.*", "", info["minor"]))


class Kubectl:
    """The real kubectl, pointed at a kubeconfig, with its own discovery cache (ports are reused)."""

    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.kubeconfig, self.cache = kubeconfig, cache

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.cache)}
        result = subprocess.run([kubectl_path(), "--cache-dir", str(self.cache / "kube-cache"), *args],
                                capture_output=True, text=True, input=input, env=env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def __call__(self, *args: str, input: str | None = None) -> str:
        """stdout of a command that must succeed."""
        return self.run(*args, input=input).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """kubectl against the test API server: the independent client is part of the suite, not optional."""
    if kubectl_path() is None:
        pytest.fail("kubectl is not installed: run the suite with `bash tests/run.sh`, which installs Debian's "
                    "kubernetes-client package")
    (tmp_path / "kubectl-home").mkdir()
    return Kubectl(kubeconfig, tmp_path / "kubectl-home")


@pytest.fixture(scope="session")
def kube_api():
    if os.environ.get("TOOLBOX_TEST_K8S_URL"):
        yield os.environ["TOOLBOX_TEST_K8S_URL"]
        return
    url, stop = start_server()
    yield url
    stop()


@pytest.fixture
def kube(kube_api) -> Control:
    control = Control(kube_api)
    control.reset()
    return control


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch, kube) -> Path:
    path = write_kubeconfig(tmp_path / "kubeconfig", kube.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def project(tmp_path, kubeconfig):
    """The quickstart example as a project of user my-user in namespace lab of the test API server."""
    root = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    (root / ".env").write_text("S3_BUCKET_NAME=example\nAWS_SECRET_ACCESS_KEY=hush\n")
    (root / "config" / "kube.yaml").write_text(
        (root / "config" / "kube.yaml").read_text().replace("my-namespace", "lab") + "api_retry_seconds: 3\n")
    return root
