"""The CLI is a thin, documented shell: every command and every Makefile target has help text."""
from __future__ import annotations

import argparse
import re

from tests.helpers import ROOT, launch


def _subparsers():
    import launch as launch_module
    parser = launch_module.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action


def test_every_launch_command_has_help_text():
    action = _subparsers()
    helps = {c.dest: c.help for c in action._choices_actions}
    assert set(helps) == set(action.choices)
    for name, text in helps.items():
        assert text and len(text) > 10, f"launch.py {name} has no help text"


def test_every_makefile_target_is_documented():
    text = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-zA-Z_-]+):(?!=)", text, re.M)
    assert "local" in targets and "job" in targets
    undocumented = [t for t in targets if not re.search(rf"^{re.escape(t)}:.*## \S", text, re.M)]
    assert undocumented == []


def test_phony_lists_every_target():
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*?)(?<!\\)$", text, re.M | re.S).group(1).replace("\\\n", " ").split())
    targets = set(re.findall(r"^([a-zA-Z_-]+):(?!=)", text, re.M))
    assert targets - {"help"} <= phony


def test_launch_help_exits_zero(tmp_path):
    result = launch(tmp_path, "--help")
    assert result.returncode == 0 and "local" in result.stdout


def _targets() -> list[str]:
    return re.findall(r"^([a-zA-Z_-]+):(?!=)", (ROOT / "Makefile").read_text(), re.M)


def test_make_help_lists_every_target(tmp_path):
    import subprocess
    (tmp_path / "Makefile").symlink_to(ROOT / "Makefile")
    listing = subprocess.run(["make", "--no-print-directory"], cwd=tmp_path, capture_output=True, text=True).stdout
    listed = re.findall(r"^  make (\S+) ", listing, re.M)
    assert listed == _targets()


def test_docs_name_every_target():
    """docs/make.md is the reference behind `make help`: a new target without a line there fails."""
    text = (ROOT / "docs" / "make.md").read_text()
    missing = [t for t in _targets() if t != "help" and f"make {t}" not in text and f"(`{t}`)" not in text]
    assert missing == []


def test_job_summary_grammar_singular_and_plural(tmp_path, kubeconfig):
    """`N jobs: ... (M API calls)` says `1 job` and `1 API call` when there is one."""
    import subprocess
    import sys

    from tests.helpers import make_project
    root = make_project(tmp_path / "p", "model: {m: {command: echo hi}}\ndataset: {d: {}}\n")
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)

    def job() -> str:
        result = subprocess.run(["make", "--no-print-directory", "job", f"PYTHON={sys.executable}"], cwd=root,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[-1]
    first = job()
    calls = int(re.fullmatch(r"1 job: 1 created, 0 failed \((\d+) API calls?\)", first).group(1))
    assert first.endswith(f"({calls} API call{'' if calls == 1 else 's'})")
    assert job() == "1 job: 0 created, 1 unchanged, 0 failed (1 API call)"
