"""Command text, pure: ##comments##, the [local](remote) sugar, and shell-safe <placeholder> substitution."""
from __future__ import annotations

import json
import re
import shlex
from functools import lru_cache
from typing import Mapping

_COMMENT = re.compile(r"##.*?##", re.S)
_PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def strip_comments(text: str) -> str:
    """Remove every `##...##` segment (it may span lines)."""
    return _COMMENT.sub("", text)


def _match(text: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at `start`, counting nested pairs; -1 when unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "[]()":
            continue
        if text[i] == open_ and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == close and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def split_sugar(text: str) -> tuple[str, str]:
    """Every `[A](B)` gives A locally and B in the cluster; `a[0]` stays; `\\[x](y)` is a literal `[x](y)`."""
    local: list[str] = []
    remote: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1:i + 2] == "[":
            local.append("[")
            remote.append("[")
            i += 2
            continue
        if char == "[":
            end = _match(text, i, "[", "]")
            if end != -1 and text[end + 1:end + 2] == "(":
                close = _match(text, end + 1, "(", ")")
                if close == -1:
                    raise ValueError(f"the '(' at position {end + 1} is never closed")
                local.append(text[i + 1:end])
                remote.append(text[end + 2:close])
                i = close + 1
                continue
        local.append(char)
        remote.append(char)
        i += 1
    return "".join(local), "".join(remote)


def placeholders(text: str) -> list[str]:
    """The `<name>` placeholders used, in order, without repeats (escaped `\\<name>` excluded)."""
    names = [m.group(1) for m in _PLACEHOLDER.finditer(text) if not _escaped(text, m.start())]
    return list(dict.fromkeys(names))


def _escaped(text: str, pos: int) -> bool:
    return pos > 0 and text[pos - 1] == "\\"


def _text(value: object) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _quote(value: str, context: str) -> str:
    """Quote for where the placeholder stands: bare word, inside '...', or inside "..."."""
    if context == "'":
        return value.replace("'", "'\\''")
    if context == '"':
        return re.sub(r'([\\"$`])', r"\\\1", value)
    return value if _SAFE.match(value) else shlex.quote(value)


def _compile(text: str, quote: bool) -> tuple:
    """Scan once: literal runs and (name, context) placeholders, so a template renders by joining."""
    parts: list = []
    literal: list[str] = []
    context = ""          # "", "'" or '"': the shell quoting in force at this point of the text
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1:i + 2] == "<" and _PLACEHOLDER.match(text, i + 1):
            literal.append("<")       # an escaped placeholder stays literal
            i += 2
            continue
        if char == "<":
            m = _PLACEHOLDER.match(text, i)
            if m:
                parts.append("".join(literal))
                literal = []
                parts.append((m.group(1), context if quote else None))
                i = m.end()
                continue
        if quote:
            if char == "\\" and context != "'":
                literal.append(text[i:i + 2])
                i += 2
                continue
            if char in "'\"" and context in ("", char):
                context = "" if context == char else char
        literal.append(char)
        i += 1
    parts.append("".join(literal))
    return tuple(parts)


def _render(parts: tuple, values: Mapping[str, object]) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        name, context = part
        if name not in values:
            raise KeyError(name)
        value = _text(values[name])
        out.append(value if context is None else _quote(value, context))
    return "".join(out)


@lru_cache(maxsize=1024)
def _compiled(text: str, quote: bool) -> tuple:
    return _compile(text, quote)


def substitute(text: str, values: Mapping[str, object], *, quote: bool) -> str:
    """Replace each `<name>`; with quote=True the value is shell-quoted for its shell context. KeyError if unknown."""
    return _render(_compiled(text, quote), values)


def join_lines(text: str) -> str:
    """Multi-line commands keep their lines (run by `bash -c`); blank and `#` comment lines go."""
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#")).strip()


@lru_cache(maxsize=256)
def _sides(text: str) -> tuple[tuple, tuple]:
    local, remote = split_sugar(join_lines(strip_comments(text)))
    return _compile(local, True), _compile(remote, True)


def process(text: str, values: Mapping[str, object]) -> tuple[str, str]:
    """The whole pipeline: comments, lines, sugar, then shell-safe substitution on each side.

    The text is parsed once per distinct command (cached); each combination only renders.
    """
    local, remote = _sides(text)
    return _render(local, values).strip(), _render(remote, values).strip()
