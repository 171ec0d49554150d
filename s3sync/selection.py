"""What a user path selects, and the local files an upload takes: regular files under the root, by the link rules.

docs/s3-safety.md states the rules: links are read through only to regular files inside the root, and never to a
`.env` or into `.git/`; folders met through links in a walk are not followed; special files are never opened.
"""
from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import S3ConfigError

TEMP_SUFFIX = ".s3part"
PROTECTED = (".env", ".git")


@dataclass(frozen=True)
class Selection:
    """What a user path selects: a folder (trailing /), one file, or a wildcard pattern."""

    text: str
    prefix: str          # the S3 listing prefix
    kind: str            # folder | file | pattern
    literal: int = 0     # leading path components the user spelled out (no wildcard): they may name excluded ones

    def matches(self, key: str) -> bool:
        if self.excluded(key):
            return False
        if self.kind == "folder":
            return key.startswith(self.prefix)
        if self.kind == "pattern":
            return fnmatch.fnmatchcase(key, self.text)
        return key == self.text or key.startswith(self.text + "/")

    def excluded(self, key: str) -> bool:
        """`.env`, `.git/`, the toolbox's `build/` and our temp files are never picked up unless named exactly."""
        for depth, part in enumerate(key.split("/")):
            if depth >= self.literal and (part in PROTECTED or (depth == 0 and part == "build")
                                          or (part.startswith(".") and part.endswith(TEMP_SUFFIX))):
                return True
        return False

    @property
    def head(self) -> str:
        """The leading folders (or file) the user spelled out without a wildcard, without a trailing /."""
        if self.kind != "pattern":
            return self.prefix.rstrip("/")
        return self.prefix.rsplit("/", 1)[0] if "/" in self.prefix else ""


def select(path: str) -> Selection:
    """Parse a user path; refuse absolute paths and `..` (they would escape the project root)."""
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    if not text or text in (".", "/"):
        raise S3ConfigError("file: expected a path relative to the project root (e.g. data/), got an empty one")
    if text.startswith("/") or ".." in PurePosixPath(text).parts:
        raise S3ConfigError(f"file: expected a path inside the project root, got {path!r}")
    parts = text.rstrip("/").split("/")
    if any(c in text for c in "*?["):
        head = text[: min(text.index(c) for c in "*?[" if c in text)]
        return Selection(text, head, "pattern", head.count("/"))
    if text.endswith("/"):
        return Selection(text, text, "folder", len(parts))
    return Selection(text, text, "file", len(parts))


def inside(root: Path, path: str | Path) -> bool:
    return Path(path) == root or Path(path).is_relative_to(root)


def protected(rel: str) -> bool:
    """A `.env` or a place in `.git/` (at any depth): never read or written through a symbolic link."""
    return any(part in PROTECTED for part in rel.split("/"))


def real_place(root: Path, rel: str) -> str | None:
    """Where `root/rel` really is, relative to `root`, links resolved; None when that is outside `root`."""
    real = os.path.realpath(root / rel) if rel else str(root)
    return Path(real).relative_to(root).as_posix() if inside(root, real) else None


def file_kind(mode: int) -> str:
    return {stat.S_IFREG: "file", stat.S_IFDIR: "folder", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket",
            stat.S_IFCHR: "device", stat.S_IFBLK: "device"}.get(stat.S_IFMT(mode), "special file")


@dataclass(frozen=True)
class LocalFile:
    key: str
    path: Path           # the file to read: the link's target when the key's place is a link


def local_files(root: Path, sel: Selection, warn: Callable[[str], None] = lambda _m: None) -> list[LocalFile]:
    """The files the selection covers, sorted by key: regular files only, never leaving `root`.

    A link is read through when its target is a regular file inside `root` and neither a `.env` nor in `.git/`;
    links leaving `root`, broken links, links to folders met in the walk, FIFOs, sockets and devices are skipped
    with a warning (opening a FIFO would hang).
    """
    head = sel.head
    found: list[LocalFile] = []

    def visit(path: Path, key: str, named: bool, linked: bool) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            try:
                st = os.stat(real)
            except OSError:
                return warn(f"skipped {key}: broken symbolic link")
            if not inside(root, real):
                return warn(f"skipped {key}: symbolic link to {real}, outside the project root {root}")
            if stat.S_ISDIR(st.st_mode) and not named:
                return warn(f"skipped {key}: symbolic link to a folder (not followed)")
            path, linked = Path(real), True
        if linked and not stat.S_ISDIR(st.st_mode) or linked and named:
            rel = Path(os.path.realpath(path)).relative_to(root).as_posix()
            if rel != key and protected(rel):
                return warn(f"skipped {key}: it leads to {rel} through a symbolic link "
                            "(.env and .git/ are never read through a link)")
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))
            except OSError as err:
                return warn(f"skipped {key}: {err.strerror}")
            for name in names:
                child = f"{key}/{name}" if key else name
                if not sel.excluded(child):
                    visit(path / name, child, False, linked)
        elif sel.matches(key):
            if stat.S_ISREG(st.st_mode):
                found.append(LocalFile(key, path))
            else:
                warn(f"skipped {key}: a {file_kind(st.st_mode)}, not a regular file")

    start = root / head if head else root
    parent = real_place(root, head.rsplit("/", 1)[0] if "/" in head else "")
    if head and parent is None:
        warn(f"skipped {head}: it leads to {os.path.realpath(start.parent)}, outside the project root {root}")
    else:
        visit(start, head, True, parent != (head.rsplit("/", 1)[0] if "/" in head else ""))
    return sorted(found, key=lambda f: f.key)
