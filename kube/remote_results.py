"""Results of cells that ran on the cluster: a job uploads its `results/<cell>/` folder when its command ends (keys
mirror the project path); `make results` fetches only the small files it reads (metrics.json, exit_status) of the
cells it has no local copy of, after one paged list of the bucket's `results/` prefix, several at once."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Callable, Sequence

from .results import ENV_NAME, EXIT_FILE, METRICS_FILE, folder
from .settings import Project, Run

WORKERS = 8
S3UTILS = "src/toolbox/s3utils.py"


def upload_lines(run: Run) -> str:
    """What a pod runs after the cell's command: its exit status into the results folder, then the folder into
    the bucket (when one is configured; a failed upload warns and never changes the cell's status)."""
    rel = f"{run.settings.results.rstrip('/')}/{run.cell_name}/"
    if Path(run.settings.results).is_absolute():
        return f"echo \"$kube_toolbox_status\" > \"${ENV_NAME}/{EXIT_FILE}\" 2>/dev/null || true\n"
    return (f"echo \"$kube_toolbox_status\" > \"${ENV_NAME}/{EXIT_FILE}\" 2>/dev/null || true\n"
            f"if [ -n \"${{S3_BUCKET_NAME:-}}\" ] && [ -f {S3UTILS} ]; then\n"
            f"  python {S3UTILS} upload --local-path \"$PWD\" -- {shlex.quote(rel)} >/dev/null || "
            f"echo \"kube-toolbox: warning: uploading {rel} to the bucket failed\" >&2\n"
            f"fi\n")


def fetch_missing(project: Project, runs: Sequence[Run],
                  progress: Callable[[int], Callable[[], None]] | None = None) -> tuple[int, list[str]]:
    """Bring the metrics and exit statuses of cells without a local copy from the bucket into their results
    folders (never over a local file). Returns (files fetched, problems). Nothing happens without a bucket.
    `progress(total)` gives a function called once per file fetched (a bar, on a terminal)."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    missing = [r for r in runs if not (folder(r) / METRICS_FILE).exists() and not (folder(r) / EXIT_FILE).exists()
               and not Path(r.settings.results).is_absolute()]
    if not missing:
        return 0, []
    from s3sync.bucket import Bucket
    from s3sync.errors import S3Error
    from s3sync.settings import Settings, environment
    if not environment(project.root).get("S3_BUCKET_NAME"):
        return 0, []
    try:
        settings = Settings.load(project.root)
        client = Bucket(settings).client
    except S3Error as err:
        return 0, [f"results from the bucket: {err}"]
    wanted = {f"{r.settings.results.rstrip('/')}/{r.cell_name}/{name}": folder(r) / name
              for r in missing for name in (METRICS_FILE, EXIT_FILE)}
    prefixes = {f"{r.settings.results.rstrip('/')}/" for r in missing}
    try:
        present = [obj["Key"] for prefix in sorted(prefixes)
                   for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket,
                                                                               Prefix=prefix)
                   for obj in page.get("Contents", []) if obj["Key"] in wanted and obj["Size"] < 1024 * 1024]
    except Exception as err:                       # botocore's errors: one line, the table still shows
        return 0, [f"results from the bucket {settings.bucket}: {str(err).splitlines()[0]}"]

    def one(key: str) -> None:
        target = wanted[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        try:
            os.link(tmp, target)                   # never over a file that appeared meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)

    step = progress(len(present)) if progress else None
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for _ in pool.map(one, present):
            if step:
                step()
    return len(present), []

