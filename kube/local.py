"""Run the selected combinations on this machine, in sequence, in the project's Python environment."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable, Mapping, Sequence, TextIO

from . import checkpoints, multinode, processes, results
from .processes import group_alive, killpg
from .errors import RunError
from .settings import Project, Run, RunSettings, default_of

TOOLBOX_DIR = Path(__file__).resolve().parent.parent

# Signals that stop a local run. SIGHUP too: a command in its own session no longer gets the terminal's hangup,
# so without forwarding it, closing the terminal would leave the command running without the launcher.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 0.05                       # how often the deadline and the group's members are checked
KILL_WAIT_SECONDS = 5.0                   # after SIGKILL, how long to wait for the group to disappear
BASH = shutil.which("bash") or "/bin/bash"      # found on our PATH: a .env PATH is the command's, not ours
PUMP_WAIT_SECONDS = 2.0                   # after the command ends, how long its output may still come


class Interrupted(RunError):
    """A signal stopped the local runs; the exit status is 128 + its number, as shells report it (130, 143)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


def local_environment(project: Project, settings: RunSettings) -> dict[str, str]:
    """Environment of a local run: the shell's, then `env:` from the configs, then `.env` (which wins)."""
    return {**os.environ, **settings.env, **project.dotenv}


@dataclass(frozen=True)
class PythonEnv:
    """Which interpreter `python` means in a local run, and how to put it first on PATH."""

    description: str
    bin_dir: Path
    extra: Mapping[str, str] = field(default_factory=dict)


def find_python_env(project: Project, settings: RunSettings) -> PythonEnv:
    """The conda env `conda_env_name` if it exists, else the project's poetry or .venv env, else this one."""
    name = project.conda_env_name
    conda_bases = [Path(settings.conda_home)]
    if os.environ.get("CONDA_EXE"):
        conda_bases.append(Path(os.environ["CONDA_EXE"]).resolve().parent.parent)
    for base in conda_bases:
        env_dir = base / "envs" / name
        if (env_dir / "bin" / "python").exists():
            return PythonEnv(f"conda env '{name}' ({env_dir})", env_dir / "bin",
                             {"CONDA_PREFIX": str(env_dir), "CONDA_DEFAULT_ENV": name})
    if (project.root / "poetry.lock").is_file() and shutil.which("poetry"):
        out = subprocess.run(["poetry", "env", "info", "--path"], cwd=project.root, capture_output=True, text=True)
        poetry_dir = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
        if poetry_dir and (poetry_dir / "bin" / "python").exists():
            return PythonEnv(f"poetry env ({poetry_dir})", poetry_dir / "bin", {"VIRTUAL_ENV": str(poetry_dir)})
    venv = project.root / ".venv"
    if (venv / "bin" / "python").exists():
        return PythonEnv(f"project venv ({venv})", venv / "bin", {"VIRTUAL_ENV": str(venv)})
    exe = Path(sys.executable)
    return PythonEnv(f"current interpreter ({exe})", exe.parent)


def run_environment(run: Run, python: PythonEnv) -> dict[str, str]:
    """Shell env < `env:` < .env, the env's bin first on PATH, and `import toolbox` working."""
    assert run.project is not None
    env = local_environment(run.project, run.settings)
    env.update(python.extra)
    env["PATH"] = f"{python.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    pythonpath = [str(TOOLBOX_DIR.parent)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pythonpath))
    env[results.ENV_NAME] = str(results.folder(run))       # the cell's results folder
    if run.settings.checkpoint is not None:                 # and its checkpoint folder, as in jobs
        env[checkpoints.ENV_NAME] = str(checkpoints.local_dir(run))
    env.setdefault("PYTHONUNBUFFERED", "1")                 # its output reaches us through a pipe: keep it live
    if multinode.is_multinode(run.settings) and not in_cluster():
        env.update(multinode.local_env(run.settings))      # a cell on several nodes runs here as one node
    return env


CLUSTER_VARIABLE = "KUBE_TOOLBOX_CLUSTER"        # set in the toolbox's own Jobs and pods, nowhere else


def in_cluster() -> bool:
    """Inside a Job or pod of the toolbox the remote side of the sugar runs (not wherever NODE_NAME is set:
    CI systems set that too)."""
    return os.environ.get(CLUSTER_VARIABLE) == "1"


def command_for(run: Run) -> str:
    return run.remote_command if in_cluster() else run.local_command


def header(run: Run) -> str:
    """The reference's shape: `Running {json} ... `, a blank line, the command, a blank line."""
    note = "" if in_cluster() else multinode.local_note(run.settings)     # a multi-node cell's one node here
    return f"Running {json.dumps(dict(run.hparams), indent=4, default=str)} ... \n{note}\n{command_for(run)}\n"


@dataclass
class Summary:
    """What became of each run: the closing line, and the message of RunError or Interrupted."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: str | None = None       # the run that was going when the signal came
    signal_name: str | None = None       # set when a signal stopped the runs

    def line(self) -> str:
        text = f"{len(self.succeeded)} succeeded, {len(self.failed)} failed"
        if self.failed:
            text += ": " + ", ".join(self.failed)
        if self.interrupted:
            text += f", interrupted: {self.interrupted}"
        if self.skipped:
            why = "the interruption" if self.signal_name else "the first failure"
            text += f" ({len(self.skipped)} not run after {why})"
        return text


def copy_output(pipe: IO[bytes], output: Callable[[bytes], None]) -> None:
    """Copy a command's stdout to ours chunk by chunk (progress bars stay live), handing each chunk on."""
    target = getattr(sys.stdout, "buffer", None)
    fd = pipe.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        output(chunk)
        if target is not None:
            try:
                target.write(chunk)
                target.flush()
            except (OSError, ValueError):     # our stdout went away (`make local | head`): keep draining
                target = None
    pipe.close()


class SignalGuard:
    """While local runs go on, SIGINT/SIGTERM/SIGHUP stop them cleanly instead of killing only the launcher.

    The command runs in its own session, so a terminal's Ctrl-C reaches the launcher alone; the launcher
    forwards the signal to the command's whole group, gives it `grace` seconds to save its work, then sends
    SIGKILL to the group. A second signal kills at once. The handlers never raise: the main thread polls, so
    no exception can land in the middle of subprocess bookkeeping.
    """

    def __init__(self) -> None:
        self.signum: int | None = None       # the first signal received
        self.count = 0
        self.pgid: int | None = None         # group of the command now running
        self.grace = float(default_of("grace_period"))
        self.deadline: float | None = None   # when the group gets SIGKILL, once a signal was forwarded
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        processes.adopt_orphans()            # daemons a command starts (setsid) come back to us when orphaned
        if threading.current_thread() is not threading.main_thread():
            return self                      # Python only lets the main thread set handlers
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue                     # ignored when we started (nohup, `&`): keep ignoring it
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if self.pgid is None:
            return
        if self.deadline is None:
            self._forward()
        else:                                # a second signal: no more grace
            self.deadline = time.monotonic()
            killpg(self.pgid, signal.SIGKILL)

    def _forward(self) -> None:
        assert self.pgid is not None and self.signum is not None
        self.deadline = time.monotonic() + self.grace
        killpg(self.pgid, self.signum)

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], grace: float,
            output: Callable[[bytes], None] | None = None) -> int | None:
        """Run argv in a new session and return its exit status; None if a signal came before it started.

        With `output`, the command's stdout is copied to ours as it comes and each chunk handed to `output`.
        """
        if self.signum is not None:
            return None
        self.grace = grace
        key, token = processes.mark()
        proc = subprocess.Popen(list(argv), cwd=cwd, env={**env, key: token}, start_new_session=True,
                                stdout=subprocess.PIPE if output else None)
        pump = None
        if output is not None and proc.stdout is not None:
            pump = threading.Thread(target=copy_output, args=(proc.stdout, output), daemon=True)
            pump.start()
        try:
            self.pgid = proc.pid
            if self.signum is not None and self.deadline is None:
                self._forward()              # the signal came while the command was starting
            code = self._wait(proc)
        finally:
            if proc.returncode is None:      # the launcher is leaving early: take the command with it
                killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.pgid = None                 # from here on a signal is only recorded
            if self.deadline is not None:
                self._end_group(proc.pid)
            else:                            # ended by itself: what it left running in the background ends too
                processes.end_leftovers(proc.pid, token)
            self.deadline = None
            if pump is not None:             # a background process still holding the pipe must not hold us
                pump.join(timeout=PUMP_WAIT_SECONDS)
        return code

    def _wait(self, proc: subprocess.Popen) -> int:
        """Wait for the command; once its grace has run out, SIGKILL its group."""
        while True:
            timeout = POLL_SECONDS * 4
            if self.deadline is not None:    # wake up at the deadline, not up to a poll later
                timeout = min(max(self.deadline - time.monotonic(), 0.01), POLL_SECONDS)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    killpg(proc.pid, signal.SIGKILL)

    def _end_group(self, pgid: int) -> None:
        """The leader is gone; its group's other processes get the rest of the grace, then SIGKILL."""
        assert self.deadline is not None
        while group_alive(pgid) and time.monotonic() < self.deadline:
            time.sleep(POLL_SECONDS)
        killpg(pgid, signal.SIGKILL)
        give_up = time.monotonic() + KILL_WAIT_SECONDS
        while group_alive(pgid) and time.monotonic() < give_up:
            time.sleep(POLL_SECONDS / 5)


def _run_cell(guard: SignalGuard, run: Run, python: PythonEnv, out: TextIO) -> tuple[int | None, Run | None]:
    """Run a cell's stages in order (a cell without stages is its own one stage), stopping at the first that
    fails: (the last exit status, None if a signal came before anything ran; the stage that stopped the cell)."""
    chain = run.stages or (run,)
    code = None
    for position, unit in enumerate(chain):
        if guard.signum is not None:
            break
        if run.stages:
            print(f"Stage {unit.stage} ({position + 1}/{len(chain)}) of {run.name}", file=out, flush=True)
        print(header(unit), file=out, flush=True)
        assert unit.project is not None
        capture = results.prepare(unit, fresh=position == 0)
        code = guard.run([BASH, "-c", command_for(unit)], cwd=unit.project.root,
                         env=run_environment(unit, python), grace=float(unit.settings.grace_period),
                         output=capture.feed)
        if code is None:
            break
        for problem in results.finish(unit, code, capture):
            print(f"warning: {problem}", file=sys.stderr, flush=True)
        if code != 0:
            return code, unit
    return code, None


def run_all(runs: Sequence[Run], *, keep_going: bool = True, dry_run: bool = False,
            out: TextIO = sys.stdout) -> Summary:
    """Run each combination (each stage of it in order) with `bash -c`; report failures and raise RunError at the
    end if any. A failed stage stops its cell; the other cells still run.

    A stop signal ends the current command (see SignalGuard), runs nothing more and raises Interrupted.
    """
    summary = Summary()
    if not runs:
        return summary
    first = runs[0]
    assert first.project is not None
    python = find_python_env(first.project, first.settings)
    if dry_run:
        for run in runs:
            for unit in run.stages or (run,):
                if unit.stage:
                    print(f"# {run.name}: stage {unit.stage}", file=out)
                print(command_for(unit), file=out)
        return summary
    for run in runs:                          # a bad value fails before anything runs
        for unit in run.stages or (run,):
            float(unit.settings.grace_period)
    print(f"Python environment: {python.description}", file=out)
    with SignalGuard() as guard:
        for position, run in enumerate(runs):
            code, stopped = _run_cell(guard, run, python, out)
            if guard.signum is not None:     # None code: the signal came before this run started
                summary.interrupted = run.name if code is not None else None
                summary.skipped.extend(r.name for r in runs[position + (code is not None):])
                break
            if code == 0:
                summary.succeeded.append(run.name)
                continue
            stage = stopped.stage if stopped is not None else ""
            where = f" at stage {stage}" if stage else ""
            summary.failed.append(run.name + (f" (stage {stage})" if stage else ""))
            print(f"{run.name} failed{where} with exit status {code}", file=out, flush=True)
            if not keep_going:
                summary.skipped.extend(r.name for r in runs[position + 1:])
                break
    if guard.signum is not None:
        summary.signal_name = signal.Signals(guard.signum).name
        print(f"\nInterrupted by {summary.signal_name}: {summary.interrupted or 'before the next run'}",
              file=out, flush=True)
        raise Interrupted(f"interrupted by {summary.signal_name}: {summary.line()}", guard.signum)
    if len(runs) > 1 and not summary.failed:
        print(summary.line(), file=out, flush=True)
    if summary.failed:
        raise RunError(summary.line())
    return summary
