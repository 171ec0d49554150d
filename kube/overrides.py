"""Command-line overrides (`set=`), pure: Hydra's basic override grammar parsed, then applied to a loaded Config.

`lr=0.01` replaces an hparam axis, `lr=0.1,0.01` makes it a sweep, `gpu_count=2` sets a setting above every
level, `model.m.gpu_count=2` / `dataset.d.memory=8` / `model.m.hparam.lr=0.1` reach one entry. Values read as
YAML scalars do (`1e-5` is a string to YAML 1.1, as in config/launch.yaml), so a value given here names and
hashes its cells exactly as the same value written in the file.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, replace
from typing import Any


from .config import ALIASES, FIELD_KINDS, Config, DatasetEntry, ModelEntry, RunEntry, check_field, \
    merge_levels, resolve_settings
from .errors import ConfigError
from .hparams import Axis, is_group, parse_axes
from .naming import value_text
from .provenance import ANNOTATION_OVERRIDES as ANNOTATION
from .search import SPEC_KEYS, SearchSpec, check_axes, is_distribution_text, parse_spec

from .override_syntax import SOURCE, Override, fail, parse, parse_one, split  # noqa: F401  (the module's API)


def canonical(overrides: list[Override]) -> str:
    """The override text recorded with jobs: the overrides as given, one space apart."""
    return " ".join(o.text for o in overrides)


def job_annotations(overrides: list[Override]) -> dict[str, str]:
    """The job annotation recording the overrides. Annotation values are put into the rendered YAML inside a
    double-quoted scalar, as given: this one is escaped as a JSON string's body (valid YAML escapes)."""
    return {ANNOTATION: json.dumps(canonical(overrides))[1:-1]} if overrides else {}


# --- applying --------------------------------------------------------------------------------------------------

class _Applier:
    def __init__(self, config: Config) -> None:
        self.models: dict[str, ModelEntry] = dict(config.models)
        self.datasets: dict[str, DatasetEntry] = dict(config.datasets)
        self.runs: list[RunEntry] = list(config.runs)
        self.root_search = config.search
        self.set_fields: dict[str, Any] = dict(config.set_fields)
        self.touched: list[tuple[str, str]] = []          # (entity kind, name) whose hparams a value replaced

    def entities(self) -> list[tuple[str, str, tuple[Axis, ...]]]:
        return ([("model", n, m.axes) for n, m in self.models.items()] +
                [("dataset", n, d.axes) for n, d in self.datasets.items()])

    def known_keys(self) -> list[str]:
        keys = {a.key for _, _, axes in self.entities() for a in axes} | set(FIELD_KINDS) | \
            {f"search.{k}" for k in SPEC_KEYS}
        for kind, name, axes in self.entities():
            keys.update(f"{kind}.{name}.{s}" for s in FIELD_KINDS)
            keys.update(f"{kind}.{name}.hparam.{a.key}" for a in axes)
            if kind == "model":
                keys.update([f"model.{name}.command", *(f"model.{name}.search.{k}" for k in SPEC_KEYS)])
        return sorted(keys)

    def unknown(self, o: Override, what: str = "unknown key") -> ConfigError:
        close = difflib.get_close_matches(o.key, self.known_keys(), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else \
            " (expected an hparam, a setting, model.NAME.SETTING, dataset.NAME.SETTING or model.NAME.hparam.KEY)"
        return fail(o.key, f"{what}{hint}")

    def value_axis(self, o: Override, key: str, old: Axis | None) -> Axis | None:
        """The axis `key` becomes: the override's values; a group keeps the members it names."""
        if o.op == "delete":
            return None
        if old is not None and is_group(old):
            labels = {opt.label: opt for opt in old.options}
            wanted = [value_text(v) for v in o.values]
            missing = [w for w in wanted if w not in labels]
            if missing:
                raise fail(o.key, f"expected members of the group {key} among {', '.join(labels)}, got "
                                   f"{', '.join(missing)}")
            return Axis(key, tuple(labels[w] for w in dict.fromkeys(wanted)))
        for value in o.values:
            if isinstance(value, dict):
                raise fail(o.key, "expected a value, a list or a sweep (a,b,c) for an hparam, got a mapping")
            if o.sweep and is_distribution_text(value):
                raise fail(o.key, "expected a distribution alone, not in a sweep")
        return parse_axes({key: list(o.values)}, SOURCE, o.key)[0]

    def replace_axis(self, kind: str, name: str, key: str, axis: Axis | None) -> None:
        entry: Any = self.models[name] if kind == "model" else self.datasets[name]
        axes = entry.axes
        if any(a.key == key for a in axes):
            new = tuple(axis if a.key == key else a for a in axes if a.key != key or axis is not None)
        else:
            new = axes + ((axis,) if axis is not None else ())
        if kind == "model":
            self.models[name] = replace(entry, axes=new)
        else:
            self.datasets[name] = replace(entry, axes=new)
        self.touched.append((kind, name))
        # The run section narrowed the values this axis had: the override replaces them for this invocation.
        self.runs = [replace(r, selection={k: v for k, v in r.selection.items() if k != key}) for r in self.runs]

    def hparam(self, o: Override, key: str, targets: list[tuple[str, str]]) -> None:
        for kind, name in targets:
            entry: Any = self.models[name] if kind == "model" else self.datasets[name]
            old = next((a for a in entry.axes if a.key == key), None)
            self.replace_axis(kind, name, key, self.value_axis(o, key, old))

    def setting(self, o: Override, where: dict[str, Any], setting: str) -> dict[str, Any]:
        setting = ALIASES.get(setting, setting)
        if o.op == "delete":
            return {k: v for k, v in where.items() if k != setting}
        if o.sweep:
            raise fail(o.key, f"expected one value: a setting takes one (to sweep {setting}, make it an hparam "
                               f"of a model: hparam: {{{setting}: [...]}})")
        return {**where, setting: check_field(FIELD_KINDS[setting], o.values[0], SOURCE, o.key)}

    def search_spec(self, o: Override, spec: SearchSpec | None, key: str, path: str) -> SearchSpec | None:
        if o.op == "delete" or o.sweep:
            raise fail(o.key, f"expected one value for {path}.{key}")
        return parse_spec({**(spec.as_mapping() if spec else {}), key: o.values[0]}, SOURCE, path)

    def apply(self, o: Override) -> None:
        parts = o.key.split(".")
        if len(parts) == 1:
            return self.bare(o, parts[0])
        if parts[0] == "search" and len(parts) == 2:
            self.root_search = self.search_spec(o, self.root_search, parts[1], "search")
            return None
        if parts[0] not in ("model", "dataset") or len(parts) < 3:
            raise self.unknown(o)
        kind, name, rest = parts[0], parts[1], parts[2:]
        pool: Any = self.models if kind == "model" else self.datasets
        if name not in pool:
            close = difflib.get_close_matches(name, list(pool), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (defined: {', '.join(pool)})"
            raise fail(o.key, f"no {kind} named {name!r}{hint}")
        entry = pool[name]
        if len(rest) == 2 and rest[0] == "hparam":
            key = rest[1]
            own = any(a.key == key for a in entry.axes)
            elsewhere = any(a.key == key for _, _, axes in self.entities() for a in axes)
            if not own and (o.op == "delete" or not elsewhere):
                raise self.unknown(o, f"{kind} {name} has no hparam {key!r}")
            return self.hparam(o, key, [(kind, name)])
        if len(rest) == 2 and rest[0] == "search" and kind == "model":
            pool[name] = replace(entry, search=self.search_spec(o, entry.search, rest[1], f"model.{name}.search"))
            return None
        if len(rest) == 1 and rest[0] == "command" and kind == "model":
            if o.op == "delete" or o.sweep or not isinstance(o.values[0], str) or not o.values[0].strip():
                raise fail(o.key, "expected one non-empty command string")
            pool[name] = replace(entry, command=o.values[0])
            return None
        if len(rest) == 1 and (rest[0] in FIELD_KINDS or rest[0] in ALIASES):
            pool[name] = replace(entry, fields=self.setting(o, dict(entry.fields), rest[0]))
            return None
        raise self.unknown(o)

    def bare(self, o: Override, key: str) -> None:
        targets = [(kind, name) for kind, name, axes in self.entities() if any(a.key == key for a in axes)]
        if targets:
            return self.hparam(o, key, targets)
        groups = {a.key for _, _, axes in self.entities() for a in axes if is_group(a)
                  for o in a.options if key in o.values}
        if groups:
            raise fail(o.key, f"is set by the members of the hparam group {sorted(groups)[0]}: choose members "
                               f"with {sorted(groups)[0]}=NAME")
        if key in ("model", "dataset", "name"):
            raise fail(o.key, f"is not a key to set: to choose which cells run, use only='{o.text.lstrip('~')}'")
        if key in FIELD_KINDS or key in ALIASES:
            if o.op == "delete":
                raise fail(o.text, f"expected a value: a setting given here is above every level, so there is "
                                    f"nothing to delete (set it, {key}=..., or delete it from an entry: "
                                    f"~model.NAME.{key})")
            self.set_fields = self.setting(o, self.set_fields, key)
            return None
        raise self.unknown(o)

    def check_searches(self) -> None:
        """Distributions given here need a search: section (from the files or from set= itself)."""
        every_model = all(m.search for m in self.models.values())
        for kind, name in dict.fromkeys(self.touched):
            entry: Any = self.models[name] if kind == "model" else self.datasets[name]
            searched = bool(self.root_search or (entry.search if kind == "model" else every_model))
            check_axes(entry.axes, SOURCE, f"{kind}.{name}.hparam", searched,
                       "add search.samples=N to set=, or a search: section to config/launch.yaml")


def apply(config: Config, overrides: list[Override]) -> Config:
    """The config as if the overrides had been written in its files (settings given bare: above every level)."""
    if not overrides:
        return config
    applier = _Applier(config)
    for override in overrides:
        applier.apply(override)
    applier.check_searches()
    set_fields = applier.set_fields
    base = resolve_settings(config.project, merge_levels([*config.base_levels, set_fields]), SOURCE, "")
    return replace(config, models=applier.models, datasets=applier.datasets, runs=tuple(applier.runs),
                   search=applier.root_search, set_fields=set_fields, base_settings=base)
