"""Sharp edges of input and of the machine, each one line and never a traceback: .env files make cannot take,
grids and commands too large, YAML nested too deep, a .gitignore that is a link, a folder or read-only, a project
root that cannot be written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import KUBE, ROOT, launch, make_project

ONE = "model: {m: {command: echo hi}}\n"


def make(root, *args, env=None):
    return subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), *args, f"PYTHON={sys.executable}"],
                          cwd=root, capture_output=True, text=True, env=env, timeout=120)


def test_dotenv_not_utf8_is_one_line(tmp_path):
    make_project(tmp_path, ONE)
    (tmp_path / ".env").write_bytes(b"TOKEN=caf\xe9\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: .env: expected UTF-8 text, found a byte that is not (at offset 9)"]


@pytest.mark.parametrize("dotenv, warning", [
    ("define=1\nundefine=2\nendef=3\nSEED=7\n", None),
    ("PATH=/nowhere\nLD_PRELOAD=/nowhere/evil.so\nPYTHONHOME=/nowhere\nSEED=7\n", ".env sets PATH"),
])
def test_dotenv_that_make_cannot_take_leaves_every_target_working(tmp_path, dotenv, warning):
    make_project(tmp_path, "model: {m: {command: 'echo seed=$SEED'}}\n")
    (tmp_path / ".env").write_text(dotenv)
    result = make(tmp_path, "local")
    assert result.returncode == 0, result.stderr
    assert "seed=7" in result.stdout
    if warning:
        assert warning in result.stderr and "Traceback" not in result.stderr
    assert make(tmp_path, "runs").returncode == 0


def test_a_dotenv_value_too_long_for_any_environment_is_one_line(tmp_path):
    make_project(tmp_path, "model: {m: {command: 'echo seed=$SEED'}}\n")
    (tmp_path / ".env").write_text("HUGE=%s\nSEED=7\n" % ("x" * 200_000))
    result = make(tmp_path, "local")
    assert "too long to export through make" in result.stderr
    assert "error: .env: HUGE: expected a value under 100 KiB" in result.stderr and "Traceback" not in result.stderr
    assert "seed=7" not in result.stdout


def test_a_grid_too_large_is_refused_before_memory_runs_out(tmp_path):
    values = ", ".join(map(str, range(1000)))
    make_project(tmp_path, f"model: {{m: {{command: echo <a> <b>, hparam: {{a: [{values}], b: [{values}]}}}}}}\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and "expected at most 100,000 cells in one selection" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "build").exists()
    narrowed = launch(tmp_path, "runs", "--only", "a=1 b=2")
    assert narrowed.returncode == 0 and "1 combination" in narrowed.stdout


def test_a_command_over_the_argument_limit_is_refused(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo <x>, hparam: {x: ['%s']}}}\n" % ("y" * 200_000))
    result = launch(tmp_path, "local")
    assert result.returncode == 2 and "model.m.command: expected a command under 100 KiB" in result.stderr


def test_yaml_nested_near_the_recursion_limit_is_one_line(tmp_path):
    make_project(tmp_path, ONE)
    (tmp_path / "config" / "launch.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n" + ONE)
    result = launch(tmp_path, "runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: config/launch.yaml: ") and len(result.stderr.strip().splitlines()) == 1


def _setup_gitignore(root):
    sys.path.insert(0, str(ROOT))
    from kube import bootstrap
    return bootstrap


def test_a_gitignore_link_is_written_through(tmp_path):
    bootstrap = _setup_gitignore(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "ignore").write_text("*.pyc\n")
    (tmp_path / ".gitignore").symlink_to("shared/ignore")
    assert bootstrap.ensure_gitignore(tmp_path) == [".env", "build/"]
    assert (tmp_path / ".gitignore").is_symlink()
    assert (tmp_path / "shared" / "ignore").read_text() == "*.pyc\n.env\nbuild/\n"


def test_a_gitignore_that_is_a_folder_is_left_and_named(tmp_path):
    bootstrap = _setup_gitignore(tmp_path)
    (tmp_path / ".gitignore").mkdir()
    with pytest.raises(bootstrap.GitignoreProblem, match="folder"):
        bootstrap.ensure_gitignore(tmp_path)
    assert (tmp_path / ".gitignore").is_dir()


def test_a_gitignore_on_a_read_only_filesystem_is_left_and_named(tmp_path):
    """The project folder bind-mounted read-only in a mount namespace of its own: read-only even for root."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to mount the project read-only"
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from kube import bootstrap\n"
             "try:\n    bootstrap.ensure_gitignore(__import__('pathlib').Path(sys.argv[2]))\n"
             "except bootstrap.GitignoreProblem as problem:\n    print('left:', problem)\n")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    as_root = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    done = subprocess.run([unshare, *as_root, "sh", "-c", script, str(tmp_path), sys.executable, "-c", probe,
                           str(ROOT), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "left: .gitignore is read-only"
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]          # no temporary file left


def test_a_project_root_that_cannot_be_written_is_one_line(tmp_path):
    make_project(tmp_path, ONE)
    (tmp_path / "build").write_text("a file where the build folder goes\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert (tmp_path / "build").read_text() == "a file where the build folder goes\n"


# --- what a newcomer and a lab coming from the public toolbox hit -------------------------------------------------------

def test_numeric_strings_are_numbers_where_the_public_toolbox_took_them(tmp_path):
    make_project(tmp_path, ONE, kube=KUBE + "memory: '32'\ncpu_count: \"4\"\ngpu_count: '1'\n")
    result = launch(tmp_path, "print-config")
    assert result.returncode == 0, result.stderr
    assert "memory: 32\n" in result.stdout and "cpu_count: 4\n" in result.stdout
    make_project(tmp_path, ONE, kube=KUBE + "memory: lots\n")
    bad = launch(tmp_path, "runs")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: config/kube.yaml: memory: expected a number > 0, " \
                                                         "got a string"


def test_local_command_points_to_the_notation(tmp_path):
    make_project(tmp_path, "model: {m: {command: echo, local_command: echo here}}\n")
    result = launch(tmp_path, "runs")
    assert result.returncode == 2 and "model.m.local_command: unknown key: write both sides in command: with " \
                                      "the [local](remote) notation" in result.stderr


def test_pod_is_accepted_in_the_mode_form(tmp_path):
    make_project(tmp_path, ONE)
    result = launch(tmp_path, "--mode", "pod-dryrun", "--pod", "mine")
    assert result.returncode == 0 and "name: mine" in result.stdout


def test_logs_of_a_pod_without_a_log_yet_says_so(project, kube):
    from tests.helpers import run, seed_pod
    run(project, "job")
    job = kube.objects("jobs")[0]
    name = job["metadata"]["name"]
    seed_pod(kube, job, {"phase": "Pending", "containerStatuses": [{"name": "main", "state": {
        "waiting": {"reason": "ContainerCreating"}}}]})
    code, out, err = run(project, "logs", "--name", name)
    assert code == 0 and out == ""
    assert err.strip() == f"# pod/{name}-p has no log yet: its container is waiting to start (not started); " \
                          f"try again when `make status` says running"
