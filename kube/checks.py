"""The one check per kind of setting (kube/model.py's `Kind`): what it accepts, what the error says it expected,
and the normalised value (lists as tuples, durations in seconds, maps of strings)."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError
from .hparams import is_scalar, type_name
from .naming import volume_name

DOTENV_FILE = ".env"
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and is_scalar(x) and x is not None for k, x in v.items())


# The one check per kind of setting (model.Kind): predicate and what the error says was expected.
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "opt_str": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "port": (lambda v: _whole(v) and 0 < v < 65536, "a port number (1-65535)"),
    "count": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "opt_count": (lambda v: v is None or (_whole(v) and v >= 0), "a whole number >= 0 or null"),
    "positive": (lambda v: is_finite_number(v) and v > 0, "a number > 0"),
    "nonneg": (lambda v: is_finite_number(v) and v >= 0, "a number >= 0"),
    "ratio": (lambda v: is_finite_number(v) and v >= 1, "a number >= 1"),
    "seconds": (lambda v: is_finite_number(v) and v >= 0, "a number of seconds >= 0"),
    "str_list": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "file_list": (lambda v: v is None or isinstance(v, str) or
                  (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                  "a list of project paths (files or folders) or null"),
    "str_map": (_str_map, "a mapping of strings to strings"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "duration": (lambda v: v is None or (_whole(v) and v > 0) or (isinstance(v, str) and DURATION.fullmatch(v)
                                                                  and int(v[:-1] or 0) > 0),
                 "a duration such as 90m, 6h, 2d or a number of seconds > 0"),
    "secret_refs": (lambda v: isinstance(v, dict) and all(isinstance(x, str) and SECRET_REF.fullmatch(x)
                                                          for x in v.values()),
                    "a mapping of variable names to secret-name/key"),
    "server": (lambda v: v is None or _server(v) is not None,
               "null or a mapping with command (a string) and port (1-65535), optionally cpu_count and memory"),
    "shared": (lambda v: (_whole(v) and v >= 0) or (is_finite_number(v) and 0 < v <= 1),
               "a whole number of cells per Job, or a fraction of a GPU per cell (0 < f <= 1)"),
}
DURATION = re.compile(r"[0-9]+[smhd]")
SERVER_KEYS = {"command", "port", "cpu_count", "memory"}


def _server(value: Any) -> dict | None:
    """`{command, port}` or the older `{name: {command, port}}` with one entry -> the normalised mapping."""
    if isinstance(value, dict) and len(value) == 1 and "command" not in value:
        value = next(iter(value.values()))
    if not isinstance(value, dict) or not {"command", "port"} <= set(value) or not set(value) <= SERVER_KEYS:
        return None
    if not isinstance(value["command"], str) or not value["command"].strip():
        return None
    if not (_whole(value["port"]) and 0 < value["port"] < 65536):
        return None
    if any(not (is_finite_number(value[k]) and value[k] > 0) for k in ("cpu_count", "memory") if k in value):
        return None
    return dict(value)
SECRET_REF = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _scalar_text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else v if isinstance(v, str) else str(v)


def check_field(kind: str, value: Any, source: str, key_path: str) -> Any:
    """Validate one overridable field and return it normalised (lists as tuples, maps of str)."""
    ok, expected = CHECKS[kind]
    if not ok(value):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        got = repr(value) if numeric and kind not in ("str", "opt_str", "str_list", "file_list", "str_map",
                                                      "bool", "secret_refs", "server", "shared") \
            else type_name(value)
        raise ConfigError(source, key_path, f"expected {expected}, got {got}")
    if kind == "file_list":
        for entry in [value] if isinstance(value, str) else value or []:
            if Path(entry).name == DOTENV_FILE or Path(os.path.normpath(entry)) == Path(DOTENV_FILE):
                raise ConfigError(source, key_path, f"{entry} holds the project's secrets: .env reaches jobs as a "
                                                    f"Secret, never through file:")
    if kind in ("str_list", "file_list"):
        return () if value is None else (value,) if isinstance(value, str) else tuple(value)
    if kind == "server":
        return None if value is None else _server(value)
    if kind == "shared":
        return value if _whole(value) else max(1, int(1 / value + 1e-9))
    if kind == "duration":
        return value if value is None or isinstance(value, int) else int(value[:-1]) * UNITS[value[-1]]
    if kind == "secret_refs":
        for name in value:
            if not ENV_NAME.match(name):
                raise ConfigError(source, f"{key_path}.{name}", "expected an environment variable name")
        return dict(value)
    if kind == "str_map":
        if key_path.rsplit(".", 1)[-1] == "env":
            for name in value:
                if not ENV_NAME.match(name):
                    raise ConfigError(source, f"{key_path}.{name}", "expected an environment variable name "
                                                                    "(letters, digits, '_', '-', '.')")
        if key_path.rsplit(".", 1)[-1] == "volumes":
            seen: dict[str, str] = {}
            for claim in value:
                other = seen.setdefault(volume_name(claim), claim)
                if other != claim:
                    raise ConfigError(source, f"{key_path}.{claim}", f"expected claim names that stay distinct as "
                                                                     f"volume names; it collides with {other}")
        return {k: _scalar_text(v) for k, v in value.items()}
    return value
