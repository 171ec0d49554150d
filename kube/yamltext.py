"""YAML text, pure and fast: scalars, flow and block collections as manifests need them, always re-readable.

PyYAML's pure-Python emitter costs about a millisecond per Job; this writes the same data in microseconds.
Strings are plain only when no YAML reader could take them for anything else; multi-line text becomes a
literal block when that is exact, else a double-quoted string with JSON escapes (which YAML shares).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./-]*")
_RESERVED = frozenset("y yes n no true false on off null".split())     # YAML 1.1 booleans and null
# Characters YAML readers fold or refuse inside quotes although JSON leaves them raw.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_BLOCK_OK = re.compile("[^\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]*")


def _escape(match: re.Match) -> str:
    return "\\u%04x" % ord(match.group(0))


def quoted(text: str) -> str:
    """A double-quoted YAML scalar holding exactly `text` (emoji stay as they are)."""
    out = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(_escape, out) if _UNSAFE.search(out) else out


def scalar(value: Any) -> str:
    """One YAML scalar for a str, int, float, bool or None."""
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        return quoted(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no place in a manifest")
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def flow(value: Any) -> str:
    """A one-line flow collection (or scalar)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def _literal(text: str, indent: int) -> str | None:
    """`|` block for multi-line text when it reads back exactly; None when it would not."""
    lines = text.split("\n")
    body = lines[:-1] if text.endswith("\n") else lines
    if not body or not body[0] or body[0][0] == " " or not _BLOCK_OK.fullmatch(text):
        return None
    if any(line.strip(" ") == "" and line for line in body):       # whitespace-only lines are ambiguous
        return None
    trailing = len(text) - len(text.rstrip("\n"))
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    if chomp == "+":
        body = text[:-1].split("\n")
    pad = " " * indent
    return f"|{chomp}\n" + "\n".join(pad + line if line else "" for line in body)


def value_text(value: Any, indent: int) -> str:
    """What follows `key:` (or `-`): ` scalar`, ` |` block, or a newline and a nested block."""
    if isinstance(value, dict):
        return " {}" if not value else "\n" + block(value, indent)
    if isinstance(value, (list, tuple)):
        return " []" if not value else "\n" + block(value, indent)
    if isinstance(value, str) and "\n" in value:
        lit = _literal(value, indent)
        if lit is not None:
            return " " + lit
    return " " + scalar(value)


def block(value: Any, indent: int = 0) -> str:
    """A block mapping or sequence at `indent` spaces, without a trailing newline."""
    pad = " " * indent
    if isinstance(value, dict):
        return "\n".join(f"{pad}{scalar(str(k))}:{value_text(v, indent + 2)}" for k, v in value.items())
    lines = []
    for item in value:
        if isinstance(item, dict) and item:
            inner = block(item, indent + 2)
            lines.append(f"{pad}- {inner[indent + 2:]}")
        elif isinstance(item, (list, tuple)) and item:
            lines.append(f"{pad}- {flow(item)}")
        else:
            lines.append(f"{pad}-{value_text(item, indent + 2)}")
    return "\n".join(lines)


def document(obj: dict) -> str:
    """A whole YAML document (without the `---` separator), newline-terminated."""
    return block(obj, 0) + "\n"
