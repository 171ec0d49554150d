"""The shape of the S3 code, pinned: s3utils.py a small entry point over the s3sync package, which imports nothing
from kube/, has no import cycles, keeps argparse and printing on the command line's side, and type-checks."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import s3utils
from s3sync import sync
from s3sync.transfer import Event, Finished, Moved, Skipped, Started
from tests.helpers import ROOT
from tests.s3_fixtures import tree

PACKAGE = ROOT / "s3sync"
MODULES = sorted(PACKAGE.glob("*.py"))
COMMAND_LINE = {"console.py", "menu.py", "cli.py"}        # what the user sees; everything else is the library
PUBLIC = ["ACTIONS", "ALIASES", "MENU", "MULTIPART_THRESHOLD", "PART_SIZES", "TEMP_SUFFIX", "WORKERS", "Bucket",
          "NothingMatched", "Plan", "Reporter", "Result", "S3ConfigError", "S3Error", "Selection", "Settings",
          "Transfer", "clean", "download_s3_path", "environment", "find_s3_path", "interactive", "list_s3_path",
          "local_files", "local_target", "main", "md5_file", "s5cmd_binary", "same_content", "select",
          "upload_s3_path"]


def imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in `path`: level 1 is `from .x import`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module or alias.name, node.level) for alias in node.names] if not node.module else [
                (node.module, node.level)]
    return found


def test_s3utils_is_a_small_entry_point_and_every_module_is_short():
    assert len((ROOT / "s3utils.py").read_text().splitlines()) < 300
    long = {p.name: n for p in MODULES if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_s3sync_imports_nothing_from_kube():
    offenders = [(p.name, m) for p in MODULES for m, level in imports(p)
                 if m.split(".")[0] in ("kube", "launch", "toolbox") or level > 1]
    assert offenders == []
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import s3utils; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kube', 'boto3', 'botocore')))",
                            str(ROOT)], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr


def test_no_import_cycles_inside_s3sync():
    graph = {p.stem: {m.split(".")[0] for m, level in imports(p) if level == 1} for p in MODULES}
    graph = {name: {m for m in deps if m in graph} for name, deps in graph.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, (*path, name))
            done.add(name)
    for name in sorted(graph):
        visit(name, ())
    library = {p.stem for p in MODULES if p.name not in COMMAND_LINE}
    assert {(n, d) for n in library for d in graph[n] if f"{d}.py" in COMMAND_LINE} == set()


def test_argparse_and_printing_live_on_the_command_line_side():
    assert [p.name for p in MODULES if any(m == "argparse" for m, _ in imports(p))] == ["cli.py"]
    for path in MODULES:
        if path.name in COMMAND_LINE:
            continue
        tree_ = ast.parse(path.read_text())
        calls = [n.func.id for n in ast.walk(tree_) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        streams = [n.attr for n in ast.walk(tree_) if isinstance(n, ast.Attribute) and n.attr in ("stdout", "stderr")
                   and isinstance(n.value, ast.Name) and n.value.id == "sys"]
        assert "print" not in calls and "input" not in calls and streams == [], path.name


def test_every_public_name_of_s3utils_is_still_there():
    missing = [name for name in PUBLIC if not hasattr(s3utils, name)]
    assert missing == []
    assert s3utils.Job is s3utils.Transfer and not hasattr(s3utils, "remove_s3_path")


def test_the_library_prints_nothing_and_reports_through_the_callback(seaweed, backend, capsys, tmp_path):
    project = tree(tmp_path / "p", {"data/a.txt": b"a", "data/sub/b.bin": os.urandom(100)})
    os.symlink("/etc/passwd", project / "data/passwd")
    events: list[Event] = []
    capsys.readouterr()
    result = sync.upload("data/", project, progress=events.append)
    assert sorted(result.transferred) == ["data/a.txt", "data/sub/b.bin"]
    down = sync.download("data/", tmp_path / "copy", progress=events.append)
    assert sorted(down.transferred) == ["data/a.txt", "data/sub/b.bin"]
    assert capsys.readouterr() == ("", "")
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Skipped" and "data/passwd" in events[0].message           
    assert kinds.count("Started") == 2 and kinds.count("Finished") == 2 and kinds.count("Moved") == 4
    assert {e.transfer.key for e in events if isinstance(e, Moved)} == {"data/a.txt", "data/sub/b.bin"}
    assert [e.files for e in events if isinstance(e, Started)] == [2, 2]
    assert isinstance(events[-1], Finished) and not any(isinstance(e, Skipped) for e in events[1:])


def test_s3utils_runs_as_a_script_from_anywhere_and_imports_as_toolbox_s3utils(tmp_path):
    toolbox = tmp_path / "project" / "src" / "toolbox"
    toolbox.mkdir(parents=True)
    for name in ("__init__.py", "s3utils.py"):
        shutil.copy(ROOT / name, toolbox / name)
    shutil.copytree(PACKAGE, toolbox / "s3sync", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_", "PYTHON"))}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, str(toolbox / "s3utils.py"), "list", "data/"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: S3_BUCKET_NAME is not set"), result.stderr
    code = ("import sys; from toolbox.s3utils import download_s3_path, S3Error; import toolbox.s3utils as s; "
            "print(download_s3_path.__module__, S3Error.__module__, 's3sync' in sys.modules, 'boto3' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "project", capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(tmp_path / "project" / "src")}, timeout=60)
    assert result.stdout.split() == ["toolbox.s3sync.console", "toolbox.s3sync.errors", "False", "False"], result.stderr


def test_s3_code_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy", "s3sync", "s3utils.py"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
