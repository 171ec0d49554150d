"""The quick start done literally: README.md's Install and Quick start blocks run as printed (a new repo, the
toolbox as a git submodule, two symlinks, `make setup` into a fresh venv, `make local`), plus the same project
built step by step for the Makefile's behaviour."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

README = ROOT / "README.md"

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
def upstream(tmp_path_factory) -> Path:
    """The toolbox as a remote would serve it: the working tree (tracked and new files) committed in its own repo."""
    env = {**os.environ, **GIT_ENV}
    repo = tmp_path_factory.mktemp("upstream") / "kube-toolbox"
    files = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT, env).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "toolbox"]):
        sh(cmd, repo, env)
    return repo


# --- README.md, as printed -------------------------------------------------------------------------------------

def readme_section(title: str, until: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    return text[start:text.index(f"\n## {until}\n", start)]


def readme_quickstart() -> list[str]:
    """The ```bash blocks of the Install and Quick start sections, in order: what a newcomer types."""
    section = readme_section("Install", "Your first jobs on the cluster")
    return re.findall(r"^```bash\n(.*?)^```$", section, re.M | re.S)


def readme_outputs() -> list[str]:
    """The ```text blocks of the Quick start: the output it promises."""
    return re.findall(r"^```text\n(.*?)^```$", readme_section("Quick start", "Your first jobs on the cluster"),
                      re.M | re.S)


def test_readme_quickstart_runs_as_printed(upstream: Path, tmp_path: Path):
    blocks = readme_quickstart()
    script = "\n".join(blocks)
    for step in ("git init", "git submodule add", "ln -s src/toolbox/launch.py .", "ln -s src/toolbox/Makefile .",
                 "python3 -m venv .venv", "make setup", "config/kube.yaml", "config/launch.yaml", "make local"):
        assert step in script, f"the README's quick start lost `{step}`"
    # The one thing a reader replaces: the toolbox's address, a URL-shaped placeholder explained below it.
    urls = re.findall(r"git submodule add (\S+) src/toolbox", script)
    assert len(urls) == 1 and urls[0].startswith("https://") and urls[0] in readme_section("Install", "Quick start")
    script = script.replace(urls[0], str(upstream))
    # A newcomer's shell: `python3` is a Python >= 3.10 without the toolbox's packages in the venv it makes.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "CONDA_EXE", "CONDA_PREFIX", "PYTHONPATH", "PYTHON", "MAKEFLAGS")}
    env.update(GIT_ENV, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", HOME=os.environ.get("HOME", str(tmp_path)))
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"README quick start failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    example = tmp_path / "example"
    out = result.stdout
    # make setup: the project's venv, found as local runs find it, and .gitignore.
    assert f"Python environment: project venv ({example}/.venv)" in out
    assert "Installed: yaml, dotenv, jinja2, kubernetes, boto3, tqdm import in" in out
    assert "Warning" not in result.stderr and "warning:" not in result.stderr, result.stderr[-2000:]
    assert "include-system-site-packages = false" in (example / ".venv" / "pyvenv.cfg").read_text()
    assert (example / ".gitignore").read_text().splitlines()[-2:] == [".env", "build/"]
    status = sh(["git", "status", "--porcelain", "--ignored"], example, env).stdout.splitlines()
    assert "!! .env" in status and "?? .env" not in status
    # make local: the four runs, in order, with the values the README shows; then the selection.
    values = [line for line in out.splitlines() if line in ("2.0", "5.0")]
    assert values == ["2.0", "2.0", "5.0", "5.0", "5.0"]
    local, runs = readme_outputs()
    promised = local.split("\n", 1)[1]                      # its first line names the reader's own venv
    assert f"Python environment: project venv ({example}/.venv)\n{promised}" in out
    # make runs: the names the README prints are the names the toolbox gives.
    printed = [line.rstrip() for line in out.splitlines()]
    for line in runs.strip().splitlines():
        assert line in printed, f"README promises `{line}` from make runs"


# --- the same project step by step, for the Makefile's behaviour ------------------------------------------------

@pytest.fixture(scope="module")
def project(upstream: Path, tmp_path_factory) -> tuple[Path, dict]:
    """The quick start's steps with the test's own interpreter as PYTHON (it has the packages: no setup)."""
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    example = tmp_path_factory.mktemp("quickstart") / "example"
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
