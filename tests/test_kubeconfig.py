"""Credentials read the way kubectl reads them, requests sent without the generated client, against the test
API server: tokens and token files, merged KUBECONFIG files, exec plugins (through the official loader), a
server that is down, log streaming, and what a cluster command imports."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import pytest

from kube import kubeconfig
from kube.errors import ClusterError
from tests.helpers import ROOT, run, seed_pod
from tests.kube_fixtures import free_port


def config_doc(server: str, user: dict, namespace: str = "lab") -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": namespace}}]}


def test_a_token_file_relative_to_its_kubeconfig(tmp_path, monkeypatch, kube):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "token").write_text("secret-token\n")
    path = tmp_path / "conf" / "config"
    path.write_text(json.dumps(config_doc(kube.url, {"tokenFile": "token"})))
    monkeypatch.setenv("KUBECONFIG", str(path))
    creds = kubeconfig.load()
    assert creds.server == kube.url and creds.authorization == "Bearer secret-token"


def test_merged_kubeconfig_files_first_one_wins(tmp_path, monkeypatch, kube):
    first = config_doc(kube.url, {"token": "from-first"})
    first["clusters"] = []                                  # the cluster comes from the second file only
    second = config_doc("http://127.0.0.1:1", {"token": "from-second"})
    second["current-context"] = "other"
    (tmp_path / "a").write_text(json.dumps(first))
    (tmp_path / "b").write_text(json.dumps({**second, "clusters": [{"name": "k", "cluster": {"server": kube.url}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    creds = kubeconfig.load()
    assert creds.authorization == "Bearer from-first" and creds.server == kube.url


def test_client_certificate_data_goes_to_private_files(tmp_path, monkeypatch):
    import base64
    doc = config_doc("https://127.0.0.1:6443", {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                                "client-key-data": base64.b64encode(b"KEY").decode()})
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(b"CA").decode()
    (tmp_path / "config").write_text(json.dumps(doc))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    creds = kubeconfig.load()
    for path, content in ((creds.cert_file, b"CERT"), (creds.key_file, b"KEY"), (creds.ca_file, b"CA")):
        with open(path, "rb") as handle:
            assert handle.read() == content
        import os
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("doc, message", [
    ({"apiVersion": "v1", "kind": "Config"}, "no current-context"),
    ({"current-context": "x", "contexts": []}, "context 'x' is not defined"),
    ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "gone"}}]},
     "names cluster 'gone', which is not defined"),
])
def test_broken_kubeconfigs_are_one_line(tmp_path, monkeypatch, doc, message):
    (tmp_path / "config").write_text(json.dumps(doc))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    with pytest.raises(ClusterError, match=message):
        kubeconfig.load()


def test_an_exec_plugin_runs_through_the_official_loader(project, kube, tmp_path, monkeypatch):
    """kubelogin-style credentials: the plugin is run, its token is sent."""
    marker = tmp_path / "ran"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"import json, pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
                      "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', "
                      "'kind': 'ExecCredential', 'status': {'token': 'plugin-token'}}))\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": [str(plugin)], "interactiveMode": "Never"}}
    (tmp_path / "config").write_text(json.dumps(config_doc(kube.url, user)))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    assert kubeconfig.load().authorization == "Bearer plugin-token"
    code, out, err = run(project, "status")
    assert code == 0 and marker.read_text() == "yes" and "4 cells" in out, err


def test_a_server_that_is_down_says_it_is_retrying_then_fails(project, tmp_path, monkeypatch):
    (tmp_path / "closed").write_text(json.dumps(config_doc(f"http://127.0.0.1:{free_port()}", {"token": "t"})))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "closed"))
    start = time.monotonic()
    code, _, err = run(project, "status")
    took = time.monotonic() - start
    lines = err.strip().splitlines()
    assert code == 1 and took < 3 + 2, took                         # api_retry_seconds: 3 in the fixture
    assert lines[0].startswith("note: ") and "connection refused; retrying for up to 3 s" in lines[0]
    assert lines[-1].startswith("error: cannot reach the Kubernetes API server") and len(lines) == 2


def test_logs_follow_streams_with_the_installed_client(project, kube):
    run(project, "job")
    job = kube.objects("jobs")[0]
    name = job["metadata"]["name"]
    seed_pod(kube, job, {"phase": "Running"})
    kube.set_log("lab", f"{name}-p", "".join(f"step {i}\n" for i in range(3000)))
    code, out, err = run(project, "logs", "--name", name, "--follow")
    assert code == 0, err
    assert out.splitlines()[0] == "step 0" and out.splitlines()[-1] == "step 2999"
    follow = [r for r in kube.requests() if r["path"].endswith("/log")]
    assert follow and follow[-1]["query"].get("follow") == "true"


def test_a_small_status_imports_no_generated_client(project, kube):
    run(project, "job")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import launch; code = launch.main(sys.argv[2:]); "
             "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.'))[:3]); "
             "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(ROOT), "status", "--root", str(project)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_kubernetes_client_under_test_is_the_one_asked_for():
    """tests/run.sh runs the cluster tests a second time with the oldest client pyproject.toml allows."""
    import os

    import kubernetes
    expected = os.environ.get("KUBE_TOOLBOX_EXPECT_KUBERNETES")
    if expected:
        assert kubernetes.__version__.split(".")[0] == expected.split(".")[0], kubernetes.__version__
    else:
        assert int(kubernetes.__version__.split(".")[0]) >= 29
