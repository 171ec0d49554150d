"""The S3 errors and their exit statuses: 1 a transfer or the server failed, 2 bad input (nothing moved)."""
from __future__ import annotations


class S3Error(Exception):
    """A transfer or the server failed."""

    exit_status = 1


class S3ConfigError(S3Error):
    """Bad input or missing settings: nothing was transferred."""

    exit_status = 2


class NothingMatched(S3Error):
    """The bucket holds nothing the selection picks (a typo, or never uploaded): nothing was transferred."""


def reason(err: BaseException) -> str:
    """One line for an error of the server (its code and message) or of the OS (its text and file)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return f"{type(err).__name__}: {err}"
