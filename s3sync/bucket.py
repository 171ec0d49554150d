"""The bucket through boto3: the client with the settings' timeouts, listing, deletes, copies, failed uploads."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

from .errors import S3ConfigError, S3Error, reason
from .selection import Selection
from .settings import Settings
from .transfer import MULTIPART_THRESHOLD, PART_SIZE, WORKERS, Failure

if TYPE_CHECKING:
    import boto3


class ObjectInfo(NamedTuple):
    size: int
    etag: str


class Bucket:
    """boto3 client for listing, deleting and the boto3 backend's transfers, with the timeouts of the settings."""

    def __init__(self, settings: Settings, workers: int = WORKERS) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        self.settings = settings
        self.workers = workers
        self.name = settings.bucket
        try:
            self.client: Any = session(settings.env).client(
                "s3", endpoint_url=settings.endpoint, region_name=settings.region,
                config=Config(max_pool_connections=workers * 2,
                              retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
                              connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                              # CRC checksums on every request cost CPU that ETag + size checks already cover
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"))
        except ProfileNotFound as err:
            raise S3ConfigError(f"AWS_PROFILE: {err}") from None
        self.url: str = self.client.meta.endpoint_url
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                                       max_concurrency=workers, use_threads=True,
                                       num_download_attempts=settings.max_attempts)

    def failure(self, err: BaseException) -> S3Error | None:
        """A timeout or refused connection belongs to the endpoint, not the file: one line that ends the operation."""
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

        s, tries = self.settings, f"after {self.settings.max_attempts} attempt(s) (S3_MAX_ATTEMPTS)"
        for _ in range(6):           # s3transfer wraps the last error; follow the chain a few steps
            if isinstance(err, (ReadTimeoutError, TimeoutError)):
                return S3Error(f"S3 endpoint {self.url} did not answer within {s.read_timeout:g} s "
                               f"(S3_READ_TIMEOUT), {tries}")
            if isinstance(err, ConnectTimeoutError):
                return S3Error(f"S3 endpoint {self.url}: no connection within {s.connect_timeout:g} s "
                               f"(S3_CONNECT_TIMEOUT), {tries}")
            if isinstance(err, EndpointConnectionError):
                return S3Error(f"S3 endpoint {self.url}: cannot connect (refused or unreachable), {tries}")
            nxt = getattr(err, "last_exception", None) or err.__cause__ or err.__context__
            if nxt is None:
                return None
            err = nxt
        return None

    def fail(self, what: str, err: Exception) -> S3Error:
        """The error to raise for a failed request: the endpoint's, or one line naming what failed."""
        return self.failure(err) or S3Error(f"{what}: {reason(err)}")

    def listing(self, sel: Selection) -> dict[str, ObjectInfo]:
        """key -> (size, ETag) for the keys the selection covers: one paged listing under its prefix."""
        return {key: info for key, info in self.objects(sel.prefix if sel.kind != "file" else sel.text).items()
                if sel.matches(key)}

    def objects(self, prefix: str) -> dict[str, ObjectInfo]:
        """key -> (size, ETag) of every key under `prefix` (a plain string prefix)."""
        found: dict[str, ObjectInfo] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", []):
                    found[obj["Key"]] = ObjectInfo(obj["Size"], obj["ETag"])
        except Exception as err:  # botocore errors: one line naming the bucket
            raise self.fail(f"cannot list s3://{self.name}/{prefix}", err) from None
        return found

    def delete(self, keys: list[str]) -> list[Failure]:
        """Delete `keys`; returns (key, reason) for those the server refused.

        Batches of 1000, except keys with control characters: XML cannot carry them (a parser would even turn CR
        into LF and name another key), so those go one request each, their name in the URL.
        """
        refused: list[Failure] = []
        batchable = [k for k in keys if all(" " <= c != "\x7f" and not "\ud800" <= c <= "\udfff" for c in k)]
        try:
            for i in range(0, len(batchable), 1000):
                reply = self.client.delete_objects(Bucket=self.name, Delete={
                    "Objects": [{"Key": k} for k in batchable[i:i + 1000]], "Quiet": True})
                refused += [Failure(e.get("Key", "?"), f"{e.get('Code')}: {e.get('Message')}")
                            for e in reply.get("Errors", [])]
        except Exception as err:
            raise self.fail(f"cannot delete from s3://{self.name}", err) from None
        for key in sorted(set(keys) - set(batchable)):
            try:
                self.client.delete_object(Bucket=self.name, Key=key)
            except Exception as err:
                fatal = self.failure(err)
                if fatal:
                    raise fatal from None
                refused.append(Failure(key, reason(err)))
        return refused

    def copy(self, source: str, key: str) -> None:
        """Server-side copy of `source` to `key` (the copy appears complete or not at all)."""
        try:
            self.client.copy({"Bucket": self.name, "Key": source}, self.name, key, Config=self.transfer)
        except Exception as err:
            raise self.fail(f"cannot copy s3://{self.name}/{source} to {key}", err) from None

    def abort_all(self, prefix: str) -> None:
        """Abort every multipart upload under `prefix` (for a prefix only one writer uses: see checkpoint.Lock)."""
        try:
            reply = self.client.list_multipart_uploads(Bucket=self.name, Prefix=prefix)
            for upload in reply.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception:    # the endpoint is gone: the operation already reports why
            return

    def abort_unfinished(self, keys: list[str], since: float) -> None:
        """Abort multipart uploads of `keys` begun by this run (a killed or failed upload leaves parts billed)."""
        after = datetime.fromtimestamp(since - 60, timezone.utc)   # a minute of slack for the server's clock
        for key in keys:
            try:
                reply = self.client.list_multipart_uploads(Bucket=self.name, Prefix=key)
                for upload in reply.get("Uploads", []):
                    if upload["Key"] == key and upload["Initiated"] >= after:
                        self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload["UploadId"])
            except Exception:    # the endpoint is gone: the operation already reports why
                return


def session(env: Mapping[str, str]) -> "boto3.session.Session":
    """A boto3 session with the credentials `env` names (keys, else a profile), not those of os.environ."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    for var, name in (("AWS_CONFIG_FILE", "config_file"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials_file"),
                      ("AWS_CA_BUNDLE", "ca_bundle")):
        if env.get(var):
            core.set_config_variable(name, env[var])
    if not env.get("AWS_ACCESS_KEY_ID"):
        return boto3.session.Session(botocore_session=core, profile_name=env.get("AWS_PROFILE") or None)
    return boto3.session.Session(botocore_session=core, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                                 aws_session_token=env.get("AWS_SESSION_TOKEN") or None)
