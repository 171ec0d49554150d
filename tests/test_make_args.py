"""Make arguments are data: whatever a value holds reaches the toolbox literally; true/false are spelt any common
way; a project path with spaces works; the public toolbox's removed targets say where they went."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ECHO = "import sys, json; print(json.dumps(sys.argv[1:]))"


def project(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config" / "kube.yaml").write_text("project_name: example\nnamespace: lab\nuser: alice\n")
    (root / "config" / "launch.yaml").write_text("model: {m: {command: 'echo hi <x>', hparam: {x: [a, b]}}}\n")
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)
    return root


def make(root: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={python}"], cwd=root,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def spy(tmp_path: Path) -> str:
    """A PYTHON that prints the arguments the recipe gave it, instead of running the toolbox."""
    path = tmp_path / "spy"
    path.write_text(f"#!{sys.executable}\n{ECHO}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("value", ["ckpt/run$1/", "$(shell touch pwned)", "a'b\"c", "$$HOME", "x;rm -rf y",
                                   "`touch pwned`", "-looks-like-a-flag"])
@pytest.mark.parametrize("target, flag", [("remove", None), ("download", None), ("logs", "--name"),
                                          ("status", "--only")])
def test_argument_values_reach_the_toolbox_literally(tmp_path, spy, value, target, flag):
    import json
    root = project(tmp_path / "p")
    key = {"remove": "file", "download": "file", "logs": "name", "status": "only"}[target]
    result = make(root, target, f"{key}={value}", python=spy)
    assert result.returncode == 0, result.stderr
    argv = json.loads(result.stdout.strip().splitlines()[-1])
    if flag:
        assert f"{flag}={value}" in argv
    else:
        assert argv[-2:] == ["--", value]
    assert not (root / "pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value, expected", [("True", True), ("true", True), ("yes", True), ("1", True),
                                             ("False", False), ("no", False), ("0", False), ("off", False)])
def test_overwrite_is_understood_the_same_everywhere(value, expected):
    sys.path.insert(0, str(ROOT))
    import launch
    from s3sync import cli
    job = launch.build_parser().parse_args(["job", f"--overwrite={value}"])
    s3 = cli.build_parser().parse_args(["upload", f"--overwrite={value}", "data/"])
    assert job.overwrite is expected and s3.overwrite is expected


def test_a_truth_value_that_is_neither_is_refused(tmp_path):
    root = project(tmp_path / "p")
    result = make(root, "local", "keep_going=maybe")
    assert result.returncode == 2 and "--keep-going" in result.stderr and "maybe" in result.stderr


def test_a_project_path_with_spaces_works(tmp_path):
    root = project(tmp_path / "my projects" / "exp one")
    result = make(root, "runs")
    assert result.returncode == 0 and "2 combinations" in result.stdout, result.stderr
    result = make(root, "local", "only=x=a")
    assert result.returncode == 0 and "hi a" in result.stdout, result.stderr


def test_dotenv_keys_that_are_make_keywords_break_nothing(tmp_path):
    root = project(tmp_path / "p")
    (root / ".env").write_text("define=1\nundefine=x\nendef=2\nifeq=3\noverride=4\nexport=5\n")
    result = make(root, "runs")
    assert result.returncode == 0 and "2 combinations" in result.stdout, result.stderr


@pytest.mark.parametrize("target", ["shell", "tmux", "lint", "create_environment"])
def test_removed_public_targets_get_a_one_line_hint(tmp_path, target):
    root = project(tmp_path / "p")
    result = make(root, target)
    assert result.returncode == 2
    assert f"make {target}: the public toolbox's target is not part of Kube Toolbox" in result.stderr


def test_a_mistyped_target_still_fails(tmp_path):
    root = project(tmp_path / "p")
    result = make(root, "jbo")
    assert result.returncode == 2 and "make jbo: no such target" in result.stderr
    (root / "project.mk").write_text("clean: ## remove caches\n\t@echo cleaned\n")
    own = make(root, "clean")
    assert own.returncode == 0 and own.stdout.strip() == "cleaned"


@pytest.mark.parametrize("value, expected", [("1", True), ("True", True), ("no", False)])
def test_wait_and_other_switches_reach_the_parser_as_given(tmp_path, spy, value, expected):
    import json
    root = project(tmp_path / "p")
    result = make(root, "job", f"wait={value}", f"overwrite={value}", python=spy)
    argv = json.loads(result.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(ROOT))
    import launch
    args = launch.build_parser().parse_args(argv[1:])
    assert args.wait is expected and args.overwrite is expected


@pytest.mark.parametrize("argv, expected", [
    (["--download", "data/"], "error: --download is the public toolbox's spelling: write `s3utils.py download data/` "
                              "(or `make download file=...`)"),
    (["--upload", "--local_path", "x", "ckpt/"], "write `s3utils.py upload --local_path x ckpt/`"),
    (["--server"], "error: --server (an HTTP API over S3) is not part of Kube Toolbox"),
])
def test_the_public_toolbox_s3utils_flags_get_a_one_line_hint(tmp_path, argv, expected):
    result = subprocess.run([sys.executable, str(ROOT / "s3utils.py"), *argv], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 2 and expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
