"""DNS-1123 names and label values for runs: readable, at most 63 characters, unique by a content hash."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Mapping

MAX_NAME = 63
HASH_LEN = 8
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def value_text(value: Any) -> str:
    """How a value reads in names, selections and commands: YAML spelling for booleans and null."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def short_hash(text: str) -> str:
    """8 characters of base32 (DNS-safe) from the SHA-256 of `text`: the hash that ends generated names."""
    digest = hashlib.sha256(text.encode()).digest()[:5]             # 5 bytes are exactly 8 base32 characters
    return base64.b32encode(digest).decode().lower()[:HASH_LEN]


def content_digest(value: Any) -> str:
    """10 hex characters naming an object by its content (sorted-key JSON): equal content, equal name."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=value_text)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def combination_hash(project: str, model: str, dataset: str, hparams: Mapping[str, Any], user: str = "") -> str:
    """A short stable hash of the whole combination, `_` hparams and the user included (sorted-key JSON).

    The user is in the hash so that two users of one project in one namespace never share a job name.
    """
    identity: dict[str, Any] = {"project": project, "model": model, "dataset": dataset, "hparams": hparams}
    if user:
        identity["user"] = user
    return short_hash(json.dumps(identity, sort_keys=True, separators=(",", ":"), default=value_text))


def sanitize(text: str) -> str:
    """Lowercase, every run of other characters folded to one '-', no '-' at either end."""
    return _NOT_NAME.sub("-", text.lower()).strip("-")


def run_name(prefix: str, project: str, model: str, dataset: str,
             labels: Mapping[str, str], hparams: Mapping[str, Any], user: str = "", max_len: int = MAX_NAME) -> str:
    """`[<prefix>-]<project>-<model>-<dataset>[-key-value...]-<hash>`, cut to fit `max_len` (63) characters.

    `labels` are the name parts of the public hparams (key -> readable value); `hparams` is the full
    combination that the hash covers, so two combinations never share a name even when truncation or
    sanitising makes their readable parts equal.
    """
    parts = [prefix, project, model, dataset]
    for key, text in labels.items():
        parts += [key, text]
    readable = "-".join(p for p in (sanitize(x) for x in parts) if p)
    readable = readable[: max_len - HASH_LEN - 1].rstrip("-")
    digest = combination_hash(project, model, dataset, hparams, user)
    return f"{readable}-{digest}" if readable else digest


def label_value(text: str) -> str:
    """A valid Kubernetes label value (<= 63, alphanumeric at both ends) that reads like `text`."""
    value = _NOT_LABEL.sub("-", text)[:MAX_NAME]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def is_name(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(NAME_RE.match(text))


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def is_subdomain(text: str) -> bool:
    """A DNS-1123 subdomain (<= 253): the names of ServiceAccounts, PriorityClasses, Secrets."""
    return len(text) <= 253 and bool(DNS_SUBDOMAIN.match(text))


def is_label_key(text: str) -> bool:
    """`[prefix/]name`: a DNS subdomain prefix, a name of <= 63 alphanumerics, '-', '_', '.'."""
    prefix, _, name = text.rpartition("/")
    return (not prefix or is_subdomain(prefix)) and len(name) <= MAX_NAME and bool(LABEL_NAME.match(name))


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(LABEL_VALUE_RE.match(text))


def volume_name(claim: str) -> str:
    """The pod volume name of a PVC mount (two claims must not fold to the same one)."""
    return ("pvc-" + sanitize(claim)[:50]).rstrip("-")
