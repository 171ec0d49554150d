"""The day after launch: status of every cell, logs of one, and a smoke run before the grid."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import config as kconfig
from . import grid, provenance, render, status
from .cluster_cli import _gateway, cmd_job, render_grid, selector
from .errors import ClusterError, UsageError


def _node_gpus(gw: Any) -> dict[str, str]:
    """GPU product per node; namespace-only users may not list nodes: then the column stays empty."""
    try:
        nodes = gw.list("Node", namespaced=False)
    except ClusterError as err:
        if err.status == 403:
            return {}
        raise
    return {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(status.GPU_LABEL, "") for n in nodes}


def collect(args: argparse.Namespace) -> tuple[list[status.Cell], list[status.Cell], int]:
    """Four list calls whatever the grid size: jobs, pods, pod events, nodes."""
    cfg = kconfig.load(args.root)
    runs = grid.build_runs(cfg, args.only)
    gw = _gateway(cfg.project)
    sel = selector(cfg.project)
    jobs = gw.list("Job", sel)
    pods = gw.list("Pod", sel)
    events = gw.call("list events", gw.core.list_namespaced_event, gw.namespace,
                     field_selector="involvedObject.kind=Pod", _preload_content=False)
    events = json.loads(events.data).get("items") or []
    head = provenance.read(cfg.project.root).commit
    cells, orphans = status.cells(runs, jobs, pods, events, _node_gpus(gw), head)
    return cells, orphans, gw.calls


def cmd_status(args: argparse.Namespace) -> int:
    cells, orphans, calls = collect(args)
    if args.json:
        print(json.dumps({**status.as_json(cells, orphans), "api_calls": calls}, indent=2))
        return 0
    print(status.table(cells), end="")
    print(status.totals(cells))
    if orphans:
        print("\nJobs on the cluster that are no longer in the grid:")
        print(status.table(orphans), end="")
    summary = status.failure_summary(cells)
    if summary:
        print("\n" + summary, end="")
    return 0


def _resolve_job(args: argparse.Namespace) -> str:
    """A job name, or a `key=value` selection that picks exactly one cell."""
    if "=" not in args.name:
        return args.name
    cfg = kconfig.load(args.root)
    runs = grid.build_runs(cfg, args.name)
    if len(runs) != 1:
        raise UsageError(f"logs: name={args.name!r} selects {len(runs)} cells; expected exactly one "
                         f"({', '.join(r.name for r in runs[:5])}{'...' if len(runs) > 5 else ''})")
    return runs[0].name


def cmd_logs(args: argparse.Namespace) -> int:
    cfg = kconfig.load(args.root)
    name = _resolve_job(args)
    gw = _gateway(cfg.project)
    pods = gw.list("Pod", f"job-name={name}") or gw.list("Pod", f"batch.kubernetes.io/job-name={name}")
    if not pods:
        raise ClusterError(f"job '{name}' has no pod (not submitted, still pending creation, or cleaned up)")
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    failed = (pod.get("status") or {}).get("phase") == "Failed"
    tail = args.tail if args.tail is not None else (50 if failed else None)
    if failed:
        print(f"# {pod['metadata']['name']} failed ({status.pod_reason(pod) or 'unknown reason'}); "
              f"last {tail} lines:", file=sys.stderr)
    if args.follow:
        stream = gw.logs(pod["metadata"]["name"], tail=tail, follow=True)
        for chunk in stream.stream(1024):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        return 0
    print(gw.logs(pod["metadata"]["name"], tail=tail), end="")
    return 0


def run_smoke(args: argparse.Namespace) -> bool:
    """Submit the first selected combination (with `smoke:` overrides), wait, report; True on success."""
    from .cluster import create_or_replace
    cfg = kconfig.load(args.root)
    runs = grid.build_runs(cfg, args.only, overrides=dict(cfg.smoke) or {"_smoke": True})
    if not runs:
        raise UsageError("smoke: no combination selected")
    run = runs[0]
    manifests, extras = render_grid([run], cfg.project)
    gw = _gateway(cfg.project)
    from .cluster import ensure
    for obj in extras:
        ensure(gw, obj)
    create_or_replace(gw, manifests[0], replace=True)
    print(f"job.batch/{run.name} created (smoke test of {run.model} x {run.dataset}); waiting...", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        job = gw.list("Job", f"{selector(cfg.project)}") or []
        job = next((j for j in job if j["metadata"]["name"] == run.name), None)
        pods = gw.list("Pod", f"job-name={run.name}")
        info = status.classify(job, pods, [], {}, status.datetime.now(status.timezone.utc))
        if info["state"] in ("succeeded", "failed"):
            break
        time.sleep(args.poll)
    else:
        print(f"Smoke test still {info['state']} after {args.timeout:g} s: {info.get('reason') or 'no reason given'}")
        return False
    if info["state"] == "succeeded":
        print(f"Smoke test succeeded: {run.name}")
        return True
    print(f"Smoke test failed: {info.get('reason') or 'unknown reason'}")
    if pods:
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        try:
            print("Last log lines:\n" + gw.logs(pod["metadata"]["name"], tail=20), end="")
        except ClusterError:
            pass
    return False


def cmd_smoke(args: argparse.Namespace) -> int:
    return 0 if run_smoke(args) else 1


def cmd_job_with_smoke(args: argparse.Namespace) -> int:
    if getattr(args, "smoke", False) and not run_smoke(args):
        print("The grid was not launched.", file=sys.stderr)
        return 1
    return cmd_job(args)


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="state, age, node, GPU and reason of every cell of the grid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("logs", help="logs of one cell's pod (a job name or a key=value selection)")
    p.add_argument("--name", required=True, help="job name, or e.g. 'model=average dataset=data1'")
    p.add_argument("--follow", action="store_true", help="stream the logs")
    p.add_argument("--tail", type=int, default=None, help="last N lines (default: all; 50 for a failed cell)")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("smoke", help="run the first combination as a Job (with smoke: overrides) and wait for it")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait (default 1800)")
    p.add_argument("--poll", type=float, default=5, help="seconds between checks (default 5)")
    p.set_defaults(func=cmd_smoke)
    job = sub.choices["job"]
    job.add_argument("--smoke", action="store_true", help="launch the grid only if a smoke run succeeds")
    job.add_argument("--timeout", type=float, default=1800, help="smoke: seconds to wait")
    job.add_argument("--poll", type=float, default=5, help="smoke: seconds between checks")
    job.set_defaults(func=cmd_job_with_smoke)
