"""The public toolbox's command line, still understood: `--mode X [--pod_name N] [--overwrite True]`."""
from __future__ import annotations

from .errors import UsageError

COMPAT_MODES = {"job": "job", "local": "local", "dryrun": "dryrun", "local-dryrun": "local-dryrun",
                "local-first": "local-first", "pod": "pod", "pod-dryrun": "pod-dryrun", "copy_files": "copy"}


def translate_mode(argv: list[str]) -> list[str]:
    """`--mode X [--pod_name N] [--overwrite True]` (the older command line) -> today's subcommands."""
    if "--mode" not in argv and not any(a.startswith("--mode=") for a in argv):
        return argv
    rest, mode, i = [], None, 0
    values: dict[str, str] = {}
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
        key = "--pod_name" if key == "--pod" else key              # both spellings of the pod's name
        if key in ("--mode", "--pod_name", "--overwrite"):
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{key}: expected a value")
                value, i = argv[i + 1], i + 1
            values[key] = value
        else:
            rest.append(arg)
        i += 1
    mode = values.get("--mode", "")
    if mode not in COMPAT_MODES:
        raise UsageError(f"--mode: expected one of {', '.join(COMPAT_MODES)}, got {mode!r}")
    command = COMPAT_MODES[mode]
    new = {"local-dryrun": ["local", "--dry-run"], "local-first": ["local", "--first"],
           "pod-dryrun": ["pod", "--dry-run"]}.get(command, [command])
    if values.get("--pod_name") and new[0] in ("copy", "pod"):
        new += ["--pod" if new[0] == "copy" else "--name", values["--pod_name"]]
    if values.get("--overwrite", "").lower() in ("true", "1", "yes") and command == "job":
        new.append("--overwrite")
    return new + rest
