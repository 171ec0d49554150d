"""What the `file:` setting ships, read from the project once by the caller and handed to rendering as data.

A `file:` entry is a text file or a folder inside the project; jobs get the files as a ConfigMap mounted over
the image's copies (templates/files.sh.j2), `make copy` sends them into a running pod.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import ConfigError
from .settings import Project

MAX_FILES_BYTES = 900 * 1024          # a ConfigMap holds at most 1 MiB in all, keys and metadata included
SKIPPED_PARTS = (".git", "build", "__pycache__")


@dataclass(frozen=True)
class FileSet:
    """The files of one `file:` setting: project-relative names (sorted) and their texts, in the same order."""

    names: tuple[str, ...]
    texts: tuple[str, ...]

    @property
    def size(self) -> int:
        return sum(len(t.encode()) for t in self.texts)


def _entry(root: Path, rel: str, source: str) -> list[tuple[str, Path]]:
    """(project-relative path, file) pairs for one `file:` entry: a file, or every file under a folder."""
    path = (root / rel).resolve()
    if Path(rel).is_absolute() or (path != root and root not in path.parents):
        raise ConfigError(source, "file", f"expected a path inside the project, got {rel!r}")
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        return [(p.relative_to(root).as_posix(), p) for p in found
                if not any(part in SKIPPED_PARTS for part in p.relative_to(root).parts)]
    if not path.is_file():
        raise ConfigError(source, "file", f"no such file or folder: {rel}")
    return [(path.relative_to(root).as_posix(), path)]


def shipped(project: Project, files: Sequence[str], source: str = "config/launch.yaml") -> dict[str, Path]:
    """Project-relative name -> file for the `file:` entries (folders expanded); `.env` is refused."""
    root = project.root.resolve()
    secret = (root / ".env").resolve()
    entries: dict[str, Path] = {}
    for rel in sorted(set(files)):
        for name, path in _entry(root, rel, source):
            if path.resolve() == secret or Path(name).name == ".env":
                raise ConfigError(source, "file", f"{name} holds the project's secrets: it reaches jobs as a "
                                                  f"Secret, never through file:")
            entries[name] = path
    return entries


def read(project: Project, files: Sequence[str], source: str = "config/launch.yaml") -> FileSet | None:
    """The texts of the `file:` entries; missing, binary, secret, escaping or too large files are ConfigErrors."""
    if not files:
        return None
    entries = shipped(project, files, source)
    names, texts = [], []
    for name, path in sorted(entries.items()):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(source, "file", f"expected a text file, {name} is binary (ship it through S3)") from None
        except OSError as err:
            raise ConfigError(source, "file", f"cannot read {name}: {err.strerror}") from None
        names.append(name)
    found = FileSet(tuple(names), tuple(texts))
    if found.size > MAX_FILES_BYTES:
        raise ConfigError(source, "file", f"the files add up to {found.size // 1024} KiB, expected at most "
                                          f"{MAX_FILES_BYTES // 1024} KiB (ship large files through S3)")
    return found


def read_all(project: Project, settings_files: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], FileSet | None]:
    """Each distinct `file:` setting of a selection, read once."""
    out: dict[tuple[str, ...], FileSet | None] = {}
    for files in settings_files:
        if files not in out:
            out[files] = read(project, files)
    return out
