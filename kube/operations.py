"""The cluster workflows as typed functions: render, plan and submit, delete, status, smoke, logs, pod, copy.

Nothing here prints or parses arguments: each function takes settings, runs and a Gateway and returns a
dataclass; launch.py decides what the user sees. Everything a function needs is checked before its first call.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from . import distributed, files, render, status, workloads
from .cluster import Gateway, ObjectKind
from .errors import AlreadyExists, ClusterError, NotFound, ToolboxError
from .ownership import require_owned, selector
from .plan import Action, plan
from .render import Rendered
from .settings import Project, Run, RunSettings

WORKERS = 8
USED_ANNOTATION = "kube-toolbox/used"
Outcome = Literal["created", "replaced", "unchanged", "changed", "failed"]


def gateway(project: Project, on_retry: Callable[[str], None] | None = None) -> Gateway:
    """The project's Gateway; `on_retry` hears once when a call starts being retried (a server that is down)."""
    gw = Gateway.for_project(project, workers=WORKERS)
    gw.on_retry = on_retry
    return gw


# --- rendering -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedGrid:
    jobs: list[Rendered]
    objects: list[dict]                 # the Secrets and ConfigMaps the Jobs refer to
    settings: tuple[RunSettings, ...] = ()      # the distinct settings of the Jobs (secret_env is checked on them)


def renderer(project: Project, settings: Sequence[RunSettings], annotations: Mapping[str, str] | None = None
             ) -> render.Renderer:
    """A Renderer given what `file:` ships for these settings, read here (rendering reads no project file)."""
    return render.Renderer(project, annotations, files.read_all(project, (s.file for s in settings)))


def render_grid(runs: Sequence[Run], project: Project, annotations: Mapping[str, str] | None = None) -> RenderedGrid:
    """Every Job of the selection (one a cell, packed, or arrays) and what they need, each checked, before any
    output or API call."""
    distinct = tuple(dict.fromkeys(run.settings for run in runs))
    r = renderer(project, distinct, annotations)
    jobs = [r.workload(w) for w in workloads.plan_workloads(runs, project)]
    return RenderedGrid(jobs, list(r.objects.values()), distinct)


def render_job(run: Run, annotations: Mapping[str, str] | None = None) -> Rendered:
    """One cell's own Job, whatever its packing settings (tests, the smoke run)."""
    assert run.project is not None
    return renderer(run.project, [run.settings], annotations).job(run)


def stream_text(objects: Sequence[Mapping[str, Any]], workloads: Sequence[Rendered]) -> str:
    """The multi-document stream `kubectl create -f -` reads: Secrets are named in a comment, never printed."""
    notes = [f"# Secret {o['metadata']['name']} (the .env values) is not printed: `make job` creates it; "
             f"to apply this stream yourself, create it first\n" for o in objects if o["kind"] == "Secret"]
    docs = [render.document(o) for o in objects if o["kind"] != "Secret"] + \
        [text for w in workloads for text in (w.text, *w.companions)]
    return "".join(notes) + "---\n".join(docs)


def write_build(root: Path, name: str, text: str) -> Path:
    """Write the printed stream to build/<name>.yaml, replacing the previous dry run's file atomically.

    One file whatever the grid size: `kubectl create -f build/jobs.yaml` takes it as it is, and 10,000 files
    would cost more than rendering them.
    """
    target = root / "build" / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    partial.replace(target)
    return target


# --- submitting -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobResult:
    name: str
    message: str                        # the plan's sentence
    outcome: Outcome
    error: str | None = None
    kind: str = "Job"                   # Job or PyTorchJob


@dataclass
class SubmitReport:
    results: list[JobResult] = field(default_factory=list)
    calls: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def failed(self) -> bool:
        return any(r.outcome == "failed" for r in self.results)


def ensure(gw: Gateway, project: Project, obj: Mapping[str, Any]) -> bool:
    """Create a content-addressed Secret/ConfigMap; one of that name must be ours and hold the same data."""
    name = obj["metadata"]["name"]
    try:
        gw.create(obj)
        return True
    except AlreadyExists:
        current = gw.get(obj["kind"], name)
        require_owned(current, project, f"{obj['kind']} '{name}'")
        if (current.get("data") or {}) != (obj.get("data") or {}):
            raise ClusterError(f"{obj['kind']} '{name}' exists with other data; delete it "
                               f"(`make delete`) and submit again") from None
        return False


def _same_spec(gw: Gateway, job: Rendered) -> dict | None:
    """The Job now under this name if it carries this spec hash (an earlier attempt that went through)."""
    try:
        current = gw.get(_kind(job), job.name)
    except NotFound:
        return None
    meta = current.get("metadata") or {}
    same = not meta.get("deletionTimestamp") and \
        (meta.get("annotations") or {}).get(render.ANNOTATION_SPEC) == job.spec_hash
    return current if same else None


def _kind(job: Rendered) -> ObjectKind:
    return "PyTorchJob" if job.kind == "PyTorchJob" else "Job"


def kind_of(run: Run) -> ObjectKind:
    """What a cell is submitted as: a Job, or a PyTorchJob (`engine: pytorchjob`)."""
    return "PyTorchJob" if run.settings.engine == "pytorchjob" else "Job"


def create_or_replace(gw: Gateway, project: Project, job: Rendered, existing: Mapping[str, Any] | None,
                      wait: float = 60.0) -> Outcome:
    """Create a Job (and what comes with it); to replace, delete exactly the (owned) one seen, then create while it
    terminates."""
    replace, kind = existing is not None, _kind(job)
    if existing is not None:
        require_owned(existing, project, f"{kind} '{job.name}'")
        try:
            gw.delete(kind, job.name, uid=(existing.get("metadata") or {}).get("uid"))
        except NotFound:
            pass
    deadline = time.monotonic() + wait
    while True:
        try:
            distributed.create_companions(gw, project, job, gw.create(job.manifest))
            return "replaced" if replace else "created"
        except AlreadyExists:
            done = _same_spec(gw, job)       # a retried create whose first attempt went through
            if done is not None:
                distributed.create_companions(gw, project, job, done)
                return "replaced" if replace else "created"
            if not replace:
                require_owned(gw.get(kind, job.name), project, f"{kind} '{job.name}'")
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def existing_jobs(gw: Gateway, project: Project, runs: Sequence[Run] = ()) -> dict[str, dict]:
    """The user's Jobs of this project by name: one paged list, the base of every decision of `make job` (and the
    PyTorchJobs, as Jobs, when the grid has such cells: a cluster without that API stops here)."""
    found = gw.list("Job", selector(project)) + distributed.engine_jobs(gw, project, runs, required=True)
    return {j["metadata"]["name"]: j for j in found}


def select_states(gw: Gateway, project: Project, runs: Sequence[Run], jobs: Mapping[str, Mapping[str, Any]],
                  states: frozenset[str]) -> list[Run]:
    """`only=failed` / `only=missing`: just those cells, wherever they ran (their own Job, a pack, an array).
    Pods are listed only when a packed or array Job holds some of the cells (their exit codes are in the pods)."""
    held = any(workloads.ANNOTATION_CELLS in ((j.get("metadata") or {}).get("annotations") or {})
               for j in jobs.values())
    pods = gw.list("Pod", selector(project)) if held else []
    cells, _ = status.cells(runs, list(jobs.values()), pods, [], {}, None)
    wanted = {"failed"} & states | ({"not submitted"} if "missing" in states else set())
    return [run for run, cell in zip(runs, cells) if cell.state in wanted]


def check_secrets(gw: Gateway, settings_used: Sequence[RunSettings]) -> None:
    """Each `secret_env` reference names an existing Secret and key (skipped where reading Secrets is denied)."""
    refs: dict[str, tuple[str, str]] = {}
    for settings in settings_used:
        for var, ref in settings.secret_env.items():
            refs.setdefault(ref, (var, ref))
    for var, ref in refs.values():
        name, key = ref.split("/", 1)
        try:
            secret = gw.get("Secret", name)
        except NotFound:
            raise ClusterError(f"secret_env.{var}: no Secret '{name}' in namespace {gw.namespace}") from None
        except ClusterError as err:
            if err.status == 403:
                return                                   # may not read Secrets: the kubelet will tell
            raise
        if key not in (secret.get("data") or {}) and key not in (secret.get("stringData") or {}):
            raise ClusterError(f"secret_env.{var}: Secret '{name}' has no key '{key}'")


def submit(gw: Gateway, project: Project, rendered: RenderedGrid, existing: Mapping[str, Mapping[str, Any]],
           overwrite: bool = False, report: Callable[[JobResult], None] | None = None) -> SubmitReport:
    """Plan the rendered Jobs against the ones already there (`existing_jobs`), create what is needed, `report`
    each result."""
    check_secrets(gw, rendered.settings)
    actions = plan(rendered.jobs, existing, overwrite=overwrite)
    if actions and actions[0].submits:
        actions[0].job.manifest                 # a broken project template fails before the first call
    result = SubmitReport()
    distributed.prepare(gw, [a.job for a in actions if a.submits])
    if any(a.submits for a in actions):
        for obj in rendered.objects:
            ensure(gw, project, obj)

    def one(action: Action) -> Outcome:
        return create_or_replace(gw, project, action.job, existing.get(action.name) if action.kind == "replace"
                                 else None)

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {a.name: pool.submit(one, a) for a in actions if a.submits}
        for action in actions:
            if not action.submits:
                item = JobResult(action.name, action.message, action.kind)  # type: ignore[arg-type]
            else:
                try:
                    item = JobResult(action.name, action.message, futures[action.name].result(),
                                     kind=_kind(action.job))
                except ToolboxError as err:
                    item = JobResult(action.name, action.message, "failed", str(err))
            result.results.append(item)
            if report:
                report(item)
    if any(r.outcome in ("created", "replaced") for r in result.results):
        touch(gw, project, rendered.objects)
    result.calls = gw.calls
    return result


def touch(gw: Gateway, project: Project, extras: Sequence[Mapping[str, Any]]) -> None:
    """After creating Jobs, mark their Secrets/ConfigMaps used (a new resourceVersion), recreating any that a
    concurrent `make delete` removed: its delete, preconditioned on the version it listed, then leaves them."""
    stamp = {"metadata": {"annotations": {USED_ANNOTATION: datetime.now(timezone.utc).isoformat()}}}
    for obj in extras:
        try:
            gw.patch(obj["kind"], obj["metadata"]["name"], stamp)
        except NotFound:
            ensure(gw, project, obj)


# --- smoke ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmokeResult:
    name: str
    model: str
    dataset: str
    state: str
    reason: str = ""
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"


def smoke(gw: Gateway, run: Run, timeout: float, poll: float,
          started: Callable[[Run], None] | None = None) -> SmokeResult:
    """Submit one cell (the caller applied the `smoke:` overrides), wait until it ends or `timeout`, report."""
    assert run.project is not None
    project = run.project
    rendered = render_grid([run], project)
    job = rendered.jobs[0]
    kind = _kind(job)
    if kind == "PyTorchJob" and not gw.serves(kind):
        raise ClusterError(distributed.MISSING_API, 404)
    existing = distributed.current(gw, kind, run.name)
    if existing is not None:
        require_owned(existing, project, f"{kind} '{run.name}'")
    distributed.prepare(gw, [job])
    for obj in rendered.objects:
        ensure(gw, project, obj)
    create_or_replace(gw, project, job, existing)
    if started:
        started(run)
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {"state": "pending"}
    pods: list = []
    while True:
        current = distributed.current(gw, kind, run.name)
        pods = distributed.cell_pods(gw, kind, run.name)
        info = status.classify(current, pods, [], {}, datetime.now(timezone.utc))
        if info["state"] in ("succeeded", "failed") or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    tail = ""
    if info["state"] == "failed" and pods:
        pod = status.newest(pods)
        try:
            tail = gw.logs(pod["metadata"]["name"], tail=20, container=distributed.container_of(pod))
        except ClusterError:
            tail = ""
    return SmokeResult(run.name, run.model, run.dataset, info["state"], info.get("reason") or "", tail)


# --- the interactive pod, copy -------------------------------------------------------------------------------------

def start_pod(gw: Gateway, project: Project, pod: Rendered, objects: Sequence[Mapping[str, Any]]) -> None:
    """Create the interactive pod; a pod of that name already there is a one-line error saying what to do."""
    for obj in objects:
        ensure(gw, project, obj)
    try:
        gw.create(pod.manifest)
    except AlreadyExists:
        current = gw.get("Pod", pod.name)
        require_owned(current, project, f"Pod '{pod.name}'")
        phase = (current.get("status") or {}).get("phase") or "unknown"
        raise ClusterError(f"pod/{pod.name} already exists ({phase}): open it with `kubectl exec -it {pod.name} "
                           f"-n {project.namespace} -- /bin/bash`, delete it with `make delete_pod`, or start "
                           f"another with `make pod pod=NAME`", 409) from None


def copy_files(gw: Gateway, project: Project, settings: RunSettings, pod: str, names: Sequence[str]) -> str:
    """Send the files as a tar stream into the pod's working directory (kubectl cp's way); returns the folder."""
    current = gw.get("Pod", pod)
    require_owned(current, project, f"Pod '{pod}'")
    phase = (current.get("status") or {}).get("phase")
    if phase != "Running":
        raise ClusterError(f"pod '{pod}' is {phase or 'not running'}; expected Running (copy needs a live pod)")
    import io
    import tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in files.shipped(project, names).items():
            tar.add(str(path), arcname=name)
    where = render.workdir(settings)
    # `head -c` ends tar's input after the archive: clients before kubernetes 36 cannot close stdin (v4)
    archive = buffer.getvalue()
    untar = "tar xmf -" + (f" -C {shlex.quote(where)}" if where else "")
    result = gw.exec(pod, ["sh", "-c", f"head -c {len(archive)} | {untar}"], archive)
    if result and result.get("status") != "Success":
        raise ClusterError(f"copy into pod '{pod}' failed: {result.get('message') or result}")
    return where or "the pod's working directory"
