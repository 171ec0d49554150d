"""Local runs stop cleanly on signals: real launcher, real process groups, no mocks.

The launcher is started in its own session so that nothing sent to it reaches the test runner. Membership of a
process group is read from /proc, skipping zombies: the PID 1 of some containers never reaps orphans, so a
killed grandchild may linger there as a zombie (`pgrep -g` would list it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kube.local import Interrupted, SignalGuard, run_all
from kube.settings import Project, Run, RunSettings
from tests.helpers import KUBE, ROOT, launch, make_project

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")

# Three cells; the first succeeds at once, the second waits for the signal, the third must never start.
GRID = """\
model: {m: {command: "%s <_n>"}}
dataset:
  d1: {hparam: {_n: 1}}
  d2: {hparam: {_n: 2}}
  d3: {hparam: {_n: 3}}
"""

# Saves a checkpoint one second after the signal, then exits. Python, not a bash trap: bash runs a trap only
# once its foreground child ends, so a signal landing just as it forks would wait for that child.
SAVES = """\
import os, signal, sys, time
from pathlib import Path

with open("started", "a") as started:
    started.write(f"started-{sys.argv[1]}\\n")
if sys.argv[1] == "1":
    sys.exit(0)
Path("pgid").write_text(str(os.getpgrp()))


def save(signum, frame):
    time.sleep(1)
    Path("checkpoint").write_text("saved\\n")
    sys.exit(0)


for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, save)
Path("ready").touch()
time.sleep(1000)
"""

# Ignores the signals, as does the background grandchild it starts.
IGNORES = """\
echo "started-$1" >> started
[ "$1" = 1 ] && exit 0
read -r _ _ _ _ pgid _ < /proc/$$/stat
echo "$pgid" > pgid
trap '' INT TERM HUP
sleep 1000 &
echo $! > grandchild
touch ready
sleep 1000
"""


def project(tmp_path: Path, script: str, grace: float) -> tuple[Path, dict[str, str]]:
    env = dict(os.environ)
    kube = KUBE + f"grace_period: {grace}\n"
    job = "job.py" if script is SAVES else "job.sh"
    make_project(tmp_path, GRID % f"{'python' if job.endswith('.py') else 'bash'} {job}", kube=kube)
    (tmp_path / job).write_text(script)
    return tmp_path, env


def start(root: Path, env: dict[str, str]) -> subprocess.Popen:
    """launch.py local in its own session; returns once the second cell is ready for the signal."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "local"], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (root / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the second cell never got ready:\n{out}\n{err}")
        time.sleep(0.02)
    return proc


def live_members(pgid: int) -> list[int]:
    """PIDs of the group's processes that are not zombies."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, pgrp = text[text.rfind(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state not in "ZX":
            found.append(int(stat.parent.name))
    return found


def stop(proc: subprocess.Popen, *signums: int, pause: float = 0.3) -> tuple[str, str, float]:
    """Send the signals to the launcher; (stdout, stderr, seconds from the first signal to its exit)."""
    began = time.monotonic()
    for i, signum in enumerate(signums):
        if i:
            time.sleep(pause)
        os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=30)
    return out, err, time.monotonic() - began


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_command_saves_its_checkpoint_and_the_rest_is_not_run(tmp_path, signum):
    root, env = project(tmp_path, SAVES, grace=5)
    proc = start(root, env)
    out, err, took = stop(proc, signum)
    assert (root / "checkpoint").read_text() == "saved\n"
    assert proc.returncode == 128 + signum, err
    assert (root / "started").read_text() == "started-1\nstarted-2\n"
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: 1 succeeded, 0 failed, interrupted: example-m-d2-" in err
    assert "(1 not run after the interruption)" in err
    assert f"Interrupted by {name}: example-m-d2-" in out
    assert 1 <= took < 4, took                       # the save took 1 s; the group ended before the grace
    assert not live_members(int((root / "pgid").read_text()))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_command_ignoring_the_signal_is_killed_with_its_group_after_the_grace(tmp_path, signum):
    root, env = project(tmp_path, IGNORES, grace=1)
    proc = start(root, env)
    pgid = int((root / "pgid").read_text())
    grandchild = int((root / "grandchild").read_text())
    assert grandchild in live_members(pgid)
    out, err, took = stop(proc, signum)
    assert proc.returncode == 128 + signum, err
    assert 1 <= took < 3, took
    assert not live_members(pgid)
    assert "interrupted: example-m-d2-" in err and "(1 not run after the interruption)" in err


def test_a_second_signal_kills_at_once(tmp_path):
    root, env = project(tmp_path, IGNORES, grace=60)
    proc = start(root, env)
    pgid = int((root / "pgid").read_text())
    out, err, took = stop(proc, signal.SIGINT, signal.SIGINT)
    assert proc.returncode == 130, err
    assert took < 3, took
    assert not live_members(pgid)


def test_handlers_are_restored_and_an_exit_status_per_signal(tmp_path):
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        root = make_project(tmp_path, "model: {m: {command: 'true'}}\ndataset: {d: {}}\n")
        runs = [Run(index=0, name="one", model="m", dataset="d", hparams={}, labels={}, local_command="true",
                    project=Project(project_name="example", user="alice", namespace="lab",
                                    conda_env_name="example", root=root))]
        assert run_all(runs, out=open(os.devnull, "w")).succeeded == ["one"]
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert Interrupted("x", signal.SIGINT).exit_status == 130
    assert Interrupted("x", signal.SIGTERM).exit_status == 143
    with SignalGuard() as guard:      # a signal between two commands is recorded, not forwarded anywhere
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.signum == signal.SIGTERM
        assert guard.run(["true"], cwd=tmp_path, env=os.environ, grace=1) is None


def test_grace_period_is_a_setting_checked_before_anything_runs(tmp_path):
    assert RunSettings().grace_period == 10.0 and RunSettings(grace_period=0.5).grace_period == 0.5
    for bad, got in (("soon", "a string"), ("-1", "-1"), (".inf", "inf"), (".nan", "nan")):
        make_project(tmp_path, GRID % "touch ran", kube=KUBE + f"grace_period: {bad}\n")
        result = launch(tmp_path, "local")
        assert result.returncode == 2 and not (tmp_path / "ran").exists()
        assert result.stderr.strip() == f"error: config/kube.yaml: grace_period: expected a number of seconds >= 0, " \
                                        f"got {got}"

@pytest.mark.parametrize("leftover", ["sleep 60 &", "setsid sleep 60 &", "(setsid sleep 60 &) ; sleep 0.1"])
def test_what_a_cell_leaves_running_ends_with_it(tmp_path, leftover):
    """Background children (cmd &) and daemons (setsid) end when the cell ends; `make local | cat` returns."""
    make_project(tmp_path, GRID % f"{leftover} echo $! > pid; echo done")
    start = time.monotonic()
    launcher = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "local", "--first"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = subprocess.Popen(["cat"], stdin=launcher.stdout, stdout=subprocess.PIPE, text=True)   # `| cat`
    assert launcher.stdout is not None
    launcher.stdout.close()                       # only `cat` holds the pipe now, as in a shell pipeline
    out, _ = reader.communicate(timeout=30)       # ends only when nothing holds the pipe any more
    err = launcher.communicate(timeout=30)[1].decode()
    assert launcher.returncode == 0 and reader.returncode == 0, err
    assert "done" in out and time.monotonic() - start < 10
    sleepers = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                if p.exists() and _cmdline(p) == "sleep\x0060\x00" and _cwd(p.parent) == tmp_path]
    assert sleepers == []


def _cmdline(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _cwd(proc: Path) -> Path | None:
    try:
        return Path(os.readlink(proc / "cwd"))
    except OSError:
        return None


def test_only_what_the_cell_left_is_stopped_never_other_children_of_the_launcher(tmp_path):
    """In one process with other children (a server a caller started), a cell's daemon is stopped, they are not."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        project = make_project(tmp_path, GRID % "(setsid sleep 61 &); echo daemon")
        from kube import config, grid
        with open(os.devnull, "w") as sink:
            run_all(grid.build_runs(config.load(project))[:1], out=sink)
        time.sleep(0.2)
        assert bystander.poll() is None                                   # still running
        daemons = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _cmdline(p) == "sleep\x0061\x00"]
        assert daemons == []
    finally:
        bystander.kill()
        bystander.wait()
