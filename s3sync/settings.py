"""Bucket, endpoint, credentials and limits: the environment with the `.env` of the root it is given on top."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import S3ConfigError, reason


def environment(root: str | os.PathLike[str]) -> dict[str, str]:
    """The process environment with `root/.env` on top: `.env` wins, as in make and local runs.

    Read for every operation and never written back: the caller's os.environ stays as it was.
    """
    path = Path(root).resolve() / ".env"
    if not path.is_file():
        return dict(os.environ)
    try:
        from dotenv import dotenv_values
    except ImportError:      # the environment alone could name another bucket than the project's .env
        raise S3ConfigError(f"{path} cannot be read: python-dotenv is not installed (run make setup, "
                            "or pip install python-dotenv)") from None
    try:
        dotenv = {k: v or "" for k, v in dotenv_values(path).items()}
    except (OSError, UnicodeDecodeError) as err:
        raise S3ConfigError(f"{path} cannot be read: {reason(err)}") from None
    env = dict(os.environ)
    if "AWS_ACCESS_KEY_ID" in dotenv:       # the shell's session token belongs to the shell's keys
        env.pop("AWS_SESSION_TOKEN", None)
    return {**env, **dotenv}


@dataclass(frozen=True)
class Settings:
    bucket: str
    endpoint: str | None
    region: str
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)   # the source; holds secrets

    @staticmethod
    def from_env(env: Mapping[str, str]) -> "Settings":
        """The settings `env` holds; a missing or bad one is an S3ConfigError naming it."""
        bucket = env.get("S3_BUCKET_NAME")
        if not bucket:
            raise S3ConfigError("S3_BUCKET_NAME is not set (in the environment or .env): the bucket to sync with")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if not env.get(var) and not env.get("AWS_PROFILE"):
                raise S3ConfigError(f"{var} is not set (in the environment or .env)")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        return Settings(bucket, env.get("S3_ENDPOINT_URL") or None, region,
                        _number(env, "S3_CONNECT_TIMEOUT", 10.0), _number(env, "S3_READ_TIMEOUT", 60.0),
                        int(_number(env, "S3_MAX_ATTEMPTS", 3, whole=True)), env)

    @staticmethod
    def load(root: str | os.PathLike[str]) -> "Settings":
        """The settings of the environment under `root/.env`."""
        return Settings.from_env(environment(root))


def _number(env: Mapping[str, str], name: str, default: float, whole: bool = False) -> float:
    """A positive setting; a bad value is bad input, not a reason to wait forever (or not at all)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = int(raw) if whole else float(raw)
    except ValueError:
        value = 0
    if not 0 < value < 1e6:                       # NaN and infinity fail too
        kind = "a whole number of attempts, 1 or more" if whole else "a number of seconds above 0"
        raise S3ConfigError(f"{name}: expected {kind}, got {raw!r}")
    return value
