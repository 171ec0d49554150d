"""S3 sync for a project folder: keys mirror project paths; the s5cmd binary when on PATH, boto3 otherwise.

The entry point users run (`python src/toolbox/s3utils.py download data/`, `make download file=data/`) and import
(`from toolbox.s3utils import download_s3_path`); the work is done by the `s3sync` package beside this file. Nothing
from kube/ is imported, and boto3 only when an operation runs. Settings come from the environment with the `.env`
of the local root on top (the working directory, or `local_path`; `.env` wins, as in make and local runs;
os.environ itself is never changed): S3_BUCKET_NAME, S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and
the usual AWS variables), S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT, S3_MAX_ATTEMPTS. docs/s3-safety.md states what is
selected, refused and printed.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if __package__ and not TYPE_CHECKING:       # imported as toolbox.s3utils: the package beside it, same parent
    from .s3sync import backend_s5cmd, cli, console, landing, menu, selection, settings, sync, transfer
    from .s3sync.bucket import Bucket, ObjectInfo
    from .s3sync.errors import NothingMatched, S3ConfigError, S3Error
    from .s3sync.etags import PART_SIZES, md5_file, same_content
else:                                        # run as a script, or imported with this folder on sys.path
    _HERE = os.path.dirname(os.path.realpath(__file__))
    if _HERE not in sys.path:
        sys.path.insert(0, _HERE)
    from s3sync import backend_s5cmd, cli, console, landing, menu, selection, settings, sync, transfer
    from s3sync.bucket import Bucket, ObjectInfo
    from s3sync.errors import NothingMatched, S3ConfigError, S3Error
    from s3sync.etags import PART_SIZES, md5_file, same_content

WORKERS, MULTIPART_THRESHOLD, TEMP_SUFFIX = transfer.WORKERS, transfer.MULTIPART_THRESHOLD, selection.TEMP_SUFFIX
Settings, Selection, select, local_files = settings.Settings, selection.Selection, selection.select, selection.local_files
local_target, Reporter, clean = landing.local_target, console.Reporter, console.clean
Result, Transfer, Plan = transfer.Result, transfer.Transfer, sync.Plan
Job = Transfer                              # the record's older name
s5cmd_binary = backend_s5cmd.binary
upload_s3_path, download_s3_path = console.upload_s3_path, console.download_s3_path
list_s3_path = find_s3_path = console.list_s3_path
interactive, ACTIONS, ALIASES, MENU = menu.interactive, menu.ACTIONS, menu.ALIASES, menu.MENU
main = cli.main

__all__ = ["ACTIONS", "ALIASES", "MENU", "MULTIPART_THRESHOLD", "PART_SIZES", "TEMP_SUFFIX", "WORKERS", "Bucket",
           "Job", "NothingMatched", "ObjectInfo", "Plan", "Reporter", "Result", "S3ConfigError", "S3Error",
           "Selection", "Settings", "Transfer", "clean", "download_s3_path", "environment", "find_s3_path",
           "interactive", "list_s3_path", "local_files", "local_target", "main", "md5_file", "s5cmd_binary",
           "same_content", "select", "upload_s3_path"]


def environment(root: str | os.PathLike[str] = ".") -> dict[str, str]:
    """The process environment with the `.env` of `root` (default: the working directory) on top."""
    return settings.environment(root)


if __name__ == "__main__":
    sys.exit(main())
