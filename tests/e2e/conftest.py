"""The real-cluster tier: runs only against the cluster named by KUBE_TOOLBOX_E2E_CONTEXT (a kubeconfig context),
never against whatever the default kubeconfig points at. Without it every test here is skipped, with the reason.

Environment:
  KUBE_TOOLBOX_E2E_CONTEXT     the kubeconfig context to use (required)
  KUBE_TOOLBOX_E2E_KUBECONFIG  the kubeconfig file holding it (default: $KUBECONFIG, else ~/.kube/config)
  KUBE_TOOLBOX_E2E_NAMESPACE   namespace for the test's objects (default: kube-toolbox-e2e; created when missing)
  KUBE_TOOLBOX_E2E_IMAGE       a public image with python3 (default: python:3.12-slim)
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

E2E = Path(__file__).resolve().parent
SKIP_REASON = ("real-cluster tier: set KUBE_TOOLBOX_E2E_CONTEXT to a kubeconfig context to run it "
               "(CONTRIBUTING.md, 'Real-cluster tests')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's tests, saying why, unless a cluster was named explicitly."""
    reason = None
    if not os.environ.get("KUBE_TOOLBOX_E2E_CONTEXT"):
        reason = SKIP_REASON
    elif shutil.which("kubectl") is None:
        reason = "real-cluster tier: kubectl is not installed (it checks the cluster independently)"
    if reason:
        for item in items:
            if E2E in Path(item.path).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class Cluster:
    """The named context, copied alone into a kubeconfig of its own so nothing else can be reached."""
    kubeconfig: Path
    namespace: str
    image: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    context = os.environ["KUBE_TOOLBOX_E2E_CONTEXT"]
    source = os.environ.get("KUBE_TOOLBOX_E2E_KUBECONFIG") or os.environ.get("KUBECONFIG") or \
        str(Path.home() / ".kube" / "config")
    flat = subprocess.run(["kubectl", "config", "view", "--kubeconfig", source, "--context", context, "--minify",
                           "--flatten", "--raw"], capture_output=True, text=True, timeout=60)
    if flat.returncode != 0 or not flat.stdout.strip():
        pytest.fail(f"KUBE_TOOLBOX_E2E_CONTEXT={context}: no such context in {source}: {flat.stderr.strip()}")
    kubeconfig = tmp_path_factory.mktemp("e2e-kube") / "config"
    kubeconfig.write_text(flat.stdout)
    kubeconfig.chmod(0o600)
    namespace = os.environ.get("KUBE_TOOLBOX_E2E_NAMESPACE", "kube-toolbox-e2e")
    found = Cluster(kubeconfig, namespace, os.environ.get("KUBE_TOOLBOX_E2E_IMAGE", "python:3.12-slim"))
    created = found.kubectl("get", "namespace", namespace, check=False).returncode != 0
    if created:
        found.kubectl("create", "namespace", namespace)
    yield found
    if created:
        found.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
