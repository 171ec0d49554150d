"""The command line of s3utils.py: one parser, results on stdout, diagnostics on stderr, errors to exit statuses."""
from __future__ import annotations

import argparse
import sys

from . import sync
from .console import download_s3_path, list_s3_path, say, summary, upload_s3_path
from .errors import S3Error
from .menu import interactive, remove
from .selection import select

PATH_HELP = "project-relative path: data/ (a folder), data/1.txt, or 'Model/*t5*'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3utils.py", description="Sync project folders with an S3 bucket. "
                                     "Exit status: 0 done, 1 a transfer or the endpoint failed, 2 bad input, "
                                     "130/143 interrupted.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", action="store_true", help="transfer even identical files")
    common.add_argument("--local-path", default=None,
                        help="local root the keys map to, whose .env is read (default: the working directory)")
    common.add_argument("--yes", action="store_true", help="remove without asking")
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for name, text in (("upload", "upload the local files PATH selects"),
                       ("download", "download the bucket's keys PATH selects"),
                       ("remove", "remove the keys PATH selects from the bucket, after confirmation"),
                       ("list", "list the bucket's keys under PATH with their sizes"),
                       ("find", "list the bucket's keys matching a pattern"),
                       ("interactive", "list local and bucket files matching PATH, then choose an action")):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("path", help=PATH_HELP)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.action == "upload":
        return summary("uploaded", upload_s3_path(args.path, args.local_path, args.overwrite))
    if args.action == "download":
        return summary("downloaded", download_s3_path(args.path, args.local_path, args.overwrite))
    if args.action in ("list", "find"):
        for key, (size, _etag) in sorted(list_s3_path(args.path, args.local_path).items()):
            say(f"{size:>12}  {key}")
        return 0
    if args.action == "remove":
        status = remove(select(args.path), sync.root_folder(args.local_path), args.yes)
        return 1 if status is None else status
    return interactive(args.path, args.local_path, args.overwrite)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except S3Error as err:
        say(f"error: {err}", sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:       # a bug or an unforeseen OS error: still one line, never a traceback
        say(f"error: {type(err).__name__}: {err}", sys.stderr)
        return 1
