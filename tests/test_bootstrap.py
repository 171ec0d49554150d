"""The first hour: `make setup`, `.gitignore`, `.env` exported by make, the Makefile's short names, project.mk,
usage errors and the missing-package line, all through real `make` and real interpreters."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kube import bootstrap
from tests.helpers import ROOT

PRINTENV_LAUNCH = "model: {show: {command: printenv FOO}}\ndataset: {d: {}}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project as the README builds it (the Makefile and launch.py symlinked from the toolbox)."""
    root = tmp_path / "proj"
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: example\nnamespace: lab\nuser: alice\n")
    (root / "config" / "launch.yaml").write_text("model: {m: {command: echo hi}}\ndataset: {d: {}}\n")
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)
    return root


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """An interpreter without the toolbox's packages (a venv without pip: quick to make)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import yaml"], capture_output=True).returncode != 0
    return str(python)


def make(root: Path, *args: str, env: dict | None = None, python: str = sys.executable,
         timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("CONDA_EXE", "VIRTUAL_ENV", "MAKEFLAGS")}
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={python}"], cwd=root,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def toolbox_lines(stderr: str) -> list[str]:
    """stderr without make's own `make: *** [...] Error N` line."""
    return [line for line in stderr.splitlines() if not line.startswith("make: ***")]


# --- .gitignore ------------------------------------------------------------------------------------------------

GITIGNORE_CASES = {
    "missing file": (None, [".env", "build/"], ".env\nbuild/\n"),
    "empty file": ("", [".env", "build/"], ".env\nbuild/\n"),
    "no final newline": ("*.pyc", [".env", "build/"], "*.pyc\n.env\nbuild/\n"),
    "both present": ("build/\n.env\n", [], "build/\n.env\n"),
    "anchored and dirless": ("/.env\n/build\n", [], "/.env\n/build\n"),
    "wildcards": (".env*\nbuil?/\n", [], ".env*\nbuil?/\n"),
    "undone by a negation": (".env\n!.env\nbuild/\n", [".env"], ".env\n!.env\nbuild/\n.env\n"),
    "a file pattern does not cover the folder": ("build.txt\n.env.example\n", [".env", "build/"],
                                                 "build.txt\n.env.example\n.env\nbuild/\n"),
    "dir-only pattern does not cover the .env file": (".env/\nbuild/\n", [".env"], ".env/\nbuild/\n.env\n"),
    "comment is not a pattern": ("# .env\n# build/\n", [".env", "build/"], "# .env\n# build/\n.env\nbuild/\n"),
    "CRLF kept": ("*.pyc\r\n", [".env", "build/"], "*.pyc\r\n.env\r\nbuild/\r\n"),
}


@pytest.mark.parametrize("case", GITIGNORE_CASES, ids=list(GITIGNORE_CASES))
def test_gitignore_gets_env_and_build_once(tmp_path: Path, case: str):
    before, added, after = GITIGNORE_CASES[case]
    path = tmp_path / ".gitignore"
    if before is not None:
        path.write_bytes(before.encode())
    assert bootstrap.ensure_gitignore(tmp_path) == added
    assert path.read_bytes().decode() == after
    assert bootstrap.ensure_gitignore(tmp_path) == []            # idempotent: the second run adds nothing
    assert path.read_bytes().decode() == after


def test_gitignore_result_is_what_git_ignores(tmp_path: Path):
    """The lines written really make git ignore .env and build/ (and nothing else of the project)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.pyc")
    bootstrap.ensure_gitignore(tmp_path)
    check = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", ".env", "build/x", "src/a.py"],
                           capture_output=True, text=True, env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull})
    assert check.stdout.split() == [".env", "build/x"]


def test_tracked_env_is_detected(tmp_path: Path):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e.org"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    (tmp_path / ".env").write_text("A=1\n")
    assert not bootstrap.tracked_by_git(tmp_path, ".env")
    subprocess.run(["git", "-C", str(tmp_path), "add", ".env"], check=True, env=env)
    assert bootstrap.tracked_by_git(tmp_path, ".env")


# --- make setup --------------------------------------------------------------------------------------------------

def _old_pythons() -> list[str]:
    found = glob.glob(os.path.expanduser("~/.pyenv/versions/3.[6-9].*/bin/python3")) + \
        glob.glob("/usr/bin/python3.[6-9]") + [p for p in (shutil.which("python3.9"), shutil.which("python3.8")) if p]
    return sorted({p for p in found if subprocess.run([p, "-c", "import sys; assert sys.version_info < (3, 10)"],
                                                       capture_output=True).returncode == 0})


def test_setup_refuses_an_old_python_in_one_line(project: Path):
    """make's own PYTHON too old: one line, nothing done. Real old interpreters are tried where the machine has
    some (pyenv, python3.9...); the check itself is pinned either way."""
    assert bootstrap.version_problem((3, 9, 18), "/opt/py39/bin/python3") == (
        "Kube Toolbox needs Python 3.10 or newer; /opt/py39/bin/python3 is Python 3.9: " + bootstrap.RUN_WITH_NEWER)
    assert bootstrap.version_problem((3, 10, 0), "/x") is None
    for old in _old_pythons():
        result = make(project, "setup", python=old)
        assert result.returncode == 2, result.stderr
        lines = toolbox_lines(result.stderr)
        assert len(lines) == 1 and "needs Python 3.10 or newer" in lines[0] and old in lines[0], result.stderr
        assert not (project / ".gitignore").exists()          # nothing was done


def fake_interpreter(venv: Path, version: tuple[int, int], managed: bool) -> Path:
    """A project `.venv/bin/python` that answers make setup's probe like a Python of `version` would."""
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\nprintf '%s\\n' '{version[0]} {version[1]} 1 {int(managed)} {venv}' "
                      f"'{python}'\n")
    python.chmod(0o755)
    return python


def test_setup_finds_the_conda_env_as_local_runs_do(project: Path, bare_python: str, tmp_path: Path):
    """conda_home/envs/<project_name> wins, with or without the toolbox's packages in PYTHON; an env without
    pip is a one-line error before anything is installed."""
    conda = tmp_path / "conda"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(conda / "envs" / "example")], check=True)
    (project / "config" / "kube.yaml").write_text(
        f"project_name: example   # the env name\nnamespace: lab\nuser: alice\nconda_home: '{conda}'\n")
    for python in (sys.executable, bare_python):
        result = make(project, "setup", python=python)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"Python environment: conda env 'example' ({conda}/envs/example)" in result.stdout
        assert toolbox_lines(result.stderr) == [
            f"error: {conda}/envs/example/bin/python has no pip: run `{conda}/envs/example/bin/python -m "
            f"ensurepip --upgrade` (or install pip into that environment), then make setup"]
    local = make(project, "local", python=sys.executable)       # the same environment for the commands
    assert f"Python environment: conda env 'example' ({conda}/envs/example)" in local.stdout


def test_setup_refuses_a_project_environment_with_an_old_python(project: Path, tmp_path: Path):
    old_env = tmp_path / "proj" / ".venv"
    fake_interpreter(old_env, (3, 9), managed=False)
    result = make(project, "setup")
    assert result.returncode == 2
    assert f"Python environment: project venv ({old_env})" in result.stdout
    lines = toolbox_lines(result.stderr)
    assert len(lines) == 1 and "(project venv) is Python 3.9" in lines[0], result.stderr
    assert lines[0].endswith("make that environment with Python 3.10 or newer, then make setup")
    assert not (project / ".gitignore").exists()


def test_setup_refuses_an_externally_managed_python(project: Path, tmp_path: Path):
    """An interpreter the OS manages (PEP 668) gets one line saying how to make a venv, not pip's page."""
    fake_interpreter(tmp_path / "proj" / ".venv", (3, 11), managed=True)
    result = make(project, "setup")
    assert result.returncode == 2
    lines = toolbox_lines(result.stderr)
    assert len(lines) == 1 and "externally managed" in lines[0] and "python3 -m venv .venv" in lines[0]
    assert not (project / ".gitignore").exists()
    shutil.rmtree(tmp_path / "proj" / ".venv")
    for system in _managed_system_pythons():              # the real one too, where the machine has it
        result = make(project, "setup", python=system)
        assert result.returncode == 2
        assert "Python environment: current interpreter" in result.stdout
        lines = toolbox_lines(result.stderr)
        assert len(lines) == 1 and "python3 -m venv .venv" in lines[0], result.stderr


def _managed_system_pythons() -> list[str]:
    code = ("import sys, sysconfig, os; sys.exit(not (sys.prefix == sys.base_prefix and "
            "os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))")
    return [p for p in ("/usr/bin/python3",) if os.path.exists(p) and
            subprocess.run([p, "-c", code], capture_output=True).returncode == 0]


def test_setup_usage_errors_are_one_line(project: Path):
    result = make(project, "setup", "extras=s5cmd;rm -rf x")
    assert result.returncode == 2 and toolbox_lines(result.stderr) == [
        "error: extras: expected names separated by commas (e.g. extras=s5cmd), got 's5cmd;rm -rf x'"]
    direct = subprocess.run([sys.executable, str(ROOT / "kube" / "bootstrap.py"), "instal"], capture_output=True,
                            text=True)
    assert direct.returncode == 2 and len(direct.stderr.splitlines()) == 1 and "usage:" in direct.stderr


def test_launch_setup_is_the_same_command(project: Path, bare_python: str):
    """`launch.py setup` reaches kube/bootstrap.py before importing any of the toolbox's packages."""
    for python in (sys.executable, bare_python):
        result = subprocess.run([python, "launch.py", "setup", "--extras", "a b"], cwd=project,
                                capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.splitlines() == ["error: extras: expected names separated by commas (e.g. "
                                              "extras=s5cmd), got 'a b'"]


# --- the missing-package line, usage errors --------------------------------------------------------------------

def test_make_local_without_the_packages_is_one_line_naming_make_setup(project: Path, bare_python: str):
    (project / ".env").write_text("A=1\n")                     # .env is read with the same bare PYTHON
    result = make(project, "local", python=bare_python)
    assert result.returncode == 2
    lines = toolbox_lines(result.stderr)
    assert len(lines) == 1 and "make setup" in lines[0] and bare_python in lines[0], result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].endswith("Error 2")  # make names the toolbox's own status


@pytest.mark.parametrize("target, usage", [("logs", "usage: make logs name=JOB"),
                                           ("forward", "usage: make forward name=JOB"),
                                           ("copy", "usage: make copy pod=NAME")])
def test_target_without_its_argument_is_a_one_line_usage_error(project: Path, target: str, usage: str):
    result = make(project, target)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and usage in result.stderr, result.stderr
    assert result.stdout == ""


def test_logs_with_a_name_reaches_the_launcher(project: Path):
    """The usage check lets a named call through: it fails later, at the cluster, not at the usage line."""
    result = make(project, "logs", "name=model=m", env={"KUBECONFIG": str(project / "missing-kubeconfig"),
                                                         "KUBERNETES_SERVICE_HOST": ""})
    lines = toolbox_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "usage:" not in lines[0]


# --- Makefile: short names, project.mk, .env ---------------------------------------------------------------------

@pytest.mark.parametrize("short, long", [("up", "upload"), ("down", "download"), ("ls", "list"), ("rm", "remove"),
                                         ("fd", "find"), ("mn", "monitor")])
def test_short_names_run_the_same_recipe(project: Path, short: str, long: str):
    expected = make(project, "-n", long, "file=data/")
    got = make(project, "-n", short, "file=data/")
    assert expected.returncode == 0 and expected.stdout.strip()
    assert got.stdout == expected.stdout
    assert re.search(rf"s3utils\.py' {long} .*-- 'data/'$", got.stdout.replace("\\\n\t", ""), re.S)


def test_short_name_really_runs_s3utils(project: Path):
    env = {"S3_BUCKET_NAME": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": ""}
    result = make(project, "ls", "file=data/", env=env)
    assert result.returncode == 2 and "S3_BUCKET_NAME" in result.stderr


def test_project_mk_adds_documented_targets(project: Path):
    (project / "project.mk").write_text("hello: ## greet from the project\n\t@echo hello from $(KT_TOOLBOX)\n")
    assert make(project, "hello").stdout == f"hello from {ROOT}\n"
    listing = make(project).stdout
    assert "Project targets (project.mk):" in listing
    assert "make hello          greet from the project" in listing
    assert "make up             short for upload" in listing


def test_project_mk_may_choose_the_interpreter(project: Path, bare_python: str):
    """PYTHON set once in project.mk is the toolbox's interpreter for every target (the command line still wins)."""
    (project / "project.mk").write_text(f"PYTHON = {bare_python}\n")
    result = subprocess.run(["make", "--no-print-directory", "local"], cwd=project, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHON"})
    assert result.returncode == 2 and bare_python in result.stderr


HOSTILE_ENV = r"""
PLAIN=value
DOLLAR=pa$word$$ and $(shell touch pwned) ${UNDEFINED_X:-dflt}
HASH=a#b
COMMENT=kept # dropped
QUOTED="a b # not a comment"
SINGLE='$HOME stays'
BACKSLASH=ends\
LEADING="   three blanks"
export EXPORTED=yes
MULTI='line1
endef
  line3\
last'
EMPTY=
NOVALUE
PERCENT=%*?[x]
"""


def test_env_reaches_recipes_exactly_as_launch_reads_it(project: Path):
    """Every value arrives in a make recipe byte for byte as python-dotenv (launch.py's reader) gives it; no `$`
    is expanded and nothing in a value runs."""
    from dotenv import dotenv_values
    (project / ".env").write_text(HOSTILE_ENV)
    expected = {k: v or "" for k, v in dotenv_values(project / ".env").items()}
    assert expected["DOLLAR"].startswith("pa$word$$ and $(shell")
    keys = " ".join(expected)
    (project / "project.mk").write_text(
        "dump: ## print .env as seen by a recipe\n"
        f"\t@{sys.executable} -c 'import os, sys, json; print(json.dumps({{k: os.environ.get(k) for k in "
        f"sys.argv[1:]}}))' {keys}\n")
    import json
    result = make(project, "dump", env={"PLAIN": "from the shell"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    assert not (project / "pwned").exists()


def test_env_wins_everywhere(project: Path):
    """.env over the shell environment and over make's command line: in a project.mk recipe, in a local run,
    and in the S3 targets (whose own reader would let the shell win)."""
    (project / ".env").write_text("FOO=from-dotenv\nS3_BUCKET_NAME=bucket-from-dotenv\n")
    (project / "project.mk").write_text("foo:\n\t@echo \"FOO=$$FOO\"\n")
    (project / "config" / "launch.yaml").write_text(PRINTENV_LAUNCH)
    shell = {"FOO": "from-shell", "S3_BUCKET_NAME": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
             "AWS_PROFILE": ""}
    assert make(project, "foo", "FOO=from-command-line", env=shell).stdout == "FOO=from-dotenv\n"
    local = make(project, "local", env=shell)
    assert "\nfrom-dotenv\n" in local.stdout, local.stdout + local.stderr
    s3 = make(project, "ls", "file=data/", env=shell)
    assert s3.returncode == 2
    assert "S3_BUCKET_NAME" not in s3.stderr and "AWS_ACCESS_KEY_ID" in s3.stderr, s3.stderr


def test_env_cannot_take_over_make(project: Path):
    """PYTHON, make's own variables and the targets' arguments are not taken from .env."""
    (project / ".env").write_text("PYTHON=/nonexistent/python\nSHELL=/bin/false\nfile=from-dotenv\n"
                                  "MAKEFLAGS=-k\nKT_LAUNCH=false\n")
    result = make(project, "runs")
    assert result.returncode == 0 and "1 combination" in result.stdout, result.stderr
    dry = make(project, "-n", "upload")
    assert re.search(r"s3utils\.py' upload .*-- ''$", dry.stdout.strip())


def test_env_without_python_dotenv_exports_nothing_silently(project: Path, bare_python: str):
    (project / ".env").write_text("FOO=x\n")
    (project / "project.mk").write_text("foo:\n\t@echo \"FOO=[$$FOO]\"\n")
    result = make(project, "foo", python=bare_python, env={"FOO": ""})
    assert result.stdout == "FOO=[]\n" and result.stderr == ""


# --- packaging ---------------------------------------------------------------------------------------------------

def test_wheel_builds_without_setuptools_warnings(tmp_path: Path):
    """Every importable folder is declared, so building the package prints no warning about packages."""
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    noise = [line for line in result.stderr.splitlines() if "Location 'file:" not in line]   # pip's index notes
    assert not [line for line in noise if "Warning" in line or "warning:" in line], "\n".join(noise)
    wheel = next((tmp_path / "dist").glob("kube_toolbox-*.whl"))
    import zipfile
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"toolbox/templates/job.yaml.j2", "toolbox/kube/bootstrap.py", "toolbox/Makefile",
            "toolbox/launch.py"} <= names
