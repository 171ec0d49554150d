"""The reference quick start done literally: a new repo, the toolbox as a git submodule, two symlinks, make."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_ALLOW_PROTOCOL": "file"}

KUBE_YAML = """\
project_name: example
namespace: lab
user: alice
registry_host: gitlab-registry.nrp-nautilus.io
ssh_host: gitlab-ssh.nrp-nautilus.io
ssh_port: 30622
conda_home: /nonexistent/conda
image: gitlab-registry.nrp-nautilus.io/zihaozhou/example
"""


def sh(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed: {result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("quickstart")
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # The toolbox as a remote would serve it: the working tree (tracked and new files) committed in its own repo.
    upstream = tmp / "toolbox-upstream"
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT, env).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (upstream / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, upstream / rel)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "toolbox"]):
        sh(cmd, upstream, env)
    # Step 1 of the reference, literally.
    example = tmp / "example"
    (example / "src").mkdir(parents=True)
    (example / "data").mkdir()
    sh(["git", "init", "-q"], example, env)
    sh(["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "src/toolbox"],
       example, env)
    sh(["ln", "-s", "src/toolbox/launch.py", "."], example, env)
    sh(["ln", "-s", "src/toolbox/Makefile", "."], example, env)
    # Step 2, literally.
    steps = [
        'echo "1,2,3" > data/1.txt',
        'echo "4,5,6" > data/2.txt',
        """echo "import sys; print(sum(map(float, open(sys.argv[1]).read().split(','))) / 3)" > src/avg.py""",
        """echo "import sys, statistics; print(statistics.median(map(float, """
        """open(sys.argv[1]).read().strip().split(','))))" > src/med.py""",
    ]
    for step in steps:
        sh(["bash", "-c", step], example, env)
    (example / ".env").write_text("S3_BUCKET_NAME=example\nS3_ENDPOINT_URL=https://s3.example.org\n")
    (example / "config").mkdir()
    (example / "config" / "kube.yaml").write_text(KUBE_YAML)
    launch_yaml = (ROOT / "examples" / "quickstart" / "config" / "launch.yaml").read_text()
    (example / "config" / "launch.yaml").write_text(launch_yaml)
    return example, env


def test_make_local_prints_the_four_runs_in_reference_order(project):
    example, env = project
    result = sh(["make", "local"], example, env)
    values = [line for line in result.stdout.splitlines() if line in ("2.0", "5.0")]
    assert values == ["2.0", "2.0", "5.0", "5.0"]
    commands = [line for line in result.stdout.splitlines() if line.startswith("python src/")]
    assert commands == ["python src/avg.py data/1.txt", "python src/med.py data/1.txt",
                        "python src/avg.py data/2.txt", "python src/med.py data/2.txt"]
    assert 'Running {\n    "_fn": "data/1.txt"\n} ... \n\npython src/avg.py data/1.txt\n\n2.0\n' in result.stdout


def test_make_with_no_target_lists_documented_targets(project):
    example, env = project
    result = sh(["make"], example, env)
    for target in ("local", "local-dryrun", "local-first", "job", "pod", "delete", "upload", "download",
                   "interactive"):
        assert f"make {target} " in result.stdout


def test_make_selection_and_first(project):
    example, env = project
    result = sh(["make", "local", "only=model=median dataset=data2"], example, env)
    assert result.stdout.count("Running ") == 1 and "\n5.0\n" in result.stdout
    assert sh(["make", "local-first"], example, env).stdout.count("Running ") == 1
    dry = sh(["make", "local-dryrun"], example, env).stdout.splitlines()
    assert dry[0] == "python src/avg.py data/1.txt" and len(dry) == 4


def test_bad_config_through_make_exits_2(project, tmp_path):
    example, env = project
    launch_file = example / "config" / "launch.yaml"
    good = launch_file.read_text()
    try:
        launch_file.write_text(good.replace("gpu_count: 0", "gpu_count: many", 1))
        result = sh(["make", "local"], example, env, check=False)
        assert result.returncode == 2
        assert "config/launch.yaml: model.average.gpu_count: expected a whole number" in result.stderr
    finally:
        launch_file.write_text(good)


def test_training_code_imports_the_toolbox_in_local_runs(project):
    example, env = project
    launch_file = example / "config" / "launch.yaml"
    good = launch_file.read_text()
    try:
        launch_file.write_text("model:\n  m:\n    command: python -c 'import toolbox.s3utils as s; "
                               "print(s.__name__, s.__file__)'\ndataset: {d: {}}\n")
        result = sh(["make", "local"], example, env)
        assert f"toolbox.s3utils {example}/src/toolbox/s3utils.py" in result.stdout
    finally:
        launch_file.write_text(good)


def test_make_refuses_inside_the_toolbox_checkout(project):
    example, env = project
    result = sh(["make", "local"], example / "src" / "toolbox", env, check=False)
    assert result.returncode != 0
    assert "this is the toolbox checkout itself" in result.stderr
