"""The quick start on a real cluster: `make job` -> the Jobs succeed -> `make status` says so -> `make logs` shows
the results -> `make delete yes=1` leaves nothing of the toolbox behind. kubectl checks each step independently."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.e2e.conftest import Cluster
from tests.helpers import ROOT

# What the quick start's four cells print (examples/quickstart/data: 1,2,3 and 4,5,6).
EXPECTED = {("average", "data1"): "2.0", ("median", "data1"): "2.0",
            ("average", "data2"): "5.0", ("median", "data2"): "5.0"}
RUN_TIMEOUT = float(os.environ.get("KUBE_TOOLBOX_E2E_TIMEOUT", "600"))


@pytest.fixture
def project(tmp_path: Path, cluster: Cluster) -> Iterator[Path]:
    """The quick start with a cluster-friendly kube.yaml: a public image, small requests, the code and data
    shipped with `file:` (the image has neither), and a user of its own so runs never collide."""
    root = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    user = f"e2e-{secrets.token_hex(3)}"
    (root / "config" / "kube.yaml").write_text(
        f"project_name: example\nnamespace: {cluster.namespace}\nuser: {user}\nimage: {cluster.image}\n"
        "cpu_count: 0.1\nmemory: 0.25\nephemeral_storage: 0\nworkdir: /tmp\nfile: [src, data]\n")
    (root / ".env").write_text(f"S3_BUCKET_NAME=kube-toolbox-e2e\nE2E_RUN={user}\n")     # a Secret of its own
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)
    yield root
    make(root, cluster, "delete", "yes=1")           # leave nothing behind, even after a failure
    cluster.kubectl("delete", "jobs,pods,secrets,configmaps", "-l", f"user={user}", "--wait=false", check=False)


def make(root: Path, cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def made(root: Path, cluster: Cluster, *args: str) -> str:
    result = make(root, cluster, *args)
    assert result.returncode == 0, \
        f"make {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_for(what: str, check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{describe()}")
        time.sleep(3)


def test_quickstart_runs_reports_logs_and_cleans_up(project: Path, cluster: Cluster):
    user = next(line.split(": ")[1] for line in (project / "config" / "kube.yaml").read_text().splitlines()
                if line.startswith("user: "))
    mine = f"user={user},project=example"
    assert "4 created" in made(project, cluster, "job")

    def states() -> dict[str, str]:
        return {c["name"]: c["state"] for c in json.loads(made(project, cluster, "status", "json=1"))["cells"]}

    def finished() -> bool:
        found = states()
        assert "failed" not in found.values(), f"a job failed:\n{made(project, cluster, 'status')}"
        return set(found.values()) == {"succeeded"}
    wait_for("the 4 Jobs to succeed", finished, RUN_TIMEOUT,
             lambda: made(project, cluster, "status") + cluster.kubectl("get", "jobs,pods", "-l", mine).stdout)
    jobs = json.loads(cluster.kubectl("get", "jobs", "-l", mine, "-o", "json").stdout)["items"]
    assert len(jobs) == 4 and all(j["status"].get("succeeded") == 1 for j in jobs)
    pod_specs = [j["spec"]["template"]["spec"] for j in jobs]
    extras = {f"secret/{e['secretRef']['name']}" for s in pod_specs for c in s["containers"]
              for e in c.get("envFrom") or [] if "secretRef" in e}
    extras |= {f"configmap/{v['configMap']['name']}" for s in pod_specs for v in s.get("volumes") or []
               if "configMap" in v}
    assert any(e.startswith("secret/") for e in extras) and any(e.startswith("configmap/") for e in extras)

    table = made(project, cluster, "status")
    assert "4 cells" in table and "4 succeeded" in table

    for (model, dataset), value in EXPECTED.items():
        logs = made(project, cluster, "logs", f"name=model={model} dataset={dataset}")
        assert value in logs.splitlines(), f"{model}/{dataset}: expected {value} in the log:\n{logs}"

    made(project, cluster, "delete", "yes=1")

    def leftovers() -> str:
        return cluster.kubectl("get", "jobs,pods,secrets,configmaps", "-l", mine, "-o", "name").stdout.strip()
    wait_for("the toolbox's objects to go", lambda: leftovers() == "", 180, leftovers)
    names = set(cluster.kubectl("get", "secrets,configmaps", "-o", "name").stdout.split())
    assert not extras & names, f"left behind: {sorted(extras & names)}"
