"""The cluster commands of launch.py (job, dryrun, smoke, status, logs, forward, pod, copy, delete): each takes the
parsed arguments, calls the library and prints what it returns. launch.py parses; this module prints."""
from __future__ import annotations

import shutil
import sys
from typing import Any, Literal

from .console import config_of, err, out, retrying, runs_of, set_annotations, submitted


def _provenance(project: Any, warn: bool):
    from . import present, provenance
    prov = provenance.read(project.root)
    for line in present.submission_notes(project, prov, warn):
        err(line)
    return prov


PROGRESS_FROM = 300                  # a bar for submissions of more Jobs than this, on a terminal


def progress(total: int, unit: str) -> Any:
    """A tqdm bar on stderr for long operations, only when stderr is a terminal (pipes and logs stay clean)."""
    if total <= PROGRESS_FROM or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit=f" {unit}", file=sys.stderr, leave=False, dynamic_ncols=True)


def cmd_dryrun(args: Any) -> int:
    from . import operations, present, stages
    cfg, _, runs = runs_of(args)
    rendered = operations.render_grid(stages.flatten(runs), cfg.project,
                                      {**_provenance(cfg.project, False).annotations(), **set_annotations(args)})
    text = operations.stream_text(rendered.objects, rendered.jobs)
    sys.stdout.write(text)
    sys.stdout.flush()
    target = operations.write_build(cfg.project.root, "jobs", text)
    err(f"# {present.plural(len(rendered.jobs), 'job')} written to {target.relative_to(cfg.project.root)}")
    return 0


def cmd_job(args: Any) -> int:
    """Select the cells (their states from one list when only=failed|missing), render once, submit."""
    from . import operations, pipeline_cli, present, stages
    if args.smoke and cmd_smoke(args) != 0:
        err("The grid was not launched.")
        return 1
    cfg, selection, runs = runs_of(args)
    project = cfg.project
    annotations = {**_provenance(project, True).annotations(), **set_annotations(args)}
    if args.wait or stages.staged(runs):          # a pipeline: kube/pipeline_cli.py
        return pipeline_cli.job(args, cfg, selection, runs, annotations)
    rendered = operations.render_grid(runs, project, annotations) if not selection.states else None
    gw = operations.gateway(project, retrying)
    existing = operations.existing_jobs(gw, project, runs)
    if rendered is None:
        chosen = operations.select_states(gw, project, runs, existing, selection.states)
        rendered = operations.render_grid(chosen, project, annotations)

    bar = progress(len(rendered.jobs), "jobs")

    def report(item: Any) -> None:
        if bar is not None:
            bar.clear()
        submitted(item)
        if bar is not None:
            bar.update(1)

    try:
        result = operations.submit(gw, project, rendered, existing, overwrite=args.overwrite, report=report)
    finally:
        if bar is not None:
            bar.close()
    parts = [f"{result.count(k)} {k}" for k in ("created", "replaced", "unchanged", "changed", "failed")
             if result.count(k) or k in ("created", "failed")]
    cells = sum(j.cells for j in rendered.jobs)
    held = f" ({present.plural(cells, 'cell')})" if cells != len(result.results) else ""
    out(f"{present.plural(len(result.results), 'job')}{held}: {', '.join(parts)} "
        f"({present.plural(result.calls, 'API call')})")
    return 1 if result.failed else 0


def cmd_smoke(args: Any) -> int:
    from . import grid, operations, present, stages
    from .errors import UsageError
    cfg = config_of(args)
    selection = grid.Selection.parse(args.only)
    runs = grid.build_runs(cfg, grid.Selection(selection.text, selection.filters),
                           overrides=dict(cfg.smoke) or {"_smoke": True})
    if not runs:
        raise UsageError("smoke: no combination selected")
    gw = operations.gateway(cfg.project, retrying)
    result = operations.smoke(gw, stages.units(runs[0])[0], args.timeout, args.poll,      # a pipeline: stage 1
                              started=lambda run: out(f"{present.RESOURCES[operations.kind_of(run)]}/{run.name} "
                                                      f"created (smoke test of {run.model} x {run.dataset}); "
                                                      f"waiting..."))
    out(present.smoke_text(result, args.timeout), end="")
    return 0 if result.ok else 1


def cmd_status(args: Any) -> int:
    from . import observe, operations, present
    cfg, _, runs = runs_of(args)
    report = observe.collect_status(operations.gateway(cfg.project, retrying), cfg.project, runs)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    out(present.status_report(report.cells, report.orphans, report.calls, args.json, width), end="")
    if getattr(args, "checkpoints", False) and not args.json:
        from . import checkpoint_status
        out(present.checkpoint_lines(checkpoint_status.newest(cfg.project, runs)), end="")
    return 0


def cmd_logs(args: Any) -> int:
    from . import distributed, observe, operations, pipeline_cli, present, status
    from .errors import ClusterError
    cfg = config_of(args)
    name = pipeline_cli.log_name(cfg, args.name, args.stage)
    gw = operations.gateway(cfg.project, retrying)
    pod = observe.cell_pod(gw, cfg.project, name, args.node)
    container = distributed.container_of(pod)
    failed = (pod.get("status") or {}).get("phase") == "Failed"
    tail = args.tail if args.tail is not None else (50 if failed else None)
    if failed:
        err(f"# {present.safe(pod['metadata']['name'])} failed "
            f"({present.safe(status.pod_reason(pod) or 'unknown reason')}); last {tail} lines:")
    try:
        if args.follow:
            for chunk in gw.logs(pod["metadata"]["name"], tail=tail, follow=True, container=container):
                out(chunk, end="")
            return 0
        out(gw.logs(pod["metadata"]["name"], tail=tail, container=container), end="")
    except ClusterError as error:
        if error.status != 400 or "waiting to start" not in str(error):
            raise
        err(f"# pod/{present.safe(pod['metadata']['name'])} has no log yet: its container is waiting to start "
            f"({present.safe(status.pod_reason(pod) or 'not started')}); try again when `make status` says running")
    return 0


def cmd_forward(args: Any) -> int:
    """Port-forward to a cell's `server:` sidecar with kubectl (which keeps the tunnel open)."""
    import shutil
    import subprocess

    from . import grid, observe, operations
    from .errors import UsageError
    cfg = config_of(args)
    name = grid.resolve_name(cfg, args.name, "forward")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise UsageError("forward: kubectl is not on PATH (it keeps the tunnel open)")
    pod = observe.cell_pod(operations.gateway(cfg.project, retrying), cfg.project, name)
    port = observe.server_port(pod)
    local = args.port or port
    err(f"Forwarding http://127.0.0.1:{local} to {pod['metadata']['name']}:{port} (Ctrl-C stops)")
    return subprocess.call([kubectl, "port-forward", "-n", cfg.project.namespace, f"pod/{pod['metadata']['name']}",
                            f"{local}:{port}"])


def cmd_pod(args: Any) -> int:
    from . import files, operations, present, render
    cfg = config_of(args)
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
    operations.start_pod(operations.gateway(project, retrying), project, pod, objects)
    out(f"pod/{pod.name} created")
    err(f"Open a shell when it runs: kubectl exec -it {pod.name} -n {project.namespace} -- /bin/bash")
    return 0


def cmd_copy(args: Any) -> int:
    from . import config, files, operations
    from .errors import ConfigError
    cfg = config_of(args)
    project = cfg.project
    wanted = sorted(set(cfg.base_settings.file))
    if not wanted:
        raise ConfigError(config.LAUNCH_FILE, "file", "expected a list of files to copy (the file: section is empty)")
    found = files.read(project, wanted)                 # the same checks as for jobs, before any call
    names = found.names if found else ()
    where = operations.copy_files(operations.gateway(project, retrying), project, cfg.base_settings, args.pod, wanted)
    for name in names:
        out(f"Copied {name} to pod/{args.pod} ({where})")
    return 0


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_delete(args: Any) -> int:
    """List what belongs to you (one selector), confirm, delete jobs with their pods and standalone pods."""
    from . import cleanup, operations, present
    cfg = config_of(args)
    project = cfg.project
    gw = operations.gateway(project, retrying)
    failed_only = args.command == "clean-jobs"
    kind: Literal["job", "pod", "all"] = "job" if failed_only else args.kind
    owned = cleanup.list_owned(gw, project, jobs=kind in ("job", "all"))
    targets = cleanup.find_owned(owned, kind, failed_only)
    extras = cleanup.unused_extras(owned, targets) if kind in ("job", "all") else []
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
        if error == cleanup.KEPT:
            out(f"{present.RESOURCES[target.kind]}/{target.name} kept (a job submitted meanwhile uses it)")
        elif error:
            err(f"error: {error}")
        else:
            out(f"{present.RESOURCES[target.kind]}/{target.name} deleted")

    result = cleanup.delete(gw, targets + extras, report)
    return 1 if result.errors else 0
