#!/usr/bin/env python3
"""Kube Toolbox command line: parse arguments, call the library, map errors to one line and an exit status."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Found through the project-root symlink: resolve it to import the toolbox's own `kube` package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube import config as kconfig  # noqa: E402
from kube import grid, local  # noqa: E402
from kube.errors import ToolboxError, UsageError  # noqa: E402


def _runs(args: argparse.Namespace):
    cfg = kconfig.load(args.root)
    return cfg, grid.build_runs(cfg, args.only)


def cmd_local(args: argparse.Namespace) -> int:
    _, runs = _runs(args)
    if args.first:
        runs = runs[:1]
    local.run_all(runs, keep_going=not args.stop_on_failure, dry_run=args.dry_run)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """A table of the selected combinations: index, name, model, dataset, public hparams."""
    _, runs = _runs(args)
    rows = [("#", "NAME", "MODEL", "DATASET", "HPARAMS")]
    for run in runs:
        hp = " ".join(f"{k}={grid.value_text(v)}" for k, v in run.public_hparams.items())
        rows.append((str(run.index), run.name, run.model, run.dataset, hp))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    print(f"{len(runs)} combination(s)")
    return 0


def cmd_print_config(args: argparse.Namespace) -> int:
    """The fully merged settings of one combination, as YAML (.env values redacted)."""
    import dataclasses

    import yaml

    cfg, runs = _runs(args)
    if not runs:
        raise UsageError("print-config: no combination selected")
    if not 0 <= args.index < len(runs):
        raise UsageError(f"print-config: --index expected 0..{len(runs) - 1}, got {args.index}")
    run = runs[args.index]
    project = cfg.project
    doc = {
        "project": {"project_name": project.project_name, "user": project.user, "namespace": project.namespace,
                    "conda_env_name": project.conda_env_name, "root": str(project.root),
                    "dotenv": {k: "<redacted>" for k in project.dotenv}},
        "run": {"name": run.name, "model": run.model, "dataset": run.dataset, "hparams": dict(run.hparams),
                "labels": dict(run.labels), "local_command": run.local_command,
                "remote_command": run.remote_command},
        "settings": {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v)
                     for k, v in dataclasses.asdict(run.settings).items()},
    }
    print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=Path.cwd(), help="project root holding config/ (default: cwd)")
    common.add_argument("--only", default=None,
                        help="select combinations without editing YAML: 'model=a,b dataset=d lr=0.1'")
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("local", parents=[common], help="run every selected combination here, in sequence")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--first", action="store_true", help="run only the first selected combination")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failing run")
    p.set_defaults(func=cmd_local)

    p = sub.add_parser("runs", parents=[common], help="list the selected combinations and their names")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("print-config", parents=[common], help="show the merged settings of one combination")
    p.add_argument("--index", type=int, default=0, help="which selected combination (default: the first)")
    p.set_defaults(func=cmd_print_config)

    try:
        from kube import cluster_cli
    except ImportError as err:                  # pragma: no cover - only while the cluster side is missing
        if "cluster_cli" not in str(err):
            raise
    else:
        cluster_cli.register(sub)
        from kube import ops_cli
        ops_cli.register(sub)
    for name, subparser in sub.choices.items():   # every command takes --root and --only
        for flag, kwargs in (("--root", {"type": Path, "default": Path.cwd()}), ("--only", {"default": None})):
            if flag not in subparser._option_string_actions:
                subparser.add_argument(flag, **kwargs, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ToolboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
