"""`interactive`: list what a pattern matches locally and in the bucket, then act on it from a menu; and the
listed-then-confirmed actions it shares with the command line (remove, local delete, replacing transfers)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from . import sync
from .bucket import Bucket
from .console import Reporter, answer, confirm, count, say, summary, warn
from .errors import S3Error, reason
from .selection import Selection, local_files, select
from .settings import Settings

ACTIONS = ("download", "upload", "remove from the bucket", "local delete", "exit")
ALIASES = {"delete": "local delete", "delete (local)": "local delete", "remove (s3)": "remove from the bucket",
           "quit": "exit", "q": "exit"}
MENU = "Choose: " + ", ".join(f"{n} [{a[0]}]{a[1:]}" for n, a in enumerate(ACTIONS, 1)) + ": "


def remove(sel: Selection, root: Path, yes: bool) -> int | None:
    """List what the selection picks in the bucket, ask, remove: the exit status, or None when declined."""
    bucket = Bucket(Settings.load(root))
    where = f"s3://{bucket.name}"
    keys = sorted(bucket.listing(sel))
    if not keys:
        say(f"Nothing in {where} matches {sel.text!r}: nothing to remove.")
        return 0
    if not confirm(f"Will remove from {where}:", keys, f"Remove {count(len(keys), 'object')}?", yes):
        print("Nothing removed.")
        return None
    refused = dict(bucket.delete(keys))
    for key in keys:
        say(f"error: {key}: {refused[key]}" if key in refused else f"Removed {key}",
            sys.stderr if key in refused else None)
    return 1 if refused else 0


def delete_local(sel: Selection, root: Path) -> int | None:
    """List the local files the selection picks, ask, delete them (a link goes, its target stays)."""
    keys = [found.key for found in local_files(root, sel)]
    if not keys:
        say(f"No local file under {root} matches {sel.text!r}: nothing to delete.")
        return 0
    if not confirm(f"Will delete under {root}:", keys, f"Delete {count(len(keys), 'local file')}?"):
        print("Nothing deleted.")
        return None
    status = 0
    for key in keys:
        try:
            (root / key).unlink()
            say(f"Deleted {key}")
        except OSError as err:
            say(f"error: {key}: {reason(err)}", sys.stderr)
            status = 1
    return status


def transfer(plan: sync.Plan, backend: str | None, shown_root: str) -> int | None:
    """Run an upload or download plan; when it would replace files or objects, list them and ask first."""
    replaced = plan.replaced()
    verb = "uploaded" if plan.upload else "downloaded"
    if replaced:
        what = (f"Will replace in s3://{plan.bucket.name} with the local files:" if plan.upload
                else "Will replace with the bucket's copies:")
        question = f"Replace {count(len(replaced), 'object' if plan.upload else 'local file')}?"
        if not confirm(what, replaced, question):
            print(f"Nothing {verb}.")
            return None
    return summary(verb, sync.execute(plan, backend, Reporter(None, shown_root)))


def _action(text: str) -> str | None:
    """The action an answer names: its number, first letter or first word, in any case."""
    text = " ".join(text.lower().split())
    for number, action in enumerate(ACTIONS, 1):
        if text in (str(number), action[0], action.split()[0], action):
            return action
    return ALIASES.get(text)


def interactive(path: str, local_path: sync.Root = None, overwrite: bool = False,
                backend: str | None = None) -> int:
    """List the local and bucket files a pattern matches, then act on them until exit or the end of input.

    Exit status 0, or the worst of the failed actions (1, or 2 for bad input); a "no" changes nothing and is no failure.
    """
    sel = select(path)
    root = sync.root_folder(local_path)
    shown = str(local_path or ".")
    bucket = Bucket(Settings.load(root))
    local = [found.key for found in local_files(root, sel, warn)]
    remote = sorted(bucket.listing(sel))
    for what, keys in ((f"Local files matching {sel.text!r} under {root}:", local),
                       (f"Objects matching {sel.text!r} in s3://{bucket.name}:", remote)):
        say(what if keys else f"{what} none")
        for key in keys:
            say(f"  {key}")
    reporter = Reporter(None, shown)
    steps: dict[str, Callable[[], int | None]] = {
        "download": lambda: transfer(sync.plan_download(path, local_path, overwrite), backend, shown),
        "upload": lambda: transfer(sync.plan_upload(path, local_path, overwrite, reporter), backend, shown),
        "remove from the bucket": lambda: remove(sel, root, yes=False),
        "local delete": lambda: delete_local(sel, root)}
    status = 0
    while True:
        reply = answer(MENU)
        action = "exit" if reply is None else _action(reply)
        if action == "exit":
            return status
        if not reply:
            continue
        if action is None:
            say(f"error: unknown choice {reply!r}: answer 1 to {len(ACTIONS)} or "
                f"{', '.join(a[0] for a in ACTIONS)}", sys.stderr)
            continue
        try:
            status = max(status, steps[action]() or 0)
        except S3Error as err:          # this action failed; the menu stays
            say(f"error: {err}", sys.stderr)
            status = max(status, err.exit_status)
