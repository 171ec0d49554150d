"""Local runs: the reference's output shape, .env, failures and their summary, the cluster side, Python envs."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.helpers import KUBE, ROOT, launch, make_project

EXAMPLE = ROOT / "examples" / "quickstart"


def quickstart(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "example")
    return tmp_path / "example"


def test_reference_quickstart_output(tmp_path):
    result = launch(quickstart(tmp_path), "local")
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("Running ")[1:]
    expected = [("avg", "1", "2.0"), ("med", "1", "2.0"), ("avg", "2", "5.0"), ("med", "2", "5.0")]
    assert len(blocks) == 4
    for block, (script, n, value) in zip(blocks, expected):
        assert block.startswith('{\n    "_fn": "data/%s.txt"\n} ... \n\npython src/%s.py data/%s.txt\n\n%s\n'
                                % (n, script, n, value)), block
    assert result.stdout.splitlines()[0].startswith("Python environment: ")
    assert result.stdout.rstrip().endswith("4 succeeded, 0 failed")


def test_dryrun_prints_commands_only(tmp_path):
    result = launch(quickstart(tmp_path), "local", "--dry-run")
    assert result.stdout.splitlines() == ["python src/avg.py data/1.txt", "python src/med.py data/1.txt",
                                          "python src/avg.py data/2.txt", "python src/med.py data/2.txt"]


def test_first_runs_only_the_first(tmp_path):
    result = launch(quickstart(tmp_path), "local", "--first")
    assert result.stdout.count("Running ") == 1 and "2.0" in result.stdout


def test_only_selection_from_the_command_line(tmp_path):
    result = launch(quickstart(tmp_path), "local", "--only", "model=median dataset=data2")
    assert result.stdout.count("Running ") == 1 and "python src/med.py data/2.txt\n\n5.0" in result.stdout


FAILING = """\
model:
  ok: {command: "echo ok-<_n>"}
  bad: {command: "echo bad-<_n>; exit 3"}
dataset:
  d1: {hparam: {_n: 1}}
  d2: {hparam: {_n: 2}}
run: {model: [bad, ok]}
"""


def test_failure_is_reported_and_the_rest_still_runs(tmp_path):
    make_project(tmp_path, FAILING)
    result = launch(tmp_path, "local")
    assert result.returncode == 1
    assert [line for line in result.stdout.splitlines() if line.startswith(("ok-", "bad-"))] == [
        "bad-1", "ok-1", "bad-2", "ok-2"]
    assert "failed with exit status 3" in result.stdout
    assert "2 succeeded, 2 failed: example-bad-d1-" in result.stderr


def test_stop_on_failure(tmp_path):
    make_project(tmp_path, FAILING)
    result = launch(tmp_path, "local", "--stop-on-failure")
    assert result.returncode == 1
    assert "ok-1" not in result.stdout
    assert "0 succeeded, 1 failed" in result.stderr and "3 not run" in result.stderr


def test_dotenv_and_env_reach_the_command(tmp_path):
    make_project(tmp_path, """\
        env: {FROM_ENV: launch, SHARED: launch}
        model: {m: {command: 'echo "$FROM_ENV $FROM_DOTENV $SHARED"'}}
        dataset: {d: {}}
        """, dotenv='export FROM_DOTENV="dot env"\nSHARED=dotenv\n')
    result = launch(tmp_path, "local")
    assert "launch dot env dotenv" in result.stdout


def test_inside_the_cluster_the_remote_side_runs(tmp_path):
    make_project(tmp_path, "model: {m: {command: '[echo local-side](echo remote-side)'}}\ndataset: {d: {}}\n")
    env = {**os.environ, "KUBE_TOOLBOX_CLUSTER": "1"}           # what the toolbox's Jobs and pods set
    result = launch(tmp_path, "local", env=env)
    assert "remote-side" in result.stdout and "local-side" not in result.stdout
    assert "local-side" in launch(tmp_path, "local").stdout
    ci = {**os.environ, "NODE_NAME": "runner-7"}                  # CI systems set NODE_NAME: still the laptop side
    assert "local-side" in launch(tmp_path, "local", env=ci).stdout


def _fake_python(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)


def test_project_venv_is_used(tmp_path):
    make_project(tmp_path, "model: {m: {command: 'command -v python'}}\ndataset: {d: {}}\n")
    _fake_python(tmp_path / ".venv" / "bin")
    result = launch(tmp_path, "local")
    assert result.stdout.startswith(f"Python environment: project venv ({tmp_path / '.venv'})")
    assert f"{tmp_path}/.venv/bin/python" in result.stdout


def test_conda_env_wins_when_it_exists(tmp_path):
    conda = tmp_path / "conda"
    _fake_python(conda / "envs" / "example" / "bin")
    _fake_python(tmp_path / ".venv" / "bin")
    make_project(tmp_path, "model: {m: {command: 'echo $CONDA_DEFAULT_ENV'}}\ndataset: {d: {}}\n",
                 kube=KUBE + f"conda_home: {conda}\n")
    result = launch(tmp_path, "local")
    assert result.stdout.startswith("Python environment: conda env 'example'")
    assert "\nexample\n" in result.stdout


def test_current_interpreter_when_nothing_else(tmp_path):
    make_project(tmp_path, "model: {m: {command: 'true'}}\ndataset: {d: {}}\n")
    assert launch(tmp_path, "local").stdout.startswith("Python environment: current interpreter")
