"""Work that survives preemption, the Kubernetes side: each cell's $CHECKPOINT_DIR, the restore before its command,
the native sidecar that syncs it to the bucket, and the failure-policy rule of a requeue exit code. Pure: every
function returns text or manifest fragments. The sync engine itself is s3sync/checkpoint.py.

In a pod the folder lives on an emptyDir shared by the command and the sidecar, mounted at MOUNT/<path>, and the
bucket keys are `<path>/<cell>/...`: the same keys as the project folder `<path>/<cell>/` on a laptop, so
`make download file=<path>/<cell>/` fetches a cell's checkpoints and `make local` continues from them.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import Run, RunSettings

MOUNT = "/kube-toolbox/checkpoints"       # the pod's stand-in for the project root, for checkpoint folders only
VOLUME = "checkpoints"
ENV_NAME = "CHECKPOINT_DIR"
S3UTILS = "src/toolbox/s3utils.py"        # where the toolbox sits in the project checkout
FINAL_MARGIN = 15                         # seconds of termination_grace kept for the kubelet after a final sync


def check(settings: RunSettings, source: str = "config/launch.yaml") -> None:
    """What checkpoints cannot be combined with, refused before rendering."""
    if settings.checkpoint is None:
        return
    if settings.shared > 1:
        raise ConfigError(source, "checkpoint", "expected one cell per pod: with shared > 1 the cells of a pack "
                                                "share one pod, and a checkpoint is synced per cell")
    if settings.termination_grace <= FINAL_MARGIN:
        raise ConfigError(source, "termination_grace", f"expected more than {FINAL_MARGIN} s with checkpoint: the "
                                                       f"final sync runs inside it")


def folder(run: Run) -> str:
    """The cell's checkpoint folder, relative to the project root: `<path>/<cell name>`."""
    assert run.settings.checkpoint is not None
    return f"{run.settings.checkpoint.path}/{run.name}"


def local_dir(run: Run) -> Path:
    assert run.project is not None
    return run.project.root / folder(run)


def restore_lines(run: Run) -> str:
    """What a pod runs before the cell's command: $CHECKPOINT_DIR, then the newest complete checkpoint files of
    the bucket (only what is missing or different). A restore that fails stops the cell rather than starting it
    from zero over a checkpoint it could not read."""
    if run.settings.checkpoint is None:
        return ""
    rel = shlex.quote(folder(run))
    return (f"export {ENV_NAME}={shlex.quote(MOUNT)}/{rel}; mkdir -p \"${ENV_NAME}\"\n"
            f"python {S3UTILS} checkpoint restore {rel} --local-path {shlex.quote(MOUNT)} || "
            f"{{ echo \"kube-toolbox: restoring the checkpoint {folder(run)} failed; not starting from zero\" >&2; "
            f"exit 1; }}\n")


def sidecar_command(settings: RunSettings) -> str:
    """The sidecar's loop: which cell this pod runs (its Job's name, or its index's cell in an array), then the
    sync engine until the pod stops, with a final sync inside termination_grace."""
    cp = settings.checkpoint
    assert cp is not None
    keep = f" --keep {cp.keep}" if cp.keep else ""
    base = shlex.quote(cp.path)
    return (f"cell=\"$KUBE_TOOLBOX_JOB\"\n"
            f"if [ -n \"${{JOB_COMPLETION_INDEX:-}}\" ] && [ -f /etc/toolbox/cells/cells.tgz ]; then\n"
            f"  cell=$(tar -xzOf /etc/toolbox/cells/cells.tgz \"$JOB_COMPLETION_INDEX.cell\")\n"
            f"fi\n"
            f"mkdir -p {shlex.quote(MOUNT)}/{base}/\"$cell\"\n"
            f"exec python {S3UTILS} checkpoint sync {base}/\"$cell\" --local-path {shlex.quote(MOUNT)} "
            f"--every {cp.every}{keep} --final-timeout {settings.termination_grace - FINAL_MARGIN}\n")


def sidecar(settings: RunSettings, startup: str, env: list, env_from: list, mounts: list) -> dict[str, Any] | None:
    """The native sidecar (an init container that keeps running): same image, env and startup as the command."""
    if settings.checkpoint is None:
        return None
    job = {"name": "KUBE_TOOLBOX_JOB", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}}
    return {"name": "checkpoint", "image": settings.image, "restartPolicy": "Always",
            "command": ["/bin/bash", "-c", startup + sidecar_command(settings)],
            "env": [*env, job], **({"envFrom": list(env_from)} if env_from else {}),
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
            "volumeMounts": list(mounts)}


def volume(settings: RunSettings) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): the emptyDir both containers see the checkpoint folders on."""
    if settings.checkpoint is None:
        return [], []
    return ([{"name": VOLUME, "emptyDir": {}}],
            [{"name": VOLUME, "mountPath": f"{MOUNT}/{settings.checkpoint.path}"}])


def requeue_rule(settings: RunSettings) -> list[dict]:
    """A command that saved and exited with requeue_exit_code starts again: the pod failure is ignored (not
    counted against backoff_limit), before any rule that would fail the cell on that exit status."""
    if settings.requeue_exit_code is None:
        return []
    return [{"action": "Ignore", "onExitCodes": {"containerName": "main", "operator": "In",
                                                 "values": [settings.requeue_exit_code]}}]
