"""The boto3 backend: a bounded pool of one-file transfers; an endpoint failure stops new ones."""
from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

from .bucket import Bucket
from .errors import S3Error, reason
from .landing import install, read_regular, temp_for
from .transfer import MULTIPART_THRESHOLD, Batch, Done, Result, Transfer


def run(bucket: Bucket, batch: Batch, done: Done, result: Result) -> None:
    """Move every transfer of `batch` (see transfer.py for the contract both backends keep)."""
    stop, fatal = threading.Event(), []
    name = bucket.name

    def one(job: Transfer) -> None:
        if stop.is_set():
            return
        try:
            if batch.upload and job.size < MULTIPART_THRESHOLD:   # one request; a managed transfer costs more
                bucket.client.put_object(Bucket=name, Key=job.key, Body=read_regular(job.path))
            elif batch.upload:
                if not stat.S_ISREG(os.stat(job.path).st_mode):
                    raise S3Error("not a regular file any more")
                bucket.client.upload_file(str(job.path), name, job.key, Config=bucket.transfer)
            else:
                temp = temp_for(job.path)
                try:
                    if job.size < MULTIPART_THRESHOLD:
                        body = bucket.client.get_object(Bucket=name, Key=job.key)["Body"].read()
                        if len(body) != job.size:
                            raise S3Error(f"short read: {len(body)} of {job.size} bytes")
                        temp.write_bytes(body)
                    else:
                        bucket.client.download_file(name, job.key, str(temp), Config=bucket.transfer)
                    install(temp, job.path, batch.mode)
                finally:
                    temp.unlink(missing_ok=True)
        except Exception as err:
            failure = bucket.failure(err)
            if failure:
                fatal.append(failure)
                stop.set()
            else:
                result.fail(job.key, reason(err))
            return
        done(job)
    with ThreadPoolExecutor(max_workers=bucket.workers) as pool:
        try:
            list(pool.map(one, batch.transfers))
        except BaseException:           # interrupted (a signal): start no more, let the running ones end
            stop.set()
            raise
    if fatal:
        raise fatal[0]
