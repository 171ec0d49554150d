"""The codebase's shape, pinned: one command line, no private imports across modules, light local runs."""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys

import pytest

from kube.config import FIELD_KINDS
from tests.helpers import ROOT, make_project

MODULES = sorted([*(ROOT / "kube").glob("*.py"), *(ROOT / "s3sync").glob("*.py"), ROOT / "launch.py",
                  ROOT / "s3utils.py"])


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                yield node.module or "", alias.name


def test_no_module_imports_another_modules_private_names():
    offenders = [(p.name, mod, name) for p in MODULES for mod, name in _imports(p)
                 if name and name.startswith("_") and name != "__future__" and mod != "__future__"]
    assert offenders == []
    for path in MODULES:          # nor reaches into one through an attribute: `status._job_state`
        text = path.read_text()
        assert not re.search(r"\b(config|grid|render|status|cluster|operations|plan|local|naming|command|"
                             r"provenance|hparams|yamltext|model)\._[a-z]", text), path.name


def _graph() -> dict[str, set[str]]:
    """Module -> the toolbox modules it imports (relative `from . import x` and `from .x import y`)."""
    names = {p.stem for p in (ROOT / "kube").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "kube").glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(a.name for a in node.names if a.name in names)
        graph[path.stem] = found - {path.stem}
    return graph


def test_no_import_cycle_among_the_toolbox_modules():
    graph, done, path = _graph(), set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for child in sorted(graph.get(node, ())):
            visit(child)
        path.pop()
        done.add(node)
    for module in sorted(graph):
        visit(module)
    assert "render" in graph["operations"] and "podspec" in graph["render"]      # the graph is really read


def test_modules_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in MODULES}
    assert {n: size for n, size in sizes.items() if size > 420} == {}


def test_types_check():
    """mypy over the product code, with the configuration in pyproject.toml."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]


def test_argparse_lives_in_the_two_command_lines_only():
    users = sorted(p.relative_to(ROOT).as_posix() for p in MODULES if any(m == "argparse" for m, _ in _imports(p)))
    assert users == ["launch.py", "s3sync/cli.py"]


def _parser():
    sys.path.insert(0, str(ROOT))
    import launch
    return launch.build_parser()


def test_every_command_and_flag_is_documented_and_job_help_lists_only():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and action.help != argparse.SUPPRESS, f"launch.py {name} {action.option_strings}"
    result = subprocess.run([sys.executable, str(ROOT / "launch.py"), "job", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--only" in result.stdout and "--overwrite" in result.stdout


@pytest.mark.parametrize("argv", [["local"], ["local", "--dry-run"], ["runs"]])
def test_local_side_imports_no_cluster_template_or_s3_library(tmp_path, argv):
    make_project(tmp_path, "model: {m: {command: 'true'}}\n")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import launch; code = launch.main(sys.argv[2:]); "
             "print(sorted(m for m in ('kubernetes', 'jinja2', 'boto3', 'botocore') if m in sys.modules)); "
             "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(ROOT), *argv, "--root", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_reference_table_is_the_declared_settings():
    """docs/configuration.md carries the table made from kube/settings.py's declarations, unchanged.
    Regenerate: python -c 'from kube.settings import reference_table; print(reference_table())'"""
    from kube.settings import reference_table
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert reference_table() in text
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, re.M)
    documented = [r for r in rows if r in FIELD_KINDS]
    assert sorted(documented) == sorted(FIELD_KINDS), set(FIELD_KINDS) ^ set(documented)
    assert len(documented) == len(set(documented))
