"""Command text, pure: ##comments##, the [local](remote) sugar, <placeholders> and context-aware shell quoting.

Values come from hparams, so they are untrusted text: each `<name>` is quoted for the bash context it stands in
(bare word, '...', $'...', "...", $(...), ${...}, arithmetic, case, here-documents, comments). A context that
cannot be quoted exactly (`...` backquotes, a newline in a comment or here-document) is a ValueError, not a guess.
"""
from __future__ import annotations

import json
import re
import shlex
from functools import lru_cache
from typing import Mapping

_COMMENT = re.compile(r"##.*?##", re.S)
_NAME = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_ESCAPED_OR_NAME = re.compile(r"\\.|<([A-Za-z_][A-Za-z0-9_]*)>", re.S)
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([^\s;&|<>()'\"`]+))")
_WORD_START = " \t\n;&|()<>"


def strip_comments(text: str) -> str:
    """Remove every `##...##` segment (non-greedy, it may span lines)."""
    return _COMMENT.sub("", text)


def _close(text: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at `start`, counting nested pairs and skipping `\\x`; -1 if none."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "\\":
            i += 1
        elif text[i] in (open_, close):
            depth += 1 if text[i] == open_ else -1
            if depth == 0:
                return i
        i += 1
    return -1


def _sugar_at(text: str, i: int) -> tuple[int, int] | None:
    """(end of A, end of B; -1 if B is unclosed) for a `[A](B)` at i; None when the `[` is plain shell (`a[0]`)."""
    end = _close(text, i, "[", "]")
    if end == -1 or text[end + 1:end + 2] != "(":
        return None
    return end, _close(text, end + 1, "(", ")")


def split_sugar(text: str) -> tuple[str, str]:
    """Every `[A](B)` gives A locally and B in the cluster; `a[0]` stays; `\\[x](y)` is the literal `[x](y)`."""
    local: list[str] = []
    remote: list[str] = []
    i = 0
    while i < len(text):
        char, found = text[i], None
        if char == "\\":             # `\\[` only exists to stop the sugar: drop its backslash, keep any other
            token = "[" if text[i + 1:i + 2] == "[" and _sugar_at(text, i + 1) else text[i:i + 2]
            local.append(token)
            remote.append(token)
            i += 2
            continue
        if char == "[":
            found = _sugar_at(text, i)
        if found is None:
            local.append(char)
            remote.append(char)
            i += 1
            continue
        end, close = found
        if close == -1:
            raise ValueError(f"'[' at position {i} ({text[i:i + 30]!r}) opens [local](remote) sugar "
                             f"but the '(' at position {end + 1} is never closed")
        local.append(split_sugar(text[i + 1:end])[0])
        remote.append(split_sugar(text[end + 2:close])[1])
        i = close + 1
    return "".join(local), "".join(remote)


def placeholders(text: str) -> list[str]:
    """The `<name>` placeholders used, in order, without repeats; `\\<name>` and shell redirections excluded."""
    names = [m.group(1) for m in _ESCAPED_OR_NAME.finditer(text) if m.group(1)]
    return list(dict.fromkeys(names))


def _text(value: object) -> str:
    """The text a value stands for, spelled the way YAML writes it (true/false, empty for null, JSON for lists)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _backslash(value: str, chars: str) -> str:
    return "".join("\\" + c if c in chars else c for c in value)


def _quote(name: str, value: str, context: tuple[str, str]) -> str:
    """Quote `value` for `context` = (kind of quoting in force, here-document delimiter)."""
    kind, delimiter = context
    if kind == "sh":
        out = value if _SAFE.fullmatch(value) else shlex.quote(value)
    elif kind == "'":
        out = value.replace("'", "'\\''")
    elif kind == "$'":
        out = _backslash(value, "\\'")
    elif kind == '"':
        out = _backslash(value, '\\"$`')
    elif kind == "${":   # a nested "..." works inside ${...} everywhere; bash's scan there still sees <( and >(
        out = '"' + _backslash(value, '\\"$`').replace("<(", '<""(').replace(">(", '>""(') + '"'
    elif kind in ("#", "hd", "hd'"):
        where = "a comment" if kind == "#" else f"a here-document ending with {delimiter}"
        if "\n" in value or (delimiter and delimiter in value):
            raise ValueError(f"the value of <{name}> cannot stand in {where}: it would end it early")
        out = _backslash(value, "\\$`") if kind == "hd" else value
    else:
        raise ValueError(f"<{name}> stands in a shell context that cannot be quoted safely ({kind})")
    return out


@lru_cache(maxsize=1024)
def _compile(text: str, for_bash: bool) -> tuple:
    """Scan once: literal runs and (name, context) placeholders, so a template renders by joining."""
    parts: list = []
    literal: list[str] = []
    stack: list[tuple[str, str]] = [("sh", "")]   # (kind, data): data is the closer, or the heredoc spec
    pending: list[tuple[str, str]] = []           # here-documents whose body starts at the next newline
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and text[i + 1:i + 2] == "<" and _NAME.match(text, i + 1):
            literal.append("<")                   # `\<name>` is a literal `<name>`
            i += 2
            continue
        if char == "<":
            m = _NAME.match(text, i)
            if m:
                parts.append("".join(literal))
                literal = []
                parts.append((m.group(1), _context(stack) if for_bash else None))
                i = m.end()
                continue
        step = _shell_step(text, i, stack, pending) if for_bash else 1
        literal.append(text[i:i + step])
        i += step
    parts.append("".join(literal))
    return tuple(parts)


def _context(stack: list[tuple[str, str]]) -> tuple[str, str]:
    kind, data = stack[-1]
    if ("sh", "`") in stack:   # bash re-scans `...` bodies with quirks no quoting survives; $(...) has none
        return "`...` (write $(...) instead)", ""
    if kind == "'" and stack[-2] == ("${", '"'):
        return "'...' inside \"${...}\"", ""
    return kind, data[1:] if kind in ("hd", "hd'") else ""


def _word(text: str, i: int, word: str) -> bool:
    end = i + len(word)
    return text.startswith(word, i) and (i == 0 or text[i - 1] in _WORD_START) and text[end:end + 1] in _WORD_START


def _shell_step(text: str, i: int, stack: list[tuple[str, str]], pending: list[tuple[str, str]]) -> int:
    """Advance the quoting state over text[i:]; returns how many characters belong to this token."""
    kind, data = stack[-1]
    char, two = text[i], text[i:i + 2]
    if kind in ("hd", "hd'") and (i == 0 or text[i - 1] == "\n"):
        end = text.find("\n", i)
        line = text[i:] if end == -1 else text[i:end]
        if (line.lstrip("\t") if data[0] == "-" else line) == data[1:]:
            stack.pop()                               # the delimiter line ends the here-document
            return len(line)
    if char == "\n":
        if kind == "#":
            stack.pop()
        if pending and stack[-1][0] in ("sh", '"', "${"):
            stack.extend(reversed(pending))           # the first here-document's body comes first
            pending.clear()
        return 1
    if kind in ("'", "#", "hd'") or (kind == "$'" and char != "\\"):
        if char == "'" and kind in ("'", "$'"):
            stack.pop()
        return 1
    if char == "\\":
        return 2
    if text.startswith("$((", i):
        stack.append(("sh", "))"))                    # arithmetic: `<<` is a shift there, not a here-document
        return 3
    if two == "$(":
        stack.append(("sh", ")"))
        return 2
    if two == "${":
        stack.append(("${", '"' if kind in ('"', "hd") else "sh"))
        return 2
    if char == "`":
        if kind == "sh" and data == "`":
            stack.pop()
        else:
            stack.append(("sh", "`"))
        return 1
    if kind in ("hd", '"'):
        if char == '"' == kind:
            stack.pop()
        return 1
    if kind == "${":
        if char == "}":
            stack.pop()
        elif two == "$'" and data == "sh":
            stack.append(("$'", ""))
            return 2
        elif char in "'\"":
            stack.append((char, ""))
        return 1
    # kind == "sh": an unquoted shell word
    if char in "'\"":
        stack.append((char, ""))
    elif two == "$'":
        stack.append(("$'", ""))
        return 2
    elif two == "((":
        stack.append(("sh", "))"))
        return 2
    elif char == "(":
        stack.append(("sh", ")"))
    elif two == "))" and data == "))":
        stack.pop()
        return 2
    elif char == ")" and data == ")":
        stack.pop()
    elif _word(text, i, "case"):
        stack.append(("sh", "case"))                  # `a)` patterns must not close an enclosing $( ... )
    elif _word(text, i, "esac") and data == "case":
        stack.pop()
    elif char == "#" and (i == 0 or text[i - 1] in _WORD_START):
        stack.append(("#", ""))
    elif two == "<<" and text[i + 2:i + 3] != "<" and ("sh", "))") not in stack:
        m = _HEREDOC.match(text, i)
        if m:
            quoted = m.group(2) is not None or m.group(3) is not None or m.group(0).find("\\") != -1
            delimiter = next(g for g in m.groups()[1:] if g is not None)
            pending.append(("hd'" if quoted else "hd", (m.group(1) or "+") + delimiter))
            return m.end() - i
    elif text.startswith("<<<", i):
        return 3
    return 1


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
        out.append(value if context is None else _quote(name, value, context))
    return "".join(out)


def substitute(text: str, values: Mapping[str, object], *, for_bash: bool) -> str:
    """Replace each `<name>`; `for_bash` quotes each value for the bash context it stands in (commands, scripts),
    else values go in as they are (image names, env values). KeyError names an unknown placeholder."""
    return _render(_compile(text, for_bash), values)


def join_lines(text: str) -> str:
    """Multi-line commands keep their lines (they run under `bash -c`); blank and `#` comment lines go.

    A `\\`-continued line stays continued: a dropped comment line inside a continuation comments out an argument.
    """
    lines = (line.rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#")).strip()


@lru_cache(maxsize=256)
def _sides(text: str) -> tuple[tuple, tuple]:
    local, remote = split_sugar(strip_comments(text))
    return _compile(join_lines(local), True), _compile(join_lines(remote), True)


def process(text: str, values: Mapping[str, object]) -> tuple[str, str]:
    """The whole pipeline: comments, sugar, lines, then shell-safe substitution on each side -> (local, remote).

    Lines are joined on the template, before values go in, so a value's own newlines and `#` are never
    mistaken for the command's lines. Each distinct command is parsed once (cached); a combination only renders.
    """
    local, remote = _sides(text)
    return _render(local, values), _render(remote, values)
