"""make job / pod / delete / clean_jobs against the test API server, through the official client."""
from __future__ import annotations

import io
import shutil
import sys

import pytest

import launch
from tests.helpers import ROOT, job_names, make_project, names, run, set_failed
from tests.kube_fixtures import free_port, write_kubeconfig
from tests.manifest_checks import validate_manifest

SEL = "user=my-user,project=example"


def test_job_creates_one_labelled_job_per_combination(project, kube):
    code, out, _ = run(project, "job")
    assert code == 0
    expected = job_names(project)
    lines = out.splitlines()
    for i, name in enumerate(expected):
        assert lines[2 * i] == f"Job '{name}' not found. Creating the job."
        assert lines[2 * i + 1] == f"job.batch/{name} created"
    assert "4 jobs: 4 created, 0 failed" in lines[-1]
    jobs = kube.objects("jobs")
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(expected)
    for job in jobs:
        assert job["metadata"]["labels"]["user"] == "my-user" and job["metadata"]["labels"]["project"] == "example"
        job = {k: v for k, v in job.items() if k != "status"}
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "namespace"):
            job["metadata"].pop(key, None)
        validate_manifest(job)
        assert "hush" not in str(job)
    secrets = kube.objects("secrets")
    assert len(secrets) == 1 and secrets[0]["metadata"]["name"].startswith("example-env-")
    calls = [(r["method"], r["path"]) for r in kube.requests()]
    assert calls.count(("GET", "/apis/batch/v1/namespaces/lab/jobs")) == 1
    assert calls.count(("POST", "/apis/batch/v1/namespaces/lab/jobs")) == 4
    assert len(calls) == 1 + 1 + 4 + 1      # one list, the Secret, one create per job, the Secret marked used
    assert calls[-1] == ("PATCH", f"/api/v1/namespaces/lab/secrets/{secrets[0]['metadata']['name']}")


def test_resubmission_is_idempotent(project, kube):
    run(project, "job")
    kube.clear_requests()
    code, out, _ = run(project, "job")
    assert code == 0 and "Left alone" in out and "0 created" in out and "4 unchanged" in out
    assert [r["method"] for r in kube.requests()] == ["GET"]


def test_failed_job_is_replaced_and_only_failed_selects_it(project, kube):
    run(project, "job")
    first = job_names(project)[0]
    set_failed(kube, first)
    kube.clear_requests()
    code, out, _ = run(project, "job", "--only", "failed")
    assert code == 0
    assert out.splitlines()[:2] == [f"Job '{first}' failed. Replacing the job.", f"job.batch/{first} replaced"]
    assert "1 replaced" in out and out.count("Job '") == 1
    calls = [(r["method"], r["path"].rsplit("/", 2)[-2] if r["method"] == "DELETE" else r["path"].rsplit("/", 1)[-1])
             for r in kube.requests()]
    assert calls.count(("DELETE", "jobs")) == 1 and calls.count(("POST", "jobs")) == 1


def test_only_missing_creates_just_the_missing(project, kube):
    run(project, "job", "--only", "model=average")
    code, out, _ = run(project, "job", "--only", "missing")
    assert out.count("Creating the job.") == 2 and "2 created" in out
    assert len(kube.objects("jobs")) == 4


def test_changed_spec_is_reported_and_overwrite_replaces(project, kube):
    run(project, "job")
    launch_file = project / "config" / "launch.yaml"
    launch_file.write_text(launch_file.read_text().replace("gpu_count: 0", "gpu_count: 0\n    memory: 8", 1))
    code, out, _ = run(project, "job")
    assert out.count("with a different spec. Left alone; use overwrite=true to replace it.") == 2
    assert "2 changed" in out and "0 created" in out and "2 unchanged" in out
    code, out, _ = run(project, "job", "--overwrite")
    assert out.count("replaced") >= 4 and "4 replaced" in out
    memory = {j["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
              for j in kube.objects("jobs")}
    assert memory == {"8Gi", "32Gi"}


def test_transient_errors_are_retried(project, kube):
    kube.fail("POST", "/jobs$", 500, times=2)
    kube.fail("POST", "/jobs$", 429, times=1, headers={"Retry-After": "0"})
    code, out, _ = run(project, "job")
    assert code == 0 and "4 created" in out
    assert len(kube.objects("jobs")) == 4


def test_persistent_failure_is_counted_and_exits_nonzero(project, kube):
    kube.fail("POST", "/jobs$", 500, times=50)
    code, out, err = run(project, "job")
    assert code == 1 and "4 failed" in out and "API error 500" in err


@pytest.mark.parametrize("status, body, message", [
    pytest.param(403, {"kind": "Status", "code": 403, "message": 'jobs.batch is forbidden: User "alice" cannot list'},
                 "forbidden in namespace lab (RBAC)", id="rbac"),
    pytest.param(401, None, "unauthorized", id="unauthorized"),
])
def test_list_errors_are_one_line(project, kube, status, body, message):
    kube.fail("GET", "/jobs$", status, body=body)
    code, out, err = run(project, "job")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and message in errors[0]
    assert kube.objects("jobs") == []


def test_invalid_object_names_the_field(project, kube):
    body = {"kind": "Status", "code": 422, "reason": "Invalid", "message": "Job is invalid",
            "details": {"causes": [{"field": "spec.template.spec.containers[0].image", "message": "Required value"}]}}
    kube.fail("POST", "/jobs$", 422, times=4, body=body)
    code, out, err = run(project, "job")
    assert code == 1 and "invalid: spec.template.spec.containers[0].image: Required value" in err


def test_quota_exceeded(project, kube):
    body = {"kind": "Status", "code": 403, "reason": "Forbidden",
            "message": 'jobs "x" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1'}
    kube.fail("POST", "/jobs$", 403, times=4, body=body)
    code, out, err = run(project, "job")
    assert code == 1 and "quota exceeded in namespace lab: " in err


def test_unreachable_server_and_missing_kubeconfig(project, tmp_path, monkeypatch):
    write_kubeconfig(tmp_path / "closed", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "closed"))
    code, _, err = run(project, "job")
    assert code == 1 and "cannot reach the Kubernetes API server" in err
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    code, _, err = run(project, "job")
    assert code == 1 and "kubeconfig" in err


def test_dryrun_contacts_no_cluster(project, tmp_path, monkeypatch, kube):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    code, out, _ = run(project, "dryrun")
    assert code == 0 and out.count("kind: Job") == 4 and "hush" not in out
    assert kube.requests() == []


def test_pod_created_once(project, kube):
    code, out, err = run(project, "pod")
    assert code == 0
    assert out.splitlines() == ["pod/my-user-example-interactive-pod created"]
    assert err.splitlines() == ["Open a shell when it runs: kubectl exec -it my-user-example-interactive-pod -n lab "
                                "-- /bin/bash"]
    assert names(kube, "pods") == ["my-user-example-interactive-pod"]
    code, out, err = run(project, "pod")
    assert code == 1 and "already exists" in err and "make delete_pod" in err and "pod=NAME" in err
    code, out, _ = run(project, "pod", "--dry-run", "--name", "other")
    assert code == 0 and "name: other" in out


def other_users_objects(kube):
    kube.seed({"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "bob-job", "namespace": "lab", "labels": {"user": "bob", "project": "example"}}, "spec": {}})
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "bob-pod", "namespace": "lab", "labels": {"user": "bob", "project": "example"}}, "spec": {}})
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "my-other-project-pod", "namespace": "lab", "labels": {"user": "my-user", "project": "other"}},
        "spec": {}})


def test_delete_touches_only_my_objects_after_confirmation(project, kube):
    kube.controller(True)                  # each created Job gets a pod, as a real cluster would
    run(project, "job")
    run(project, "pod")
    other_users_objects(kube)
    assert len(kube.objects("pods")) == 4 + 1 + 2
    code, out, _ = run(project, "delete", stdin="n\n")
    assert code == 1 and "Nothing deleted." in out and len(kube.objects("jobs")) == 5
    code, out, _ = run(project, "delete", stdin="y\n")
    assert code == 0 and out.count(" deleted") == 6 and "secret/example-env-" in out   # 4 jobs, the pod, .env
    assert names(kube) == ["bob-job"] and names(kube, "secrets") == []
    assert names(kube, "pods") == ["bob-pod", "my-other-project-pod"]


def test_delete_pod_only_and_nothing_to_delete(project, kube):
    run(project, "job")
    run(project, "pod")
    code, out, _ = run(project, "delete", "--kind", "pod", "--yes")
    assert code == 0 and names(kube, "pods") == [] and len(kube.objects("jobs")) == 4
    run(project, "delete", "--yes")
    code, out, _ = run(project, "delete", "--yes")
    assert code == 0 and "No jobs and pods of user 'my-user'" in out


def test_clean_jobs_removes_failed_only(project, kube):
    run(project, "job")
    failed = job_names(project)[1]
    set_failed(kube, failed)
    code, out, _ = run(project, "clean-jobs", "--yes")
    assert code == 0 and out.rstrip().splitlines() == [f"  job.batch/{failed}", f"job.batch/{failed} deleted"]
    assert failed not in names(kube) and len(names(kube)) == 3


def test_copy_refuses_without_files(project, kube):
    code, _, err = run(project, "copy", "--pod", "x")
    assert code == 2 and "file: expected a list of files" in err


def copy_setup(project, kube, files: str, phase: str) -> None:
    """A project whose file: section lists `files`, and a pod p1 in `phase`."""
    (project / "src" / "extra.py").write_text("print('patched')\n")
    lf = project / "config" / "launch.yaml"
    lf.write_text(f"file: [{files}]\nworkdir: /workspace/example\n" + lf.read_text())
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "lab", "labels": {
        "user": "my-user", "project": "example"}}, "spec": {}, "status": {"phase": phase}})
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bobs", "namespace": "lab", "labels": {
        "user": "bob", "project": "example"}}, "spec": {}, "status": {"phase": "Running"}})


def test_copy_refuses_another_users_pod(project, kube):
    copy_setup(project, kube, "src/extra.py", "Running")
    code, _, err = run(project, "copy", "--pod", "bobs")
    assert code == 1 and "belongs to user 'bob' of project 'example'" in err
    assert not [r for r in kube.requests() if "exec" in r["path"]]


def test_copy_needs_a_running_pod(project, kube):
    copy_setup(project, kube, "src/extra.py", "Pending")
    code, _, err = run(project, "copy", "--pod", "p1")
    assert code == 1 and "pod 'p1' is Pending; expected Running" in err


def test_copy_sends_the_files_into_a_running_pod(project, kube):
    copy_setup(project, kube, "src/extra.py, data/1.txt", "Running")
    code, out, err = run(project, "copy", "--pod", "p1")
    assert code == 0, err
    assert out.splitlines() == ["Copied data/1.txt to pod/p1 (/workspace/example)",
                                "Copied src/extra.py to pod/p1 (/workspace/example)"]
    assert kube.pod_file("p1", "/workspace/example/src/extra.py") == "print('patched')\n"
    assert kube.pod_file("p1", "/workspace/example/data/1.txt") == "1,2,3\n"


def test_delete_lists_each_kind_once(project, kube):
    run(project, "job")
    run(project, "pod")
    kube.clear_requests()
    code, out, _ = run(project, "delete", "--yes")
    assert code == 0 and out.count(" deleted") == 6
    lists = sorted(r["path"].rsplit("/", 1)[-1] for r in kube.requests() if r["method"] == "GET")
    assert lists == ["configmaps", "jobs", "pods", "pytorchjobs", "secrets", "services"]


def test_only_failed_on_a_large_grid_renders_each_chosen_job_once(project, kube, monkeypatch):
    """make job only=failed: one paged Job list to choose, each failed cell rendered once, replaced once."""
    from kube import render
    (project / "config" / "launch.yaml").write_text(
        "project_name: example\nmodel:\n  m:\n    command: echo <a> <b>\n    gpu_count: 0\n"
        f"    hparam:\n      a: {list(range(10))}\n      b: {list(range(100))}\ndataset:\n  d: {{}}\n")
    code, out, err = run(project, "job")
    assert code == 0 and "1000 jobs: 1000 created" in out, err
    failed = job_names(project)[::250]
    for name in failed:
        set_failed(kube, name)
    rendered: list[str] = []
    original = render.Renderer._render

    def counting(self, name, *args, **kwargs):
        rendered.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(render.Renderer, "_render", counting)
    kube.clear_requests()
    code, out, _ = run(project, "job", "--only", "failed")
    assert code == 0 and f"{len(failed)} jobs: 0 created, {len(failed)} replaced" in out
    assert sorted(rendered) == sorted(failed)                      # each chosen Job rendered once, nothing else
    calls = [(r["method"], r["path"]) for r in kube.requests()]
    job_calls = [c for c in calls if "/jobs" in c[1]]
    lists = [c for c in job_calls if c == ("GET", "/apis/batch/v1/namespaces/lab/jobs")]
    assert len(lists) == 2                                         # one list of 1,000 Jobs: two pages of 500
    assert sorted(p.rsplit("/", 1)[-1] for m, p in job_calls if m == "DELETE") == sorted(failed)
    assert sum(m == "POST" for m, _ in job_calls) == len(failed)
    assert len(job_calls) == len(lists) + 2 * len(failed)
    assert not [c for c in calls if "/pods" in c[1]]               # no packed Job: the pods are not needed


# --- two users, and make delete while make job runs ------------------------------------------------------------------

def test_users_that_fold_to_one_name_share_nothing(project, kube):
    """`Alice` and `alice` (or `a.lice`, `a_lice`) are different labels, so every object name differs too."""
    kube_yaml = project / "config" / "kube.yaml"
    (project / "config" / "launch.yaml").write_text("file: [src/avg.py]\n" +
                                                    (project / "config" / "launch.yaml").read_text())
    made = {}
    for user in ("Alice", "alice", "a_lice"):
        kube_yaml.write_text(kube_yaml.read_text().replace(kube_yaml.read_text().split("user: ")[1].split("\n")[0],
                                                           user))
        code, out, err = run(project, "job")
        assert code == 0 and "4 created" in out, err
        code, out, err = run(project, "pod")
        assert code == 0, err
        made[user] = {o["metadata"]["name"] for plural in ("jobs", "configmaps", "secrets", "pods")
                      for o in kube.objects(plural) if o["metadata"]["labels"]["user"] == user}
    assert len(made["Alice"]) == len(made["alice"]) == len(made["a_lice"]) == 4 + 1 + 1 + 1
    assert not made["Alice"] & made["alice"] and not made["alice"] & made["a_lice"]


@pytest.mark.parametrize("order", ["job-used-them-before-delete-listed-jobs", "job-used-them-after-delete-listed"])
def test_make_delete_during_make_job_never_leaves_jobs_without_their_secret(project, kube, order):
    """make delete lists the Secrets/ConfigMaps, then the Jobs; make job creates Jobs, then marks the
    Secrets/ConfigMaps used. In either interleaving, the Jobs that remain find what they refer to."""
    from kube import cleanup, config, operations
    project_settings = config.load(project).project
    run(project, "job", "--only", "model=average")
    gw = operations.gateway(project_settings)
    if order == "job-used-them-before-delete-listed-jobs":
        owned = cleanup.list_owned(gw, project_settings)       # make delete lists ...
        run(project, "job", "--only", "model=median")          # ... make job runs entirely ...
        owned = cleanup.list_owned(gw, project_settings)       # ... then delete lists again
    else:
        owned = cleanup.list_owned(gw, project_settings)       # delete lists everything ...
        run(project, "job", "--only", "model=median")          # ... make job runs before delete deletes
    gone = [t for t in cleanup.find_owned(owned, "job") if "average" in t.name]
    result = cleanup.delete(gw, gone + cleanup.unused_extras(owned, gone))
    assert not result.errors
    secrets = {o["metadata"]["name"] for o in kube.objects("secrets")}
    remaining = kube.objects("jobs")
    assert remaining and all("median" in j["metadata"]["labels"]["model"] for j in remaining)
    for job in remaining:
        refs = {e["secretRef"]["name"] for c in job["spec"]["template"]["spec"]["containers"]
                for e in c.get("envFrom") or []}
        assert refs and refs <= secrets, (refs, secrets)
