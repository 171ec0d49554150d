"""Small builders shared by the launcher tests: a project folder from YAML text, and launch.py runs."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KUBE = """\
project_name: example
namespace: lab
user: alice
"""


def make_project(tmp: Path, launch: str, kube: str = KUBE, dotenv: str | None = None) -> Path:
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    (tmp / "config" / "kube.yaml").write_text(textwrap.dedent(kube))
    (tmp / "config" / "launch.yaml").write_text(textwrap.dedent(launch))
    if dotenv is not None:
        (tmp / ".env").write_text(textwrap.dedent(dotenv))
    return tmp


def launch(root: Path, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real launch.py as a user would, from the project root."""
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=root, capture_output=True,
                          text=True, env=env, input=input, timeout=120)
