"""The toolbox's error hierarchy: every failure a user can cause maps to one line and an exit status."""
from __future__ import annotations


class ToolboxError(Exception):
    """Base class; `launch.py` prints `str(err)` on one line and exits with `exit_status`."""

    exit_status = 1


class ConfigError(ToolboxError):
    """Bad input in a config file, `.env` or the command line: nothing has run yet."""

    exit_status = 2

    def __init__(self, source: str, key_path: str, expected: str) -> None:
        self.source = source
        self.key_path = key_path
        self.expected = expected
        where = f"{source}: {key_path}" if key_path else source
        super().__init__(f"{where}: {expected}")


class UsageError(ToolboxError):
    """A command-line argument is wrong (unknown selection key, bad option value)."""

    exit_status = 2


class ClusterError(ToolboxError):
    """The Kubernetes API refused or could not be reached; carries the HTTP status when there is one."""

    exit_status = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RunError(ToolboxError):
    """One or more local runs failed (the summary is the message)."""

    exit_status = 1


class NotFound(ClusterError):
    """The object asked for does not exist (HTTP 404)."""


class AlreadyExists(ClusterError):
    """An object of that name exists already (HTTP 409 on create)."""


class NotOwned(ClusterError):
    """An object of the expected name belongs to someone else (other `user`/`project` labels)."""
