"""Run the selected combinations on this machine, in sequence, in the project's Python environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from .config import local_environment
from .errors import RunError
from .model import Project, Run, RunSettings

TOOLBOX_DIR = Path(__file__).resolve().parent.parent


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
        env_dir = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
        if env_dir and (env_dir / "bin" / "python").exists():
            return PythonEnv(f"poetry env ({env_dir})", env_dir / "bin", {"VIRTUAL_ENV": str(env_dir)})
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
    return env


def in_cluster() -> bool:
    """Inside a pod of the toolbox (NODE_NAME from the downward API), the remote side of the sugar runs."""
    return bool(os.environ.get("NODE_NAME"))


def command_for(run: Run) -> str:
    return run.remote_command if in_cluster() else run.local_command


def header(run: Run) -> str:
    """The reference's shape: `Running {json} ... `, a blank line, the command, a blank line."""
    return f"Running {json.dumps(dict(run.hparams), indent=4, default=str)} ... \n\n{command_for(run)}\n"


@dataclass
class Summary:
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = f"{len(self.succeeded)} succeeded, {len(self.failed)} failed"
        if self.failed:
            text += ": " + ", ".join(self.failed)
        if self.skipped:
            text += f" ({len(self.skipped)} not run after the first failure)"
        return text


def run_all(runs: Sequence[Run], *, keep_going: bool = True, dry_run: bool = False,
            out: TextIO = sys.stdout) -> Summary:
    """Run each combination with `bash -c`; report failures and raise RunError at the end if any."""
    summary = Summary()
    if not runs:
        return summary
    first = runs[0]
    assert first.project is not None
    python = find_python_env(first.project, first.settings)
    if dry_run:
        for run in runs:
            print(command_for(run), file=out)
        return summary
    print(f"Python environment: {python.description}", file=out)
    for position, run in enumerate(runs):
        print(header(run), file=out, flush=True)
        try:
            code = subprocess.run(["bash", "-c", command_for(run)], cwd=run.project.root,
                                  env=run_environment(run, python)).returncode
        except KeyboardInterrupt:
            summary.failed.append(run.name)
            summary.skipped.extend(r.name for r in runs[position + 1:])
            print(f"\nInterrupted: {run.name}", file=out, flush=True)
            raise RunError(summary.line()) from None
        if code == 0:
            summary.succeeded.append(run.name)
            continue
        summary.failed.append(run.name)
        print(f"{run.name} failed with exit status {code}", file=out, flush=True)
        if not keep_going:
            summary.skipped.extend(r.name for r in runs[position + 1:])
            break
    if len(runs) > 1 and not summary.failed:
        print(summary.line(), file=out, flush=True)
    if summary.failed:
        raise RunError(summary.line())
    return summary
