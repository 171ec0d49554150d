"""What the command lines share: printing (results to stdout, diagnostics to stderr) and reading the project's
config and selected cells from parsed arguments. No argument parsing here: launch.py owns the parser."""
from __future__ import annotations

import sys
from typing import Any


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def out(message: str = "", end: str = "\n") -> None:
    print(message, end=end, flush=True)


CLUSTER_COMMANDS = ("job", "dryrun", "smoke", "status", "logs", "forward", "pod", "copy", "delete", "clean-jobs")


def config_of(args: Any) -> Any:
    """The project's config with the `set=` overrides applied; cluster commands also need user and namespace."""
    from . import config, overrides
    sets = overrides.parse(getattr(args, "set", None))          # set=: checked before anything is read
    cfg = overrides.apply(config.load(args.root), sets)
    if args.command in CLUSTER_COMMANDS:
        config.require_identity(cfg, f"make {args.command}")
    return cfg


def set_annotations(args: Any) -> dict[str, str]:
    from . import overrides
    return overrides.job_annotations(overrides.parse(getattr(args, "set", None)))


def runs_of(args: Any) -> tuple[Any, Any, list]:
    """(config, selection, the selected runs) of a grid command."""
    from . import grid, stages
    cfg = config_of(args)
    selection = grid.Selection.parse(getattr(args, "only", None))
    return cfg, selection, stages.pick(grid.build_runs(cfg, selection), getattr(args, "stage", None))


def retrying(message: str) -> None:
    """What the Gateway says once when a call starts being retried (a server that is down)."""
    err(f"note: {message}")


def submitted(item: Any) -> None:
    """One submission result, kubectl's way: the plan's sentence, then `job.batch/NAME created` or the error."""
    from .present import RESOURCES
    out(item.message)
    if item.error:
        err(f"error: {item.error}")
    elif item.outcome in ("created", "replaced"):
        out(f"{RESOURCES[item.kind]}/{item.name} {item.outcome}")


TRUE, FALSE = ("true", "yes", "y", "on", "1"), ("false", "no", "n", "off", "0")


def truth(text: str) -> bool:
    """A true/false argument as the public toolbox spelt it (`True`) and as people do: true/false, yes/no, 1/0,
    on/off in any case; anything else is refused (argparse says which argument)."""
    folded = str(text).strip().lower()
    if folded in TRUE or folded in FALSE:
        return folded in TRUE
    raise ValueError(text)
