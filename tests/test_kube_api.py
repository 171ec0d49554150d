"""The test API server answers as a real one does, checked through the official client over its socket: the
toolbox's cluster tests are only as good as this server's fidelity."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.kube_fixtures import Control

Batch, Core = client.BatchV1Api, client.CoreV1Api

JOB = {"apiVersion": "batch/v1", "kind": "Job",
       "metadata": {"name": "train", "labels": {"user": "alice", "project": "example"}},
       "spec": {"template": {"spec": {"restartPolicy": "Never",
                                      "containers": [{"name": "main", "image": "python:3.12-slim",
                                                      "command": ["python", "-c", "print(1)"]}]}}}}


@pytest.fixture
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def job(name: str = "train", **labels: str) -> dict:
    body = json.loads(json.dumps(JOB))
    body["metadata"]["name"] = name
    body["metadata"]["labels"].update(labels)
    return body


def configmap(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"k": name}}


def raw(response: Any) -> dict:
    return json.loads(response.data)


def http(url: str, accept: str = "application/json") -> tuple[str, dict]:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=10) as r:
        return r.headers["Content-Type"], json.loads(r.read())


def api_error(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, dict]:
    with pytest.raises(client.ApiException) as err:
        fn(*args, **kwargs)
    return err.value.status, json.loads(err.value.body)


# --- discovery -----------------------------------------------------------------------------------------------

def test_legacy_discovery_names_group_versions_scopes_and_verbs(api: client.ApiClient) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api).get_api_versions()
    assert groups.kind == "APIGroupList" and [g.preferred_version.group_version for g in groups.groups] == [
        "batch/v1", "rbac.authorization.k8s.io/v1"]
    core = client.CoreV1Api(api).get_api_resources()
    assert core.kind == "APIResourceList" and core.group_version == "v1"
    by_name = {r.name: r for r in core.resources}
    assert by_name["pods"].namespaced and by_name["pods"].short_names == ["po"] and by_name["pods"].kind == "Pod"
    assert by_name["pods"].singular_name == "pod" and "watch" in by_name["pods"].verbs
    assert not by_name["nodes"].namespaced and by_name["configmaps"].short_names == ["cm"]
    assert by_name["pods/log"].verbs == ["get"] and by_name["pods/exec"].kind == "PodExecOptions"
    jobs = client.BatchV1Api(api).get_api_resources()
    assert jobs.group_version == "batch/v1"
    job_resource = next(r for r in jobs.resources if r.name == "jobs")
    assert (job_resource.kind, job_resource.singular_name, job_resource.namespaced) == ("Job", "job", True)
    assert set(job_resource.verbs) == {"create", "delete", "deletecollection", "get", "list", "patch", "update",
                                       "watch"}


def test_aggregated_discovery_only_when_asked_for(kube: Control) -> None:
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    ctype, body = http(f"{kube.url}/apis", aggregated)
    assert ctype == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert body["kind"] == "APIGroupDiscoveryList" and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    batch, rbac = body["items"]
    assert rbac["metadata"]["name"] == "rbac.authorization.k8s.io"
    jobs = batch["versions"][0]["resources"][0]
    assert batch["metadata"]["name"] == "batch" and jobs["resource"] == "jobs" and jobs["scope"] == "Namespaced"
    _, core = http(f"{kube.url}/api", aggregated)
    nodes = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "nodes")
    assert core["items"][0]["metadata"]["name"] == "" and nodes["scope"] == "Cluster"
    ctype, body = http(f"{kube.url}/apis")
    assert ctype.startswith("application/json") and body["kind"] == "APIGroupList"
    kube.aggregated_discovery(False)
    assert http(f"{kube.url}/apis", aggregated)[1]["kind"] == "APIGroupList"


def test_openapi_v3_says_create_and_patch_take_field_validation(kube: Control) -> None:
    _, index = http(f"{kube.url}/openapi/v3")
    assert set(index["paths"]) == {"api/v1", "apis/batch/v1", "apis/rbac.authorization.k8s.io/v1"}
    _, doc = http(kube.url + index["paths"]["apis/batch/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "batch", "version": "v1", "kind": "Job"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]


# --- lists ---------------------------------------------------------------------------------------------------

def test_list_pages_come_from_one_snapshot(core: Core) -> None:
    for i in (3, 1, 4, 5, 2):
        core.create_namespaced_config_map("lab", configmap(f"cm-{i}"))
    first = raw(core.list_namespaced_config_map("lab", limit=2, _preload_content=False))
    assert first["kind"] == "ConfigMapList" and first["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-1", "cm-2"]
    assert first["metadata"]["remainingItemCount"] == 3 and "kind" not in first["items"][0]
    core.create_namespaced_config_map("lab", configmap("cm-0"))          # after the first page: not in this list
    core.delete_namespaced_config_map("cm-5", "lab")
    names, token = [], first["metadata"]["continue"]
    while token:
        page = raw(core.list_namespaced_config_map("lab", limit=2, _continue=token, _preload_content=False))
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert names == ["cm-3", "cm-4", "cm-5"]
    fresh = core.list_namespaced_config_map("lab")
    assert [i.metadata.name for i in fresh.items] == ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]
    assert fresh.metadata._continue is None


def test_selected_pages_omit_the_remaining_count_and_forced_pages_cap_the_limit(core: Core,
                                                                                 kube: Control) -> None:
    for i in range(5):
        core.create_namespaced_config_map("lab", configmap(f"cm-{i}", user="alice" if i % 2 else "bob"))
    page = raw(core.list_namespaced_config_map("lab", limit=1, label_selector="user=bob", _preload_content=False))
    assert [i["metadata"]["name"] for i in page["items"]] == ["cm-0"]
    assert page["metadata"]["continue"] and "remainingItemCount" not in page["metadata"]
    kube.paging(2)
    page = raw(core.list_namespaced_config_map("lab", limit=500, _preload_content=False))
    assert len(page["items"]) == 2 and page["metadata"]["remainingItemCount"] == 3
    assert len(core.list_namespaced_config_map("lab").items) == 5      # no limit: no paging, as a real server


def test_a_forgotten_continue_token_is_410_expired(core: Core, kube: Control) -> None:
    for i in range(3):
        core.create_namespaced_config_map("lab", configmap(f"cm-{i}"))
    token = core.list_namespaced_config_map("lab", limit=1).metadata._continue
    kube.expire_lists()
    status, body = api_error(core.list_namespaced_config_map, "lab", limit=1, _continue=token)
    assert status == 410 and body["reason"] == "Expired"
    status, body = api_error(core.list_namespaced_config_map, "lab", limit=1, _continue="not-a-token")
    assert status == 400 and body["reason"] == "BadRequest"


def test_label_and_field_selectors(core: Core) -> None:
    for i, user in enumerate(["alice", "bob", "carol"]):
        core.create_namespaced_config_map("lab", configmap(f"cm-{i}", user=user, project="example"))
    names = lambda **kw: [i.metadata.name for i in core.list_namespaced_config_map("lab", **kw).items]  # noqa: E731
    assert names(label_selector="user in (alice,carol),project=example") == ["cm-0", "cm-2"]
    assert names(label_selector="user!=bob,!missing") == ["cm-0", "cm-2"]
    assert names(field_selector="metadata.name=cm-1") == ["cm-1"]
    assert names(field_selector="metadata.name!=cm-1", label_selector="user") == ["cm-0", "cm-2"]


def test_watch_streams_changes_after_a_resource_version(batch: Batch, kube: Control) -> None:
    rv = batch.list_namespaced_job("lab").metadata.resource_version
    batch.create_namespaced_job("lab", job("a"))
    batch.patch_namespaced_job("a", "lab", {"metadata": {"labels": {"seen": "yes"}}})
    batch.delete_namespaced_job("a", "lab", propagation_policy="Background")
    events = [(e["type"], e["object"].metadata.labels.get("seen")) for e in
              watch.Watch().stream(batch.list_namespaced_job, "lab", resource_version=rv, timeout_seconds=1)]
    assert events == [("ADDED", None), ("MODIFIED", "yes"), ("DELETED", "yes")]


# --- writes --------------------------------------------------------------------------------------------------

def test_create_stamps_metadata_and_defaults_a_job(batch: Batch) -> None:
    created = raw(batch.create_namespaced_job("lab", job(), _preload_content=False))
    meta, spec = created["metadata"], created["spec"]
    assert meta["namespace"] == "lab" and meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
    assert spec["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "train"
    assert spec["backoffLimit"] == 6 and created["status"] == {}
    status, body = api_error(batch.create_namespaced_job, "lab", job())
    assert status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'jobs.batch "train" already exists'


def test_create_refuses_what_a_real_server_refuses(batch: Batch) -> None:
    long_name = job("x" * 64)
    status, body = api_error(batch.create_namespaced_job, "lab", long_name)
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.template.labels"
    always = job("always")
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    status, body = api_error(batch.create_namespaced_job, "lab", always)
    assert status == 422 and "spec.template.spec.restartPolicy" in body["message"]
    elsewhere = job("elsewhere")
    elsewhere["metadata"]["namespace"] = "other"
    assert api_error(batch.create_namespaced_job, "lab", elsewhere)[0] == 400
    assert batch.list_namespaced_job("lab").items == []


def test_field_validation_strict_refuses_and_warn_drops_unknown_fields(kube: Control) -> None:
    typo = job("typo")
    typo["spec"]["template"]["spec"]["containers"][0]["imag"] = "oops"
    url = f"{kube.url}/apis/batch/v1/namespaces/lab/jobs"

    def post(mode: str) -> tuple[int, dict, str]:
        request = urllib.request.Request(f"{url}?fieldValidation={mode}", data=json.dumps(typo).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read()), r.headers.get("Warning", "")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()), ""
    code, body, _ = post("Strict")
    assert code == 400 and body["message"] == \
        'strict decoding error: unknown field "spec.template.spec.containers[0].imag"'
    code, body, warning = post("Warn")
    assert code == 201 and "imag" not in body["spec"]["template"]["spec"]["containers"][0]
    assert 'unknown field \\"spec.template.spec.containers[0].imag\\"' in warning


def test_update_with_a_stale_resource_version_is_409(batch: Batch) -> None:
    first = batch.create_namespaced_job("lab", job())
    fresh = batch.read_namespaced_job("train", "lab")
    fresh.metadata.labels["stage"] = "two"
    second = batch.replace_namespaced_job("train", "lab", fresh)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.metadata.labels["stage"] = "stale"
    status, body = api_error(batch.replace_namespaced_job, "train", "lab", first)
    assert status == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    status, _ = api_error(batch.patch_namespaced_job, "train", "lab",
                          {"metadata": {"resourceVersion": first.metadata.resource_version, "labels": {"x": "y"}}})
    assert status == 409
    assert batch.read_namespaced_job("train", "lab").metadata.labels["stage"] == "two"


def test_a_jobs_pod_template_is_immutable(batch: Batch) -> None:
    batch.create_namespaced_job("lab", job())
    changed = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}}
    status, body = api_error(batch.patch_namespaced_job, "train", "lab", changed)
    assert status == 422 and body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.template"]
    assert body["message"].startswith('Job.batch "train" is invalid: spec.template: Invalid value: ')
    current = batch.read_namespaced_job("train", "lab")
    current.spec.template.spec.containers[0].image = "other"
    assert api_error(batch.replace_namespaced_job, "train", "lab", current)[0] == 422
    labelled = batch.patch_namespaced_job("train", "lab", {"metadata": {"labels": {"ok": "yes"}}})
    assert labelled.metadata.labels["ok"] == "yes" and labelled.metadata.generation == 1
    parallel = batch.patch_namespaced_job("train", "lab", {"spec": {"parallelism": 0}})
    assert parallel.metadata.generation == 2


def test_json_patch_and_status_subresource(batch: Batch) -> None:
    batch.create_namespaced_job("lab", job())
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}},
           {"op": "replace", "path": "/metadata/labels/user", "value": "bob"}]
    patched = batch.patch_namespaced_job("train", "lab", ops)
    assert patched.metadata.annotations == {"a": "1"} and patched.metadata.labels["user"] == "bob"
    batch.patch_namespaced_job("train", "lab", {"status": {"succeeded": 1}})           # ignored off /status
    assert batch.read_namespaced_job("train", "lab").status.succeeded is None
    batch.patch_namespaced_job_status("train", "lab", {"status": {"succeeded": 1}})
    assert batch.read_namespaced_job("train", "lab").status.succeeded == 1


def test_dry_run_stores_nothing(batch: Batch) -> None:
    created = batch.create_namespaced_job("lab", job(), dry_run="All")
    assert created.metadata.uid and batch.list_namespaced_job("lab").items == []


# --- deletion and garbage collection -------------------------------------------------------------------------

def owned_pods(core: client.CoreV1Api) -> list[tuple[str, list[str]]]:
    return [(p.metadata.name, [r.kind for r in p.metadata.owner_references or []])
            for p in core.list_namespaced_pod("lab").items]


@pytest.mark.parametrize("policy, pods_left", [
    pytest.param("Background", 0, id="background"),
    pytest.param("Foreground", 0, id="foreground"),
    pytest.param("Orphan", 1, id="orphan"),
])
def test_propagation_policies(batch: Batch, core: Core, kube: Control, policy: str, pods_left: int) -> None:
    kube.controller(True)
    batch.create_namespaced_job("lab", job())
    [(pod, owners)] = owned_pods(core)
    assert owners == ["Job"] and pod.startswith("train-")
    batch.delete_namespaced_job("train", "lab", propagation_policy=policy)
    assert batch.list_namespaced_job("lab").items == []
    assert owned_pods(core) == [(pod, [])] * pods_left        # orphans lose their ownerReferences


def test_foreground_keeps_the_owner_until_its_pods_are_gone(batch: Batch, core: Core, kube: Control) -> None:
    kube.controller(True)
    kube.gc_delay(0.5)
    batch.create_namespaced_job("lab", job())
    marked = raw(batch.delete_namespaced_job("train", "lab", propagation_policy="Foreground",
                                             _preload_content=False))
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert len(core.list_namespaced_pod("lab").items) == 1
    assert api_error(batch.create_namespaced_job, "lab", job())[0] == 409       # still terminating
    deadline = time.monotonic() + 5
    while batch.list_namespaced_job("lab").items and time.monotonic() < deadline:
        time.sleep(0.05)
    assert batch.list_namespaced_job("lab").items == [] and core.list_namespaced_pod("lab").items == []


def test_background_deletes_the_owner_first(batch: Batch, core: Core, kube: Control) -> None:
    kube.controller(True)
    kube.gc_delay(0.3)
    batch.create_namespaced_job("lab", job())
    batch.delete_namespaced_job("train", "lab", propagation_policy="Background")
    assert batch.list_namespaced_job("lab").items == [] and len(core.list_namespaced_pod("lab").items) == 1
    time.sleep(0.6)
    assert core.list_namespaced_pod("lab").items == []


def test_jobs_orphan_their_pods_by_default_with_a_warning(kube: Control, core: Core) -> None:
    kube.controller(True)
    url = f"{kube.url}/apis/batch/v1/namespaces/lab/jobs"
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(job()).encode(), method="POST",
                                                  headers={"Content-Type": "application/json"}), timeout=10)
    with urllib.request.urlopen(urllib.request.Request(f"{url}/train", method="DELETE"), timeout=10) as r:
        assert "child pods are preserved by default" in r.headers["Warning"]
    assert [owners for _, owners in owned_pods(core)] == [[]]


def test_a_dependent_with_another_live_owner_survives(batch: Batch, core: Core) -> None:
    a = batch.create_namespaced_job("lab", job("a"))
    b = batch.create_namespaced_job("lab", job("b"))
    refs = [{"apiVersion": "batch/v1", "kind": "Job", "name": j.metadata.name, "uid": j.metadata.uid}
            for j in (a, b)]
    core.create_namespaced_config_map("lab", {**configmap("shared"), "metadata": {"name": "shared",
                                                                                    "ownerReferences": refs}})
    batch.delete_namespaced_job("a", "lab", propagation_policy="Background")
    shared = core.read_namespaced_config_map("shared", "lab")
    assert [r.name for r in shared.metadata.owner_references] == ["b"]
    batch.delete_namespaced_job("b", "lab", propagation_policy="Background")
    assert core.list_namespaced_config_map("lab").items == []


def test_finalizers_hold_an_object_until_removed(core: Core) -> None:
    core.create_namespaced_config_map("lab", {**configmap("held"), "metadata": {"name": "held",
                                                                                  "finalizers": ["example.org/x"]}})
    core.delete_namespaced_config_map("held", "lab")
    held = core.read_namespaced_config_map("held", "lab")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "lab", {"metadata": {"finalizers": None}})
    status, body = api_error(core.read_namespaced_config_map, "held", "lab")
    assert status == 404 and body["message"] == 'configmaps "held" not found'


def test_delete_collection_by_label_and_uid_precondition(batch: Batch, core: Core) -> None:
    for name, user in (("a", "alice"), ("b", "alice"), ("c", "bob")):
        batch.create_namespaced_job("lab", job(name, user=user))
    batch.delete_collection_namespaced_job("lab", label_selector="user=alice", propagation_policy="Background")
    assert [j.metadata.name for j in batch.list_namespaced_job("lab").items] == ["c"]
    wrong = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-its-uid"))
    assert api_error(batch.delete_namespaced_job, "c", "lab", body=wrong)[0] == 409
    assert len(batch.list_namespaced_job("lab").items) == 1


def test_pod_logs_and_unknown_things_answer_like_a_real_server(core: Core, kube: Control) -> None:
    kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "lab"},
               "spec": {"containers": [{"name": "main", "image": "i"}]}})
    kube.set_log("lab", "p", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", "lab", tail_lines=2) == "two\nthree\n"
    assert api_error(core.read_namespaced_pod_log, "p", "lab", container="other")[0] == 400
    status, body = api_error(core.read_namespaced_pod_log, "gone", "lab")
    assert status == 404 and body["kind"] == "Status" and body["message"] == 'pods "gone" not found'
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{kube.url}/apis/batch/v1/namespaces/lab/cronjobs", timeout=10)
    assert err.value.code == 404


# --- Services and a custom resource (the PyTorchJob CRD), served where a test installs it -------------------------

def test_a_headless_service_is_defaulted_and_deleted_with_its_owner(batch: Batch, core: Core) -> None:
    owner = batch.create_namespaced_job("lab", job())
    made = raw(core.create_namespaced_service("lab", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "train", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train",
                                                            "uid": owner.metadata.uid}]},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"job-name": "train"}}},
        _preload_content=False))
    assert made["spec"]["clusterIP"] == "None" and made["spec"]["clusterIPs"] == ["None"]
    assert made["spec"]["type"] == "ClusterIP" and made["spec"]["sessionAffinity"] == "None"
    status, body = api_error(core.create_namespaced_service, "lab", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "9lives"}, "spec": {"selector": {"a": "b"}}})
    assert status == 422 and {c["field"] for c in body["details"]["causes"]} == {"metadata.name", "spec.ports"}
    batch.delete_namespaced_job("train", "lab", propagation_policy="Background")
    assert core.list_namespaced_service("lab").items == []


PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "ptj"},
              "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "ExitCode", "template": {
                  "spec": {"containers": [{"name": "pytorch", "image": "python:3.12-slim"}]}}}}}}


def test_the_pytorchjob_crd_is_served_only_once_installed(kube: Control, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    url = f"{kube.url}/apis/kubeflow.org/v1"
    with pytest.raises(urllib.error.HTTPError) as missing:
        http(url)
    assert missing.value.code == 404
    assert api_error(custom.list_namespaced_custom_object, "kubeflow.org", "v1", "lab", "pytorchjobs")[0] == 404
    assert "kubeflow.org" not in {g["name"] for g in http(f"{kube.url}/apis")[1]["groups"]}
    kube.crd("pytorchjobs")
    assert [r["name"] for r in http(url)[1]["resources"]] == ["pytorchjobs", "pytorchjobs/status"]
    made = custom.create_namespaced_custom_object("kubeflow.org", "v1", "lab", "pytorchjobs", PYTORCHJOB)
    assert made["metadata"]["uid"] and "status" not in made
    wrong = json.loads(json.dumps(PYTORCHJOB))
    wrong["metadata"]["name"] = "other"
    wrong["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = "main"
    status, body = api_error(custom.create_namespaced_custom_object, "kubeflow.org", "v1", "lab", "pytorchjobs", wrong)
    assert status == 422 and "no container named pytorch" in body["message"]
    wrong = json.loads(json.dumps(PYTORCHJOB))
    wrong["metadata"]["name"] = "strict"
    wrong["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["colour"] = "red"
    status, body = api_error(custom.create_namespaced_custom_object, "kubeflow.org", "v1", "lab", "pytorchjobs", wrong,
                             field_validation="Strict")
    assert status == 400 and "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].colour" in body["message"]
    kube.crd("pytorchjobs", on=False)
    assert api_error(custom.get_namespaced_custom_object, "kubeflow.org", "v1", "lab", "pytorchjobs", "ptj")[0] == 404


def test_the_reported_version_can_be_older(kube: Control, api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().minor == "34"
    kube.server_version(32)
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "32", "v1.32.0-kmock")


def test_the_job_controller_makes_one_pod_per_index(kube: Control, batch: Batch, core: Core) -> None:
    kube.controller(True)
    body = job()
    body["spec"].update(completionMode="Indexed", completions=3, parallelism=3)
    batch.create_namespaced_job("lab", body)
    pods = sorted(core.list_namespaced_pod("lab").items, key=lambda p: p.metadata.name)
    assert [p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods] == ["0", "1", "2"]
    assert [p.spec.hostname for p in pods] == ["train-0", "train-1", "train-2"]
