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
