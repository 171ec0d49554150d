"""The cluster commands (job, dryrun, pod, copy, delete, clean-jobs): validate and render first, then call."""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import config as kconfig
from . import grid, plan, provenance, render
from .errors import ClusterError, ConfigError, ToolboxError, UsageError
from .model import Project, Run

WORKERS = 8


def selector(project: Project) -> str:
    return f"user={project.user},project={project.project_name}"


def render_grid(runs: Sequence[Run], project: Project) -> tuple[list[dict], list[dict]]:
    """Every Job manifest and the Secrets/ConfigMaps they need, all checked before any API call."""
    prov = provenance.read(project.root).annotations()
    extras_objects: dict[str, dict] = {}
    jobs = []
    cache: dict[tuple, render.Extras] = {}
    for run in runs:
        key = tuple(sorted(set(run.settings.file)))
        if key not in cache:
            extras, objects = render.extras_for(project, run.settings)
            cache[key] = extras
            extras_objects.update({o["metadata"]["name"]: o for o in objects})
        jobs.append(render.render_job(run, cache[key], prov))
    return jobs, list(extras_objects.values())


def _gateway(project: Project):
    from .cluster import Gateway
    return Gateway(project.namespace, workers=WORKERS)


def _load(args: argparse.Namespace) -> tuple[kconfig.Config, list[Run]]:
    cfg = kconfig.load(args.root)
    return cfg, grid.build_runs(cfg, args.only)


def cmd_job(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from .cluster import create_or_replace, ensure
    cfg, runs = _load(args)
    project = cfg.project
    manifests, extras = render_grid(runs, project)
    _, states = grid.parse_only(args.only)
    prov = provenance.read(project.root)
    if prov.dirty:
        print(f"warning: the working tree has uncommitted changes (diff {prov.diff_hash}); jobs run the "
              f"committed code pulled at start", file=sys.stderr)
    gw = _gateway(project)
    existing = {j["metadata"]["name"]: j for j in gw.list("Job", selector(project))}
    if states:
        manifests = _filter_states(manifests, existing, states)
    actions = plan.plan(manifests, existing, overwrite=args.overwrite)
    if any(a.submits for a in actions):
        for obj in extras:
            ensure(gw, obj)
    counts = {"created": 0, "replaced": 0, "unchanged": 0, "changed": 0, "failed": 0}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {a.name: pool.submit(create_or_replace, gw, a.manifest, a.kind == "replace")
                   for a in actions if a.submits}
        for action in actions:
            print(action.message, file=out, flush=True)
            if not action.submits:
                counts[action.kind] += 1
                continue
            try:
                result = futures[action.name].result()
            except ToolboxError as err:
                counts["failed"] += 1
                print(f"error: {err}", file=out, flush=True)
                continue
            counts[result] += 1
            print(f"job.batch/{action.name} {result}", file=out, flush=True)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("created", "failed"))
    print(f"{len(actions)} jobs: {summary} ({gw.calls} API calls)", file=out)
    return 1 if counts["failed"] else 0


def _filter_states(manifests: list[dict], existing: dict, states: set[str]) -> list[dict]:
    """`only=failed` / `only=missing`: resubmit just those cells."""
    from .status import _job_state
    keep = []
    for m in manifests:
        job = existing.get(m["metadata"]["name"])
        if ("missing" in states and job is None) or ("failed" in states and job and _job_state(job)[0] == "failed"):
            keep.append(m)
    return keep


def write_build(docs: Sequence[dict], root: Path, folder: str) -> Path:
    """Write each manifest (Secrets redacted) under build/<folder>/, replacing the previous dry run."""
    target = root / "build" / folder
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    for doc in docs:
        (target / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml").write_text(render.to_yaml([doc]))
    return target


def cmd_dryrun(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    cfg, runs = _load(args)
    manifests, extras = render_grid(runs, cfg.project)
    docs = extras + manifests
    print(render.to_yaml(docs), end="", file=out)
    target = write_build(docs, cfg.project.root, "jobs")
    print(f"# {len(manifests)} jobs written to {target.relative_to(cfg.project.root)}/", file=sys.stderr)
    return 0


def cmd_pod(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from .cluster import ensure
    cfg = kconfig.load(args.root)
    project = cfg.project
    extras, objects = render.extras_for(project, cfg.base_settings)
    pod = render.render_pod(project, cfg.base_settings, extras, args.name)
    name = pod["metadata"]["name"]
    if args.dry_run:
        print(render.to_yaml(objects + [pod]), end="", file=out)
        write_build(objects + [pod], project.root, "pod")
        return 0
    gw = _gateway(project)
    for obj in objects:
        ensure(gw, obj)
    gw.create(pod)
    print(f"pod/{name} created", file=out)
    print(f"Open a shell when it runs: kubectl exec -it {name} -- /bin/bash", file=out)
    return 0


def _owned_by_job(pod: dict) -> bool:
    return any(o.get("kind") == "Job" for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def confirm(question: str, yes: bool, stdin: TextIO | None = None) -> bool:
    if yes:
        return True
    stdin = stdin or sys.stdin
    print(f"{question} [y/N] ", end="", flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """List what belongs to you (one selector), confirm, delete jobs with their pods and standalone pods."""
    out = out or sys.stdout
    from .cluster import NotFound
    from .status import _job_state
    cfg = kconfig.load(args.root)
    project = cfg.project
    gw = _gateway(project)
    failed_only = getattr(args, "failed_only", False)
    jobs = gw.list("Job", selector(project)) if args.kind in ("job", "all") else []
    if failed_only:
        jobs = [j for j in jobs if _job_state(j)[0] == "failed"]
    pods = [p for p in gw.list("Pod", selector(project)) if not _owned_by_job(p)] if args.kind in ("pod", "all") else []
    targets = [("Job", j["metadata"]["name"]) for j in jobs] + [("Pod", p["metadata"]["name"]) for p in pods]
    what = "failed jobs" if failed_only else {"job": "jobs", "pod": "pods", "all": "jobs and pods"}[args.kind]
    if not targets:
        print(f"No {what} of user '{project.user}' in project '{project.project_name}'.", file=out)
        return 0
    for kind, name in targets:
        print(f"  {'job.batch' if kind == 'Job' else 'pod'}/{name}", file=out)
    if not confirm(f"Delete these {len(targets)} {what} (jobs with their pods) in namespace {project.namespace}?",
                   args.yes):
        print("Nothing deleted.", file=out)
        return 1
    failures = 0
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(gw.delete, kind, name) for kind, name in targets]
        for (kind, name), future in zip(targets, futures):
            try:
                future.result()
            except NotFound:
                pass
            except ClusterError as err:
                failures += 1
                print(f"error: {err}", file=out)
                continue
            print(f"{'job.batch' if kind == 'Job' else 'pod'}/{name} deleted", file=out)
    return 1 if failures else 0


def cmd_copy(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Copy the `file:` section into a running pod (a tar stream through the exec API, as kubectl cp does)."""
    out = out or sys.stdout
    from .cluster import copy_files
    cfg = kconfig.load(args.root)
    project = cfg.project
    files = sorted(set(cfg.base_settings.file))
    if not files:
        raise ConfigError(kconfig.LAUNCH_FILE, "file", "expected a list of files to copy (the file: section is empty)")
    render.files_configmap(project, files)          # the same checks as for jobs, before any call
    gw = _gateway(project)
    copy_files(gw, args.pod, project, files)
    for path in files:
        print(f"Copied {path} to pod/{args.pod}:/workspace/{project.project_name}/{path}", file=out)
    return 0


def register(sub: Any) -> None:
    """Add the cluster commands to launch.py's subparsers."""
    p = sub.add_parser("job", help="submit one Kubernetes Job per selected combination")
    p.add_argument("--overwrite", action="store_true", help="replace running or succeeded jobs too")
    p.set_defaults(func=cmd_job)
    p = sub.add_parser("dryrun", help="print every Job manifest (and write them under build/), no cluster contact")
    p.set_defaults(func=cmd_dryrun)
    p = sub.add_parser("pod", help="start the interactive pod running server_command")
    p.add_argument("--name", default=None, help="pod name (default: <user>-<project>-interactive-pod)")
    p.add_argument("--dry-run", action="store_true", help="print the manifest, contact no cluster")
    p.set_defaults(func=cmd_pod)
    p = sub.add_parser("copy", help="copy the file: section into a running pod")
    p.add_argument("--pod", required=True, help="the pod's name")
    p.set_defaults(func=cmd_copy)
    p = sub.add_parser("delete", help="delete your own jobs and/or pods of this project, after confirmation")
    p.add_argument("--kind", choices=("job", "pod", "all"), default="all", help="what to delete (default: all)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("clean-jobs", help="delete your failed jobs of this project, after confirmation")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete, kind="job", failed_only=True)
