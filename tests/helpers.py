"""Small builders shared by the launcher tests: a project folder from YAML text, and launch.py runs."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KUBE = """\
project_name: example
namespace: lab
user: alice
"""


def make_project(tmp: Path, launch: str, kube: str = KUBE, dotenv: str | None = None) -> Path:
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    (tmp / "config" / "kube.yaml").write_text(textwrap.dedent(kube))
    (tmp / "config" / "launch.yaml").write_text(textwrap.dedent(launch))
    if dotenv is not None:
        (tmp / ".env").write_text(textwrap.dedent(dotenv))
    return tmp


def launch(root: Path, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real launch.py as a user would, from the project root."""
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=root, capture_output=True,
                          text=True, env=env, input=input, timeout=120)


# --- in-process runs against the test API server, and the objects a test seeds it with ----------------------

def run(root, *args, stdin: str = "") -> tuple[int, str, str]:
    """launch.py in this process (so the server's request log and counters see it): (status, stdout, stderr)."""
    import launch as launcher
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO(stdin)
    try:
        code = launcher.main([*args, "--root", str(root)])
    finally:
        sys.stdout, sys.stderr, sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def names(kube, plural="jobs"):
    return sorted(o["metadata"]["name"] for o in kube.objects(plural))


def job_names(root):
    code, out, _ = run(root, "runs")
    return [line.split()[1] for line in out.splitlines()[1:-1]]


def set_failed(kube, name):
    job = next(j for j in kube.objects("jobs") if j["metadata"]["name"] == name)
    job["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    kube.seed(job)


def pod_for(job, phase, node="", container=None, conditions=()):
    name = job["metadata"]["name"]
    st = {"phase": phase, "conditions": list(conditions)}
    if container:
        st["containerStatuses"] = [{"name": "main", "state": container}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-abcde", "namespace": "lab",
                         "labels": {**job["metadata"]["labels"], "job-name": name},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                              "uid": job["metadata"].get("uid", "u")}]},
            "spec": {"nodeName": node} if node else {}, "status": st}


def with_status(job, **status):
    job = dict(job)
    job["status"] = status
    return job


def seed_pod(kube, job: dict, status: dict, suffix: str = "p") -> str:
    """A pod of a submitted Job, owned by it as the Job controller would make it, in the given status."""
    name = job["metadata"]["name"]
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{name}-{suffix}", "namespace": "lab", "labels": {**job["metadata"]["labels"], "job-name": name},
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"]}]},
        "spec": {"containers": [{"name": "main", "image": "x"}]}, "status": status})
    return f"{name}-{suffix}"
