"""What the user sees: escaped keys, one line per file, the progress bar, questions; and the printing functions
that s3utils.py has always offered (`upload_s3_path`, `download_s3_path`)."""
from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from . import sync
from .bucket import ObjectInfo
from .transfer import MULTIPART_THRESHOLD, Event, Finished, Moved, Result, Skipped, Started


def clean(text: str) -> str:
    """Text safe for a terminal: control and invisible characters (ESC, CR, BEL, bidi overrides) become escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def say(text: str, stream: TextIO | None = None) -> None:
    print(clean(text), file=stream or sys.stdout, flush=True)


def warn(message: str) -> None:
    say(f"warning: {message}", sys.stderr)


class Reporter:
    """The progress callback of the command line: one line per file on stdout, warnings on stderr, and a tqdm bar
    (bytes, rate, time left) on stderr while a terminal shows it; nothing of the bar when stderr is not one."""

    def __init__(self, out: TextIO | None = None, shown_root: str = ".") -> None:
        self.out, self.shown_root = out, shown_root
        self.lock = threading.Lock()
        self.bar: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Skipped):
            warn(event.message)
        elif isinstance(event, Started):
            if sys.stderr.isatty() and (event.files > 1 or event.bytes > MULTIPART_THRESHOLD):
                from tqdm import tqdm
                self.bar = tqdm(total=event.bytes, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                                desc=f"{event.files} files", leave=False, dynamic_ncols=True)
        elif isinstance(event, Moved):
            key = event.transfer.key
            self.done(f"Uploaded {key} to {key}" if event.upload else
                      f"Downloaded {key} to {self.shown_root}/{key}", event.transfer.size)
        elif isinstance(event, Finished) and self.bar is not None:
            self.bar.close()
            self.bar = None

    def done(self, line: str, size: int) -> None:
        with self.lock:
            if self.bar is None:
                say(line, self.out or sys.stdout)
                return
            self.bar.clear()
            say(line, self.out or sys.stdout)
            self.bar.update(size)


def upload_s3_path(path: str, local_path: sync.Root = None, overwrite: bool = False, backend: str | None = None,
                   out: TextIO | None = None) -> Result:
    """Upload the files under `path` (relative to `local_path`, default the working directory), printing a line
    per file to `out` (default stdout) and warnings to stderr."""
    return sync.upload(path, local_path, overwrite, backend, Reporter(out))


def download_s3_path(path: str, local_path: sync.Root = None, overwrite: bool = False, backend: str | None = None,
                     out: TextIO | None = None) -> Result:
    """Download the keys under `path` to the same relative paths under `local_path` (default: cwd), printing a line
    per file. Raises NothingMatched (an S3Error) when the bucket holds nothing under `path`."""
    return sync.download(path, local_path, overwrite, backend, Reporter(out, str(local_path or ".")))


def list_s3_path(path: str, local_path: sync.Root = None) -> dict[str, ObjectInfo]:
    """key -> (size, ETag) of what the path selects."""
    return sync.listing(path, local_path)


def summary(verb: str, result: Result) -> int:
    """The errors, one line each, and the counts; the exit status."""
    for key, why in result.failed:
        say(f"error: {key}: {why}", sys.stderr)
    say(f"{len(result.transferred)} {verb}, {len(result.unchanged)} unchanged, {len(result.failed)} failed",
        sys.stderr)
    return 1 if result.failed else 0


def count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def answer(prompt: str) -> str | None:
    """One line of the user's input, stripped; None at the end of input."""
    print(clean(prompt), end="", flush=True)
    line = sys.stdin.readline()
    if not sys.stdin.isatty():          # piped answers: the output still reads one line a prompt
        print(flush=True)
    return line.strip() if line else None


def confirm(what: str, keys: list[str], question: str, yes: bool = False) -> bool:
    """List exactly what will be deleted or replaced, then ask (y/N); `yes` skips the question, not the list."""
    say(what)
    for key in keys:
        say(f"  {key}")
    return yes or (answer(f"{question} [y/N] ") or "").lower() in ("y", "yes")
