"""The command line of s3utils.py: one parser, results on stdout, diagnostics on stderr, errors to exit statuses."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from . import checkpoint, sync
from .console import Reporter, download_s3_path, list_s3_path, say, summary, upload_s3_path
from .errors import S3ConfigError, S3Error
from .menu import interactive, remove
from .selection import select
from .transfer import Event, Progress, Removed

PATH_HELP = "project-relative path: data/ (a folder), data/1.txt, or 'Model/*t5*'"


def _boolean(text: str) -> bool:
    """true/false, yes/no, 1/0, on/off in any case (the public toolbox wrote `True`); anything else is refused."""
    words = {"true": True, "yes": True, "y": True, "on": True, "1": True,
             "false": False, "no": False, "n": False, "off": False, "0": False}
    if text.strip().lower() not in words:
        raise argparse.ArgumentTypeError(f"expected true or false (yes/no, 1/0), got {text!r}")
    return words[text.strip().lower()]


FLAG: dict = {"nargs": "?", "const": True, "default": False, "type": _boolean, "metavar": "BOOL"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3utils.py", description="Sync project folders with an S3 bucket. "
                                     "Exit status: 0 done, 1 a transfer or the endpoint failed, 2 bad input, "
                                     "130/143 interrupted.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", **FLAG, help="transfer even identical files")
    common.add_argument("--local-path", default=None,
                        help="local root the keys map to, whose .env is read (default: the working directory)")
    common.add_argument("--yes", **FLAG, help="remove without asking")
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for name, text in (("upload", "upload the local files PATH selects"),
                       ("download", "download the bucket's keys PATH selects"),
                       ("remove", "remove the keys PATH selects from the bucket, after confirmation"),
                       ("list", "list the bucket's keys under PATH with their sizes"),
                       ("find", "list the bucket's keys matching a pattern"),
                       ("interactive", "list local and bucket files matching PATH, then choose an action")):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("path", help=PATH_HELP)
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--local-path", default=None, help="the project root DIR is relative to, whose .env is read "
                      "(default: the working directory)")
    ckpt = commands.add_parser("checkpoint", help="restore or sync a checkpoint folder (docs/checkpoints.md)",
                               description="Restore or sync a checkpoint folder (docs/checkpoints.md).")
    steps = ckpt.add_subparsers(dest="step", required=True, metavar="STEP")
    text = "download DIR's checkpoint files that are missing or different here"
    steps.add_parser("restore", parents=[root], help=text, description=text).add_argument(
        "dir", metavar="DIR", help="the checkpoint folder, relative to the project root")
    text = "upload DIR's complete files every interval; a final sync on SIGTERM or Ctrl-C (exit 143 or 130)"
    step = steps.add_parser("sync", parents=[root], help=text, description=text)
    step.add_argument("dir", metavar="DIR", help="the checkpoint folder, relative to the project root")
    step.add_argument("--every", type=_seconds, required=True, metavar="SECONDS", help="seconds between passes")
    step.add_argument("--keep", type=_count, metavar="N", help="keep the newest N entries of DIR in the bucket")
    step.add_argument("--once", action="store_true", help="one pass, then exit")
    step.add_argument("--final-timeout", type=_seconds, default=60.0, metavar="S",
                      help="seconds the final sync may take after a signal (default 60)")
    text = "sync DIR to the bucket in the foreground until Ctrl-C or SIGTERM (then a final sync)"
    step = commands.add_parser("monitor", parents=[root], help=text, description=text)
    step.add_argument("dir", metavar="DIR", help="the folder, relative to the project root")
    step.add_argument("--interval", type=_seconds, default=60.0, metavar="SECONDS",
                      help="seconds between passes (default 60)")
    step.add_argument("--delete", **FLAG, help="remove from the bucket what was deleted here")
    step.add_argument("--final-timeout", type=_seconds, default=60.0, metavar="S",
                      help="seconds the final sync may take after a signal (default 60)")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    return int(text)


class Stopped(BaseException):
    """A signal asked the engine to stop: one final sync follows."""


def _printer(shown: str) -> Progress:
    reporter = Reporter(None, shown)

    def show(event: Event) -> None:
        if isinstance(event, Removed):
            say(f"Removed {event.key}")
        else:
            reporter(event)
    return show


def _report(outcome: checkpoint.Pass) -> int:
    for key, why in outcome.result.failed:
        say(f"error: {key}: {why}", sys.stderr)
    return 1 if outcome.result.failed else 0


def run_engine(args: argparse.Namespace) -> int:
    """The sync loop of `checkpoint sync` and `monitor`: passes until a signal, then a final bounded one."""
    root = sync.root_folder(args.local_path, must_exist=True)
    folder = checkpoint.checkpoint_folder(root, args.dir)
    monitor = args.action == "monitor"
    options = checkpoint.Options(folder, keep=None if monitor else args.keep, mirror_deletes=monitor and args.delete)
    every = args.interval if monitor else args.every
    (root / folder).mkdir(parents=True, exist_ok=True)
    lock = checkpoint.Lock(root / folder)
    engine = checkpoint.Engine(root, options, _printer(str(args.local_path or ".")))
    lock.acquire()
    signals: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not signals:
            signals.append(signum)
            raise Stopped()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = 0
        try:
            fresh = True
            while True:
                try:
                    status = max(status, _report(engine.run_pass(fresh)))
                except S3Error as err:
                    if not monitor and args.once or isinstance(err, S3ConfigError):
                        raise
                    say(f"error: {err}", sys.stderr)       # the endpoint may come back: the next pass tries again
                if not monitor and args.once:
                    return status
                fresh = False
                time.sleep(every)
        except Stopped:
            pass
        return _final(engine, args.final_timeout, signals[0])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()


class _Late(BaseException):
    """The final sync ran out of time."""


def _final(engine: checkpoint.Engine, timeout: float, signum: int) -> int:
    """One last pass after a signal, bounded by `timeout` seconds; the exit status is 128 + the signal."""
    def late(_signum: int, _frame: FrameType | None) -> None:
        raise _Late()
    previous = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        _report(engine.run_pass(fresh=True))
    except _Late:
        say(f"error: the final sync did not end within {timeout:g} s (--final-timeout): stopped", sys.stderr)
    except S3Error as err:
        say(f"error: {err}", sys.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return 128 + signum


def restore(args: argparse.Namespace) -> int:
    root = sync.root_folder(args.local_path)
    result = checkpoint.restore(root, args.dir, progress=Reporter(None, str(args.local_path or ".")))
    if not result.transferred and not result.unchanged and not result.failed:
        say(f"Nothing to restore under {checkpoint.checkpoint_folder(root, args.dir)}/ in the bucket.", sys.stderr)
        return 0
    return summary("restored", result)


def run(args: argparse.Namespace) -> int:
    if args.action == "checkpoint" and args.step == "restore":
        return restore(args)
    if args.action in ("checkpoint", "monitor"):
        return run_engine(args)
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


OLD_FLAGS = {"--find": "find", "--list": "list", "--download": "download", "--upload": "upload",
             "--remove": "remove", "--interactive": "interactive", "--monitor": "monitor"}


def old_spelling(argv: list[str]) -> str | None:
    """The one-line hint for the public toolbox's `s3utils.py --download PATH` spelling, or None."""
    for arg in argv:
        if arg in OLD_FLAGS or arg in ("--delete", "--server"):
            if arg == "--server":
                return "--server (an HTTP API over S3) is not part of Kube Toolbox; run the commands directly"
            if arg == "--delete" and "monitor" in argv:
                return None
            if arg == "--delete":
                return "--delete (of local files) is not part of Kube Toolbox: delete them with rm"
            command = " ".join(["s3utils.py", OLD_FLAGS[arg], *(a for a in argv if a != arg)])
            return f"{arg} is the public toolbox's spelling: write `{command}` (or `make {OLD_FLAGS[arg]} file=...`)"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hint = old_spelling(argv)
    if hint:
        say(f"error: {hint}", sys.stderr)
        return 2
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
