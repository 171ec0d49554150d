"""Where a downloaded key lands and how it is put there: checked before any byte moves, renamed into place.

A key lands at its project path; a parent folder may be a link inside the root, but the real place, links
resolved, must be inside the root and neither a `.env` nor in `.git/` (unless the key itself names it, no link
involved). Files are written beside their target under a temporary name and renamed when complete.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import S3ConfigError, S3Error
from .selection import TEMP_SUFFIX, Selection, file_kind, inside, protected, real_place


def local_target(root: Path, key: str, folder: bool = False) -> Path:
    """Where a key lands under `root`, checked before any byte moves: a refusal is that key's error alone.

    Refused: keys escaping `root`, a local file where a folder is needed, a local folder where the file goes, a link
    at the file's own place (never written through nor replaced), a parent folder linking outside `root` or to a
    place where the file would be a `.env` or in `.git/`.
    """
    parts = key.rstrip("/").split("/") if folder else key.split("/")
    if key.startswith("/") or ".." in parts or "\0" in key:
        raise S3Error(f"refusing key {key!r}: it would land outside {root}")
    if "" in parts or "." in parts:
        raise S3Error(f"refusing key {key!r}: an empty or '.' path component")
    here, link = root, ""
    for depth, part in enumerate(parts):
        here = here / part
        shown = "/".join(parts[:depth + 1])
        last = depth == len(parts) - 1
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(here)
            if last and not folder:
                raise S3Error(f"local {shown} is a symbolic link (to {real}): not written through or replaced")
            if not inside(root, real):
                raise S3Error(f"local {shown} is a symbolic link to {real}, outside the local root: not written through")
            link = link or shown
            st = os.stat(real)
        wanted = stat.S_ISDIR if folder or not last else stat.S_ISREG
        if not wanted(st.st_mode):
            raise S3Error(f"local {shown} is a {file_kind(st.st_mode)}: the key needs a "
                          f"{'folder' if wanted is stat.S_ISDIR else 'file'} there")
    if link:
        lands = real_place(root, "/".join(parts))
        if lands is None or protected(lands):
            raise S3Error(f"local {link} is a symbolic link: {'/'.join(parts)} would land "
                          f"{'outside the local root' if lands is None else 'at ' + lands}, "
                          "and nothing is written over a .env or into .git/ through a link")
    if folder:
        root.joinpath(*parts).mkdir(parents=True, exist_ok=True)
    return root.joinpath(*parts)


def check_request(root: Path, sel: Selection) -> None:
    """Bad input (exit 2, before anything moves): a download whose named path leads, through a link, outside the
    root, to a `.env` or into `.git/`."""
    head = sel.head
    if not head:
        return
    lands = real_place(root, head)
    if lands is None or lands != head and protected(lands):
        where = "outside the local root" if lands is None else f"to {lands}"
        raise S3ConfigError(f"file: {sel.text!r} leads {where} through a symbolic link under {root}: nothing is "
                            "written over a .env, into .git/ or outside the root through a link")


def new_file_mode() -> int:
    """0666 minus the umask, as any new file gets (not mkstemp's 0600); read without touching the process umask."""
    try:
        with open("/proc/self/status") as fh:
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temp_for(dest: Path) -> Path:
    """A fresh temp file beside `dest` (renamed over it when complete); a short name keeps it under NAME_MAX."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name[:60]}.", suffix=TEMP_SUFFIX, dir=dest.parent)
    os.close(fd)
    return Path(name)


def install(temp: Path, dest: Path, mode: int) -> None:
    """Rename a complete download into place: an existing file keeps its mode, a new one gets 0666 - umask."""
    try:
        st = os.lstat(dest)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else mode
    except FileNotFoundError:
        pass
    os.chmod(temp, mode)
    os.replace(temp, dest)      # replaces the name itself: never writes through a link swapped in meanwhile


def read_regular(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file (O_NONBLOCK: a FIFO swapped in cannot hang us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise S3Error("not a regular file any more")
        return fh.read()
