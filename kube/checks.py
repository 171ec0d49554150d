"""The one check per kind of setting (kube/settings.py's `Kind`): what it accepts, what the error says it expected,
and the normalised value (lists as tuples, durations in seconds, maps of strings)."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .hparams import is_scalar, type_name
from .naming import is_label_key, is_label_value, is_subdomain, volume_name

DOTENV_FILE = ".env"
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DURATION = re.compile(r"[0-9]+[smhd]")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SECRET_REF = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+")
SERVER_KEYS = {"command", "port", "cpu_count", "memory"}


def is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and is_scalar(x) and x is not None for k, x in v.items())


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


CHECKPOINT_KEYS = {"path", "every", "keep"}


def _checkpoint_ok(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip()):
        return True
    if not isinstance(value, dict) or not set(value) <= CHECKPOINT_KEYS or "path" not in value:
        return False
    every = value.get("every", 300)
    return isinstance(value["path"], str) and bool(value["path"].strip()) and \
        (CHECKS["duration"].accepts(every) and every is not None) and \
        (value.get("keep") is None or (_whole(value["keep"]) and value["keep"] >= 1))


def _checkpoint(value: Any, where: "Where") -> Any:
    from .settings import Checkpoint
    if value is None:
        return None
    spec = {"path": value} if isinstance(value, str) else dict(value)
    path = spec["path"].strip().rstrip("/")
    if os.path.isabs(path) or ".." in Path(path).parts or not path:
        raise ConfigError(where[0], f"{where[1]}.path" if isinstance(value, dict) else where[1],
                          f"expected a folder inside the project (relative, no '..'), got {spec['path']!r}")
    every = CHECKS["duration"].normalise(spec.get("every", 300), where)
    keep = spec.get("keep")
    return Checkpoint(path, int(every), int(keep) if keep is not None else None)


Where = tuple[str, str]          # (source file, key path), for errors about a part of a value


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else v if isinstance(v, str) else str(v)


def _strings(value: Mapping[str, Any], where: Where) -> dict[str, str]:
    return {k: _text(v) for k, v in value.items()}


def _labels(value: dict, where: Where) -> dict[str, str]:
    for key, text in value.items():
        if not is_label_key(key):
            raise ConfigError(where[0], f"{where[1]}.{key}", "expected a label key ([prefix/]name, name: <= 63 "
                                                              "letters, digits, '-', '_', '.')")
        if not is_label_value(_text(text)):
            raise ConfigError(where[0], f"{where[1]}.{key}", f"expected a label value (<= 63 letters, digits, '-', "
                                                              f"'_', '.', alphanumeric at both ends), got {_text(text)!r}")
    return _strings(value, where)


def _env_names(value: dict, where: Where) -> dict[str, str]:
    for name in value:
        if not ENV_NAME.match(name):
            raise ConfigError(where[0], f"{where[1]}.{name}", "expected an environment variable name "
                                                              "(letters, digits, '_', '-', '.')")
    return _strings(value, where)


def check_claims(value: Mapping[str, Any], where: Where) -> dict[str, str]:
    """Claim names that stay distinct as volume names (checked per level, and again once levels are merged)."""
    seen: dict[str, str] = {}
    for claim in value:
        other = seen.setdefault(volume_name(claim), claim)
        if other != claim:
            raise ConfigError(where[0], f"{where[1]}.{claim}", f"expected claim names that stay distinct as "
                                                               f"volume names; it collides with {other}")
    return _strings(value, where)


def _files(value: Any, where: Where) -> tuple[str, ...]:
    entries = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    for entry in entries:
        if Path(entry).name == DOTENV_FILE or Path(os.path.normpath(entry)) == Path(DOTENV_FILE):
            raise ConfigError(where[0], where[1], f"{entry} holds the project's secrets: .env reaches jobs as a "
                                                  f"Secret, never through file:")
    return entries


@dataclass(frozen=True)
class Check:
    accepts: Callable[[Any], bool]
    expected: str
    normalise: Callable[[Any, Where], Any] = lambda value, where: value
    numeric: bool = False                 # a refused number is quoted in the error (`got -1`), else its type


CHECKS: dict[str, Check] = {
    "str": Check(lambda v: isinstance(v, str), "a string"),
    "opt_str": Check(lambda v: v is None or isinstance(v, str), "a string or null"),
    "folder": Check(lambda v: isinstance(v, str) and v.strip() != "", "a folder (relative to the project root)"),
    "bool": Check(lambda v: isinstance(v, bool), "true or false"),
    "port": Check(lambda v: _whole(v) and 0 < v < 65536, "a port number (1-65535)", numeric=True),
    "count": Check(lambda v: _whole(v) and v >= 0, "a whole number >= 0", numeric=True),
    "opt_count": Check(lambda v: v is None or (_whole(v) and v >= 0), "a whole number >= 0 or null", numeric=True),
    "cap": Check(lambda v: v is None or (_whole(v) and v >= 1), "a whole number >= 1 or null (no cap)", numeric=True),
    "positive": Check(lambda v: is_finite_number(v) and v > 0, "a number > 0", numeric=True),
    "nonneg": Check(lambda v: is_finite_number(v) and v >= 0, "a number >= 0", numeric=True),
    "ratio": Check(lambda v: is_finite_number(v) and v >= 1, "a number >= 1", numeric=True),
    "seconds": Check(lambda v: is_finite_number(v) and v >= 0, "a number of seconds >= 0", numeric=True),
    "duration": Check(lambda v: v is None or (_whole(v) and v > 0) or
                      (isinstance(v, str) and bool(DURATION.fullmatch(v)) and int(v[:-1]) > 0),
                      "a duration such as 90m, 6h, 2d or a number of seconds > 0",
                      lambda v, _: v if v is None or isinstance(v, int) else int(v[:-1]) * UNITS[v[-1]],
                      numeric=True),
    "shared": Check(lambda v: (_whole(v) and v >= 0) or (is_finite_number(v) and 0 < v <= 1),
                    "a whole number of cells per Job, or a fraction of a GPU per cell (0 < f <= 1)",
                    lambda v, _: v if _whole(v) else max(1, int(1 / v + 1e-9))),
    "positive_count": Check(lambda v: _whole(v) and v >= 1, "a whole number >= 1", numeric=True),
    "timeout": Check(lambda v: v is not None and CHECKS["duration"].accepts(v),
                     "a duration such as 10m or a number of seconds > 0",
                     lambda v, where: CHECKS["duration"].normalise(v, where), numeric=True),
    "engine": Check(lambda v: v in ("job", "pytorchjob"), "job or pytorchjob"),
    "str_list": Check(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings",
                      lambda v, _: tuple(v)),
    "file_list": Check(lambda v: v is None or isinstance(v, str) or
                       (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                       "a list of project paths (files or folders) or null", _files),
    "str_map": Check(_str_map, "a mapping of strings to strings", _strings),
    "label_map": Check(_str_map, "a mapping of label keys to label values", _labels),
    "dns_name": Check(lambda v: v is None or v == "" or (isinstance(v, str) and is_subdomain(v)),
                      "a DNS name (lowercase letters, digits, '-', '.'; <= 253) or null"),
    "env_map": Check(_str_map, "a mapping of strings to strings", _env_names),
    "volume_map": Check(_str_map, "a mapping of claim names to mount paths", check_claims),
    "secret_refs": Check(lambda v: isinstance(v, dict) and all(isinstance(x, str) and SECRET_REF.fullmatch(x)
                                                               for x in v.values()),
                         "a mapping of variable names to secret-name/key", _env_names),
    "checkpoint": Check(_checkpoint_ok, "a folder (checkpoints/) or {path, every (a duration), keep (>= 1)}",
                        _checkpoint),
    "code": Check(lambda v: v in ("commit", "latest", "image"), "commit, latest or image"),
    "exit_code": Check(lambda v: v is None or (_whole(v) and 1 <= v <= 255), "an exit status 1-255 or null",
                       numeric=True),
    "server": Check(lambda v: v is None or _server(v) is not None,
                    "null or a mapping with command (a string) and port (1-65535), optionally cpu_count and memory",
                    lambda v, _: None if v is None else _server(v)),
}


def check_field(kind: str, value: Any, source: str, key_path: str) -> Any:
    """Validate one overridable field and return it normalised; a ConfigError names the file and key path."""
    check = CHECKS[kind]
    if check.numeric and isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        text = value.strip()                # `memory: "32"`, as the public toolbox took it
        value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    if not check.accepts(value):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        got = repr(value) if numeric and check.numeric else type_name(value)
        raise ConfigError(source, key_path, f"expected {check.expected}, got {got}")
    return check.normalise(value, (source, key_path))
