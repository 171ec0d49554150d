"""Rendering: every manifest validates against the Kubernetes schema, and each config feature lands where it should."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kube import config, files, grid, operations, podspec, render
from kube.errors import ConfigError
from tests.helpers import KUBE, ROOT, launch, make_project
from tests.manifest_checks import validate_manifest

GOLDEN = Path(__file__).parent / "golden"
# Regenerate: UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render.py -k golden


def runs_for(root: Path, only: str | None = None):
    cfg = config.load(root)
    return cfg, grid.build_runs(cfg, only)


def job_of(root: Path, index: int = 0) -> dict:
    _, runs = runs_for(root)
    return operations.render_job(runs[index]).manifest


def container(obj: dict) -> dict:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else obj["spec"]
    return spec["containers"][0]


def test_quickstart_jobs_and_pod_validate(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    cfg, runs = runs_for(root)
    for run in runs:
        job = operations.render_job(run).manifest
        validate_manifest(job)
        assert job["metadata"]["labels"]["user"] == "my-user"
        assert job["spec"]["template"]["metadata"]["labels"]["project"] == "example"
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        script = container(job)["command"][2]
        assert "\n(\n" + run.remote_command + "\n) &\n" in script and script.endswith('exit "$kube_toolbox_status"\n')
        assert "affinity" not in job["spec"]["template"]["spec"]
    pod = render.render_pod(cfg.project, cfg.base_settings)[0].manifest
    validate_manifest(pod)
    assert pod["metadata"]["name"] == "my-user-example-interactive-pod"
    assert container(pod)["command"][2].endswith("sleep infinity\n")


def test_golden_quickstart_job(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    _, runs = runs_for(root)
    text = operations.render_job(runs[0]).text
    golden = GOLDEN / "quickstart-job.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


FEATURES = """\
limit_ratio: 1.2
ephemeral_storage: 0
backoff_limit: 2
ttl_seconds_after_finished: 3600
tolerations: [nautilus.io/hardware]
volumes: {my-pvc: /data, scratch: /scratch}
env: {WANDB_MODE: offline, TRICKY: "a: b\\n- [c] {d} # e"}
model:
  gpu:
    command: python train.py --lr <lr>
    hparam: {lr: [0.1]}
    gpu_count: 2
    cpu_count: 2.5
    memory: 12.5
    gpu_whitelist: [NVIDIA-A10, NVIDIA-GeForce-RTX-3090]
    hostname_blacklist: [bad-node-1]
  a100:
    command: python big.py
    special_gpu: a100
    gpu_whitelist: [NVIDIA-A10]
dataset:
  d: {}
"""


def test_every_feature_lands_and_validates(tmp_path):
    make_project(tmp_path, FEATURES)
    job = job_of(tmp_path, 0)
    validate_manifest(job)
    spec = job["spec"]["template"]["spec"]
    res = container(job)["resources"]
    assert res["requests"] == {"cpu": "2500m", "memory": "12800Mi", "nvidia.com/gpu": "2"}
    assert res["limits"] == {"cpu": "3", "memory": "15Gi", "nvidia.com/gpu": "2"}
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A10", "NVIDIA-GeForce-RTX-3090"]},
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["bad-node-1"]}]}]
    assert spec["tolerations"] == [{"key": "nautilus.io/hardware", "operator": "Exists", "effect": "NoSchedule"}]
    claims = {v["persistentVolumeClaim"]["claimName"]: v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    mounts = {m["name"]: m["mountPath"] for m in container(job)["volumeMounts"]}
    assert {mounts[claims["my-pvc"]], mounts[claims["scratch"]]} == {"/data", "/scratch"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"] and mounts["dshm"] == "/dev/shm"
    env = {e["name"]: e for e in container(job)["env"]}
    assert env["TRICKY"]["value"] == "a: b\n- [c] {d} # e"
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert spec["imagePullSecrets"] == [{"name": "example-read-registry"}]
    assert container(job)["image"] == "gitlab-registry.nrp-nautilus.io/alice/example:latest"


def test_special_gpu_ignores_gpu_lists(tmp_path):
    make_project(tmp_path, FEATURES)
    job = job_of(tmp_path, 1)
    validate_manifest(job)
    res = container(job)["resources"]
    assert res["requests"]["nvidia.com/a100"] == "1" and "nvidia.com/gpu" not in res["requests"]
    assert "affinity" not in job["spec"]["template"]["spec"]


def test_dotenv_goes_to_a_secret_never_into_the_job(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo}}\ndataset: {d: {}}\n",
                 dotenv="AWS_SECRET_ACCESS_KEY=sup3rs3cret\nS3_BUCKET_NAME=bucket\n")
    cfg, runs = runs_for(tmp_path)
    _, objects = render.extras_for(cfg.project, files.read(cfg.project, runs[0].settings.file))
    job = operations.render_job(runs[0]).manifest
    secret = next(o for o in objects if o["kind"] == "Secret")
    validate_manifest(secret)
    assert "sup3rs3cret" not in json.dumps(job)
    assert container(job)["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert secret["metadata"]["name"].startswith("example-env-")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 0, result.stderr
    assert "sup3rs3cret" not in result.stdout and "AWS_SECRET_ACCESS_KEY" not in result.stdout
    assert f"# Secret {secret['metadata']['name']} (the .env values) is not printed" in result.stdout
    written = "".join(p.read_text() for p in (tmp_path / "build").rglob("*.yaml"))
    assert "kind: Job" in written and "sup3rs3cret" not in written


def test_secret_name_follows_content(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo}}\ndataset: {d: {}}\n", dotenv="A=1\n")
    first = render.env_secret(config.load(tmp_path).project)["metadata"]["name"]
    (tmp_path / ".env").write_text("A=2\n")
    assert render.env_secret(config.load(tmp_path).project)["metadata"]["name"] != first


def test_files_travel_in_a_configmap(tmp_path):
    make_project(tmp_path, "file: [src/temp.py]\nmodel: {m: {command: python src/temp.py}}\ndataset: {d: {}}\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "temp.py").write_text("print('patched')\n")
    cfg, runs = runs_for(tmp_path)
    _, objects = render.extras_for(cfg.project, files.read(cfg.project, runs[0].settings.file))
    job = operations.render_job(runs[0]).manifest
    validate_manifest(job)
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    validate_manifest(cm)
    assert list(cm["data"].values()) == ["print('patched')\n"]
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "files")
    assert volume["configMap"] == {"name": cm["metadata"]["name"], "items": [{"key": "f0", "path": "src/temp.py"}]}
    script = container(job)["command"][2]
    assert "install -D -m 644 /etc/toolbox/files/src/temp.py src/temp.py" in script
    assert script.index("install -D") < script.index("python src/temp.py")


@pytest.mark.parametrize("setup, message", [
    pytest.param(lambda root: None, "no such file or folder: src/missing.py", id="missing"),
    pytest.param(lambda root: (root / "src").mkdir() or (root / "src" / "missing.py").write_bytes(b"\xff\xfe\x00"),
                 "is binary", id="binary"),
    pytest.param(lambda root: (root / "src").mkdir() or (root / "src" / "missing.py").write_text("x" * 1_000_000),
                 "expected at most 900 KiB", id="too-large"),
])
def test_bad_files_fail_before_anything(tmp_path, setup, message):
    make_project(tmp_path, "file: [src/missing.py]\nmodel: {m: {command: echo}}\ndataset: {d: {}}\n")
    setup(tmp_path)
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "build").exists()


def test_file_outside_the_project_is_refused(tmp_path):
    make_project(tmp_path, "file: [../etc/passwd]\nmodel: {m: {command: echo}}\ndataset: {d: {}}\n")
    with pytest.raises(ConfigError, match="expected a path inside the project"):
        files.read(config.load(tmp_path).project, ["../etc/passwd"])


def test_project_template_override(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo}}\ndataset: {d: {}}\n")
    (tmp_path / "config" / "templates").mkdir()
    text = (ROOT / "templates" / "job.yaml.j2").read_text().replace("backoffLimit: {{ backoff_limit | y }}",
                                                                     "backoffLimit: 7")
    (tmp_path / "config" / "templates" / "job.yaml.j2").write_text(text)
    assert job_of(tmp_path)["spec"]["backoffLimit"] == 7


def test_startup_script_replaced_by_setting(tmp_path):
    make_project(tmp_path, "startup_script: source /opt/env.sh\nmodel: {m: {command: echo hi}}\ndataset: {d: {}}\n")
    job = job_of(tmp_path)
    script = container(job)["command"][2]
    assert script.startswith(f"source /opt/env.sh\nexport RESULTS_DIR=\"$PWD\"/results/{job['metadata']['name']}; "
                             f"mkdir -p \"$RESULTS_DIR\" 2>/dev/null || true\nset -m\n(\necho hi\n) &\n")
    assert "git " not in script and "conda" not in script            # nothing of the default startup


def test_default_startup_pulls_and_activates(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo hi}}\ndataset: {d: {}}\n",
                 kube=KUBE + "ssh_host: git.example.org\nssh_port: 2222\nconda_home: /opt/mamba\nconda_env_name: exp\n")
    script = container(job_of(tmp_path))["command"][2]
    assert "cd " not in script.split("git pull")[0] and "git pull --ff-only" in script
    assert "git.example.org 2222 /etc/toolbox/ssh/id_rsa" in script
    assert ". /opt/mamba/etc/profile.d/conda.sh && conda activate exp" in script


def test_server_side_rules_checked_before_any_render():
    with pytest.raises(ConfigError, match="metadata.labels.user"):
        render.check_meta("Job", "ok", {"user": "x" * 64})
    with pytest.raises(ConfigError, match="metadata.name"):
        render.check_meta("Job", "Upper", {"user": "x"})
    with pytest.raises(ConfigError, match="quantity"):
        podspec.check_quantities({"limits": {"cpu": 2}}, "Job 'ok'")
    render.check_meta("Job", "ok", {"user": "x"})
    podspec.check_quantities({"limits": {"cpu": "2500m", "memory": "12800Mi"}}, "Job 'ok'")


def test_dotenv_wins_over_env_in_jobs_as_it_does_locally(tmp_path):
    make_project(tmp_path, "env: {MODE: from-config, OTHER: kept}\nmodel: {m: {command: echo}}\n",
                 dotenv="MODE=from-dotenv\n")
    env = {e["name"]: e.get("value") for e in container(job_of(tmp_path))["env"]}
    assert "MODE" not in env and env["OTHER"] == "kept"          # MODE arrives through the .env Secret


def test_secret_names_differ_between_users_with_the_same_dotenv(tmp_path):
    a = make_project(tmp_path / "a", "model: {m: {command: echo}}\n", dotenv="A=1\n")
    b = make_project(tmp_path / "b", "model: {m: {command: echo}}\n", kube=KUBE.replace("alice", "bob"),
                     dotenv="A=1\n")
    names = {render.env_secret(config.load(root).project)["metadata"]["name"] for root in (a, b)}
    assert len(names) == 2
