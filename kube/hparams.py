"""Hyperparameter axes, pure: an `hparam:` mapping -> ordered axes of options (values, lists, named groups)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .naming import value_text

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Option:
    label: str                     # how the value reads in names and selections
    values: Mapping[str, Any]      # the hparams this option sets (a group member sets several)


@dataclass(frozen=True)
class Axis:
    key: str
    options: tuple[Option, ...]


def type_name(value: Any) -> str:
    """How a YAML value is described in error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def is_scalar(value: Any) -> bool:
    """A value a command can hold: a string, a finite number, a boolean or null."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, SCALARS)


def _is_value(v: Any) -> bool:
    return is_scalar(v) or (isinstance(v, list) and all(is_scalar(x) for x in v))


def _scalar_error(v: Any) -> str:
    if isinstance(v, float):
        return f"expected a finite number, got {v}"
    return f"expected a scalar, got {type_name(v)}"


def _group(source: str, key: str, members: Iterable[tuple[str, Any]], path: str) -> Axis:
    options, first_keys, first_name = [], None, ""
    for name, member in members:
        if not isinstance(member, dict):
            raise ConfigError(source, f"{path}.{name}", f"expected a mapping of hparams, got {type_name(member)}")
        keys = tuple(member)
        if first_keys is None:
            first_keys, first_name = keys, name
        elif set(keys) != set(first_keys):
            raise ConfigError(source, f"{path}.{name}", f"expected the same keys as {key}.{first_name} "
                                                        f"({', '.join(map(str, first_keys))}), "
                                                        f"got {', '.join(map(str, keys))}")
        for inner, v in member.items():
            if not isinstance(inner, str) or not IDENT.match(inner):
                raise ConfigError(source, f"{path}.{name}.{inner}", "expected an identifier (letters, digits, _)")
            if not _is_value(v):
                raise ConfigError(source, f"{path}.{name}.{inner}", _scalar_error(v))
        options.append(Option(str(name), {key: str(name), **member}))
    return Axis(key, tuple(options))


def parse_axes(hparam: Any, source: str, path: str) -> tuple[Axis, ...]:
    """One axis per hparam key: scalars are one-element lists; a mapping of mappings is a named group."""
    if hparam is None:
        return ()
    if not isinstance(hparam, dict):
        raise ConfigError(source, path, f"expected a mapping of hparams, got {type_name(hparam)}")
    axes = []
    for key, value in hparam.items():
        kpath = f"{path}.{key}"
        if not isinstance(key, str) or not IDENT.match(key):
            raise ConfigError(source, kpath, "expected an identifier as hparam name (letters, digits, _)")
        if isinstance(value, dict):
            if value and all(isinstance(m, dict) for m in value.values()):
                axes.append(_group(source, key, value.items(), kpath))
                continue
            raise ConfigError(source, kpath, "expected a list or a scalar, got a mapping")
        if isinstance(value, list):
            if not value:
                raise ConfigError(source, kpath, "expected a non-empty list")
            if all(isinstance(m, dict) for m in value):
                axes.append(_group(source, key, ((str(i), m) for i, m in enumerate(value)), kpath))
                continue
            for i, v in enumerate(value):
                if not _is_value(v):
                    raise ConfigError(source, f"{kpath}[{i}]", _scalar_error(v))
            labels = [value_text(v) for v in value]
            if len(set(labels)) != len(labels):
                raise ConfigError(source, kpath, "expected distinct values, got a repeated one")
            axes.append(Axis(key, tuple(Option(value_text(v), {key: v}) for v in value)))
        elif is_scalar(value):
            axes.append(Axis(key, (Option(value_text(value), {key: value}),)))
        else:
            raise ConfigError(source, kpath, _scalar_error(value))
    return tuple(axes)


def is_group(axis: Axis) -> bool:
    """A named group: its options set other hparams than the axis' own."""
    return any(set(o.values) != {axis.key} for o in axis.options)


def merge_axes(dataset_axes: Iterable[Axis], model_axes: Iterable[Axis]) -> list[Axis]:
    """Model hparams win over dataset hparams of the same name; the dataset's position is kept."""
    merged = {a.key: a for a in dataset_axes}
    merged.update({a.key: a for a in model_axes})
    return list(merged.values())
