"""The `set=` grammar, pure: Hydra's basic override grammar (`key=value`, `key=a,b,c`, `~key`, quoting, lists,
YAML scalars) parsed into Override records; kube/overrides.py applies them to a Config.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .search import KINDS

SOURCE = "set="
KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")
HYDRA_FUNCTIONS = ("range", "interval", "glob", "sort", "shuffle", "tag", "str", "int", "float", "bool",
                   "extend_list")
_PLAIN_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
               "tag:yaml.org,2002:null"}
_RESOLVER = yaml.resolver.Resolver()


@dataclass(frozen=True)
class Override:
    """One `key=value`, `key=a,b,c` (a sweep: several values) or `~key` (delete)."""

    text: str
    key: str
    op: Literal["set", "delete"]
    values: tuple[Any, ...] = ()

    @property
    def sweep(self) -> bool:
        return len(self.values) > 1


def fail(text: str, expected: str) -> ConfigError:
    return ConfigError(SOURCE, text, expected)


# --- parsing ---------------------------------------------------------------------------------------------------

def split(text: str) -> list[str]:
    """The overrides of one `set=` text: separated by spaces outside quotes and brackets."""
    tokens, current, depth, quote, i = [], [], 0, "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch.isspace() and depth <= 0:
            if current:
                tokens.append("".join(current))
            current, depth = [], 0
            i += 1
            continue
        current.append(ch)
        i += 1
    if quote:
        raise fail("".join(current), f"expected a closing {quote}")
    if current:
        tokens.append("".join(current))
    return tokens


class _Values:
    """Recursive descent over one value: element (',' element)*, per Hydra's basic grammar."""

    def __init__(self, text: str, where: str) -> None:
        self.text, self.pos, self.where = text, 0, where

    def error(self, expected: str) -> ConfigError:
        return fail(self.where, f"{expected} at character {self.pos + 1} of the value {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def all(self) -> tuple[Any, ...]:
        if not self.text.strip():
            return ("",)                     # `key=`: the empty string, as in Hydra
        values = [self.element()]
        while self.peek() == ",":
            self.pos += 1
            values.append(self.element())
        if self.pos < len(self.text):
            raise self.error(f"unexpected {self.peek()!r}")
        return tuple(values)

    def element(self) -> Any:
        self.skip_space()
        ch = self.peek()
        if ch in ("'", '"'):
            value: Any = self.quoted(ch)
        elif ch == "[":
            value = self.container("[", "]")
        elif ch == "{":
            value = self.container("{", "}")
        else:
            match = re.compile(r"[A-Za-z_]\w*\s*\(").match(self.text, self.pos)
            value = self.function(match.group(0)) if match else self.primitive()
        self.skip_space()
        return value

    def quoted(self, quote: str) -> str:
        out, self.pos = [], self.pos + 1
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in (quote, "\\"):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == quote:
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.error(f"expected a closing {quote}")

    def container(self, open_: str, close: str) -> Any:
        self.pos += 1
        items: list[Any] = []
        pairs: dict[str, Any] = {}
        self.skip_space()
        if self.peek() == close:
            self.pos += 1
            return pairs if open_ == "{" else items
        while True:
            if open_ == "{":
                self.skip_space()
                key = re.compile(r"[^\s:,{}\[\]()'\"]+").match(self.text, self.pos)
                if not key:
                    raise self.error("expected a key")
                self.pos = key.end()
                self.skip_space()
                if self.peek() != ":":
                    raise self.error("expected ':' after a key")
                self.pos += 1
                pairs[key.group(0)] = self.element()
            else:
                items.append(self.element())
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == close:
                self.pos += 1
                return pairs if open_ == "{" else items
            raise self.error(f"expected ',' or {close!r}")

    def function(self, head: str) -> str:
        name = head[:-1].strip()
        start, depth = self.pos, 0
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            depth += ch == "("
            depth -= ch == ")"
            self.pos += 1
            if depth == 0 and ch == ")":
                break
        else:
            raise self.error("expected a closing ')'")
        call = self.text[start:self.pos]
        if name in KINDS:
            return call                      # a distribution: an hparam value search: draws from
        if name in HYDRA_FUNCTIONS:
            raise fail(self.where, f"the sweep function {name}() is not supported: list the values "
                                    f"(key=a,b,c) or draw them with a distribution ({', '.join(KINDS)})")
        raise fail(self.where, f"unknown function {name}() (distributions: {', '.join(KINDS)}; quote the "
                                f"value to mean the text)")

    def primitive(self) -> Any:
        out, escaped = [], False
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                escaped = True
                self.pos += 2
                continue
            if ch in ",[]{}()'\"":
                if ch == "{" and out and out[-1] == "$":
                    raise fail(self.where, "interpolations (${...}) are not supported: write the value")
                break
            out.append(ch)
            self.pos += 1
        text = "".join(out).strip()
        if not text:
            raise self.error("expected a value")
        if escaped:
            return text
        tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
        return yaml.safe_load(text) if tag in _PLAIN_TAGS else text


def parse_one(text: str) -> Override:
    """One override: `key=value`, `key=a,b`, `~key`; `+key`, `++key`, `key@pkg` and `a/b` are refused."""
    if text.startswith("+"):
        key = text.lstrip("+").partition("=")[0]
        raise fail(text, f"'+' adds a key that does not exist; here every key is already an hparam or a "
                          f"setting of config/launch.yaml: write {key}=...")
    delete = text.startswith("~")
    body = text[1:] if delete else text
    key, eq, value = body.partition("=")
    key = key.strip()
    if "@" in key:
        raise fail(text, "packages (key@package) are not supported: write the key's full path with dots")
    if "/" in key:
        raise fail(text, "config groups (a/b) are not supported: write the key's path with dots")
    if not KEY.match(key):
        raise fail(text, "expected key=value (key: letters, digits, '_', '-', dots between parts), "
                          "key=a,b,c or ~key")
    if delete:
        if eq:
            raise fail(text, f"deleting by value (~key=value) is not supported: write ~{key}")
        return Override(text, key, "delete")
    if not eq:
        raise fail(text, f"expected key=value, got no '=' (to delete, write ~{key})")
    return Override(text, key, "set", _Values(value, text).all())


def parse(text: str | list[str] | None) -> list[Override]:
    """Every override of `set=` (or of several `--set` options), in order; a bad one is a ConfigError."""
    texts = [text] if isinstance(text, str) else list(text or [])
    return [parse_one(token) for part in texts for token in split(part)]
