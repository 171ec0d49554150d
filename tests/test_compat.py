"""Projects, images and scripts made for the public toolbox keep working."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from kube import config, files, grid, operations, podspec, render
from kube.compat import translate_mode
from tests.helpers import ROOT, launch, make_project

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull}


def test_a_job_runs_in_an_image_laid_out_the_public_toolboxs_way(tmp_path):
    """Checkout as the working directory, no /workspace, no conda, a `git pull` that fails: the remote side of
    the command still runs, with the job's environment and `toolbox` importable from src/."""
    project = make_project(tmp_path / "project", """\
        conda_home: /nonexistent/conda
        model:
          check: {command: "[echo on the laptop](python src/check.py <x>)", hparam: {x: [7]}}
        """, dotenv="S3_BUCKET_NAME=example\n")
    job = operations.render_job(grid.build_runs(config.load(project))[0]).manifest
    container = job["spec"]["template"]["spec"]["containers"][0]
    checkout = tmp_path / "root" / "example"                 # WORKDIR of such an image
    (checkout / "src" / "toolbox").mkdir(parents=True)
    for name in ("__init__.py", "s3utils.py"):
        shutil.copy(ROOT / name, checkout / "src" / "toolbox" / name)
    shutil.copytree(ROOT / "s3sync", checkout / "src" / "toolbox" / "s3sync")
    (checkout / "src" / "check.py").write_text(
        "import os, sys\nfrom toolbox.s3utils import download_s3_path\n"
        "print('remote', sys.argv[1], os.environ['PYTHONUNBUFFERED'], os.environ['PYTHONIOENCODING'],"
        " os.environ['S3_BUCKET_NAME'], os.getcwd() == os.environ['EXPECTED_CWD'])\n")
    env = {**GIT, "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(tmp_path),
           "NODE_NAME": "node-a", "S3_BUCKET_NAME": "example", "EXPECTED_CWD": str(checkout)}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"],
                ["git", "remote", "add", "origin", str(tmp_path / "gone")],
                ["git", "branch", "--set-upstream-to=origin/main"]):
        subprocess.run(cmd, cwd=checkout, env=env, capture_output=True)
    result = subprocess.run(container["command"], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "remote 7 1 UTF-8 example True"
    assert "git pull failed" in result.stderr and "no conda at" in result.stderr


@pytest.mark.parametrize("argv, expected", [
    (["--mode", "job"], ["job"]),
    (["--mode", "job", "--overwrite", "True"], ["job", "--overwrite"]),
    (["--mode=job", "--overwrite=False"], ["job"]),
    (["--mode", "local-first"], ["local", "--first"]),
    (["--mode", "pod", "--pod_name", "mine"], ["pod", "--name", "mine"]),
    (["--mode", "copy_files", "--pod_name", "mine"], ["copy", "--pod", "mine"]),
    (["--mode", "dryrun", "--only", "model=a"], ["dryrun", "--only", "model=a"]),
])
def test_older_mode_flags_map_to_commands(argv, expected):
    assert translate_mode(argv) == expected


def test_mode_flags_run_for_real_and_a_bad_mode_is_a_usage_error(tmp_path):
    make_project(tmp_path, "model: {m: {command: 'echo hi <a>', hparam: {a: [1, 2]}}}\n")
    result = launch(tmp_path, "--mode", "local-dryrun")
    assert result.returncode == 0 and result.stdout.splitlines() == ["echo hi 1", "echo hi 2"]
    result = launch(tmp_path, "--mode", "pod-dryrun", "--pod_name", "mine")
    assert result.returncode == 0 and "name: mine" in result.stdout
    result = launch(tmp_path, "--mode", "kube")
    assert result.returncode == 2 and "--mode: expected one of" in result.stderr


def test_file_takes_folders_and_null(tmp_path):
    make_project(tmp_path, "file: [src]\nmodel: {m: {command: echo}}\n")
    (tmp_path / "src" / "sub" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("a\n")
    (tmp_path / "src" / "sub" / "b.txt").write_text("b\n")
    (tmp_path / "src" / "sub" / "__pycache__" / "c.pyc").write_text("c\n")
    cfg = config.load(tmp_path)
    cm = render.files_configmap(cfg.project, files.read(cfg.project, cfg.base_settings.file))
    assert sorted(cm["data"].values()) == ["a\n", "b\n"]
    script = operations.render_job(grid.build_runs(cfg)[0]).manifest["spec"]["template"]["spec"]["containers"][0][
        "command"][2]
    assert "src/sub/b.txt" in script and "c.pyc" not in script
    make_project(tmp_path, "file: null\nmodel: {m: {command: echo}}\n")
    cfg = config.load(tmp_path)
    assert cfg.base_settings.file == () and render.extras_for(cfg.project, files.read(cfg.project, cfg.base_settings.file))[1] == []


def test_name_placeholder_works_in_env_and_image(tmp_path):
    make_project(tmp_path, """\
        model:
          m:
            command: echo
            env: {RUN_NAME: <name>, LR: <lr>}
            image: registry.example.org/lab/img:<lr>
            hparam: {lr: [0.1]}
        """)
    run = grid.build_runs(config.load(tmp_path))[0]
    assert run.settings.env == {"RUN_NAME": run.name, "LR": "0.1"}
    assert run.settings.image == "registry.example.org/lab/img:0.1"


def test_laptop_gpu_choice_stays_local_with_a_note(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo}}\n", dotenv="CUDA_VISIBLE_DEVICES=1\nTOKEN=x\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 0
    assert "note: CUDA_VISIBLE_DEVICES from .env stays on this machine" in result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert "CUDA_VISIBLE_DEVICES" not in result.stdout and len(docs) == 1
    secret = render.env_secret(config.load(tmp_path).project)
    assert list(secret["data"]) == ["TOKEN"]


def test_the_readme_migration_commands_switch_url_and_branch(tmp_path):
    """The commands printed in README's migration section, run as printed (the URL pointed at a local copy)."""
    import re
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Migrating from the public toolbox"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.file.allow",
           "GIT_CONFIG_VALUE_0": "always", "HOME": str(tmp_path)}

    def git(*args, cwd):
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout

    old, new, project = tmp_path / "old", tmp_path / "new", tmp_path / "project"
    for repo, branch, marker in ((old, "master", "public"), (new, "main", "kube-toolbox")):
        repo.mkdir()
        git("init", "-q", "-b", branch, cwd=repo)
        (repo / "which").write_text(marker + "\n")
        git("add", "which", cwd=repo)
        git("commit", "-qm", marker, cwd=repo)
    new_head = git("rev-parse", "HEAD", cwd=new).strip()
    project.mkdir()
    git("init", "-q", "-b", "main", cwd=project)
    git("submodule", "add", "-q", "-b", "master", str(old), "src/toolbox", cwd=project)
    git("commit", "-qm", "public toolbox", cwd=project)
    script = block.replace("https://github.com/your-lab/kube-toolbox.git", str(new))
    script = "\n".join(line for line in script.splitlines() if not line.startswith("make setup"))
    done = subprocess.run(["bash", "-euc", script], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (project / "src" / "toolbox" / "which").read_text() == "kube-toolbox\n"
    assert git("rev-parse", "HEAD", cwd=project / "src" / "toolbox").strip() == new_head
    assert "branch = main" in (project / ".gitmodules").read_text()
    (new / "which").write_text("kube-toolbox 2\n")                 # later: update --remote follows the new branch
    git("commit", "-qam", "2", cwd=new)
    git("submodule", "update", "--remote", "src/toolbox", cwd=project)
    assert (project / "src" / "toolbox" / "which").read_text() == "kube-toolbox 2\n"
