"""`make status checkpoints=1`: the newest checkpoint of each cell in the bucket, one list call per cell (at most
1,000 keys), several at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from . import checkpoints
from .errors import ClusterError
from .settings import Project, Run

WORKERS = 8


@dataclass(frozen=True)
class Newest:
    cell: str
    key: str = ""                       # "" when the bucket holds none for the cell
    time: datetime | None = None


def newest(project: Project, runs: Sequence[Run]) -> list[Newest]:
    """The newest object under each checkpointed cell's folder (cells without `checkpoint:` are left out)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from s3sync.bucket import Bucket
    from s3sync.errors import S3Error
    from s3sync.settings import Settings
    cells = [r for r in runs if r.settings.checkpoint is not None]
    if not cells:
        return []
    try:
        settings = Settings.load(project.root)
        client = Bucket(settings).client
    except S3Error as err:
        raise ClusterError(f"checkpoints: {err}") from None

    def one(run: Run) -> Newest:
        page = client.list_objects_v2(Bucket=settings.bucket, Prefix=checkpoints.folder(run) + "/", MaxKeys=1000)
        found = [o for o in page.get("Contents", []) if not o["Key"].rsplit("/", 1)[-1].startswith(".s3sync")]
        if not found:
            return Newest(run.name)
        last = max(found, key=lambda o: (o["LastModified"], o["Key"]))
        return Newest(run.name, last["Key"], last["LastModified"])

    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return list(pool.map(one, cells))
    except (BotoCoreError, ClientError) as err:
        raise ClusterError(f"checkpoints: the bucket {settings.bucket} could not be listed: "
                           f"{str(err).splitlines()[0]}") from None
