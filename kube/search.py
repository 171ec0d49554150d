"""Random search, pure: `search:` specs, distributions as hparam values, and samples frozen into ordinary cells.

A distribution (`loguniform(1e-5, 1e-2)`, `uniform(a, b)`, `randint(a, b)`, `choice([...])`) is an hparam value
written as a string. With a `search: {method: random, samples: N, seed: S}` section, each (dataset, model) pair
becomes its grid of fixed hparams x N samples. Sample i of hparam k is drawn with its own
`random.Random((seed, i, k))`, so the values never depend on the order of expansion, on the other hparams or on
`samples`: raising `samples` keeps the first cells, names included.
"""
from __future__ import annotations

import difflib
import itertools
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import yaml

from .errors import ConfigError
from .hparams import Axis, Option, is_scalar, type_name
from .naming import value_text

KINDS = ("loguniform", "uniform", "randint", "choice")
METHODS = ("random",)
SPEC_KEYS = ("method", "samples", "seed")
SAMPLE_KEY = "_sample"                  # the hidden hparam holding a cell's sample index
SIGNIFICANT = 6                         # sampled floats keep 6 significant digits: short names and commands
_CALL = re.compile(r"^\s*(loguniform|uniform|randint|choice)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class SearchSpec:
    """A validated `search:` section."""

    samples: int
    seed: int = 0
    method: str = "random"

    def as_mapping(self) -> dict[str, Any]:
        return {"method": self.method, "samples": self.samples, "seed": self.seed}


@dataclass(frozen=True)
class Distribution:
    """One distribution; bounds are inclusive: low <= value <= high."""

    kind: str
    args: tuple[Any, ...]

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.args)
        if self.kind == "randint":
            return rng.randint(self.args[0], self.args[1])
        low, high = self.args
        if self.kind == "loguniform":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return min(max(float(f"{value:.{SIGNIFICANT}g}"), low), high)


def _number(text: Any) -> float | None:
    """`1e-5` is a string to YAML 1.1 but a number here."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text) if math.isfinite(text) else None
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def is_distribution_text(value: Any) -> bool:
    return isinstance(value, str) and _CALL.match(value) is not None


def parse_distribution(value: Any, source: str, path: str) -> Distribution | None:
    """The distribution a string spells, None for any other value; a malformed one is a ConfigError."""
    match = _CALL.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    kind, inner = match.group(1), match.group(2)
    try:
        args = yaml.safe_load(f"[{inner}]")
    except yaml.YAMLError:
        args = None
    usage = {"loguniform": "loguniform(low, high) with 0 < low < high",
             "uniform": "uniform(low, high) with low < high",
             "randint": "randint(low, high) with whole numbers low <= high (both included)",
             "choice": "choice([a, b, ...]) with one or more distinct values"}[kind]
    bad = ConfigError(source, path, f"expected {usage}, got {value!r}")
    if not isinstance(args, list):
        raise bad
    if kind == "choice":
        options = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        labels = [value_text(o) for o in options]
        if not options or not all(is_scalar(o) for o in options) or len(set(labels)) != len(labels):
            raise bad
        return Distribution(kind, tuple(options))
    if len(args) != 2:
        raise bad
    if kind == "randint":
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args) or args[0] > args[1]:
            raise bad
        return Distribution(kind, (args[0], args[1]))
    low, high = _number(args[0]), _number(args[1])
    if low is None or high is None or not low < high or (kind == "loguniform" and low <= 0):
        raise bad
    return Distribution(kind, (low, high))


def parse_spec(data: Any, source: str, path: str) -> SearchSpec | None:
    """A `search:` section (None when absent), every key checked."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(source, path, f"expected a mapping with method, samples and seed, got {type_name(data)}")
    for key in data:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (expected {', '.join(SPEC_KEYS)})"
            raise ConfigError(source, f"{path}.{key}", f"unknown key{hint}")
    method = data.get("method", "random")
    if method not in METHODS:
        raise ConfigError(source, f"{path}.method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    if "samples" not in data:
        raise ConfigError(source, f"{path}.samples", "required: how many samples to draw (a whole number >= 1)")
    samples, seed = data["samples"], data.get("seed", 0)
    if not (isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1):
        raise ConfigError(source, f"{path}.samples", f"expected a whole number >= 1, got {samples!r}")
    if not (isinstance(seed, int) and not isinstance(seed, bool)):
        raise ConfigError(source, f"{path}.seed", f"expected a whole number, got {seed!r}")
    return SearchSpec(samples=samples, seed=seed, method=method)


def distributions(axes: Sequence[Axis]) -> dict[int, Distribution]:
    """Position -> distribution of the axes whose one value is a distribution (already checked by `check_axes`)."""
    out = {}
    for position, axis in enumerate(axes):
        if len(axis.options) == 1:
            value = axis.options[0].values.get(axis.key)
            dist = parse_distribution(value, "", axis.key) if list(axis.options[0].values) == [axis.key] else None
            if dist is not None:
                out[position] = dist
    return out


def check_axes(axes: Iterable[Axis], source: str, path: str, searched: bool, where: str) -> bool:
    """Check the distributions among some hparam axes; True when there is one.

    A distribution must be a whole hparam value (not one of a list, not in a group member), and needs a
    `search:` section (`searched`; `where` says where one may be written).
    """
    found = False
    for axis in axes:
        for option in axis.options:
            for key, value in option.values.items():
                if not is_distribution_text(value):
                    continue
                whole = len(axis.options) == 1 and list(option.values) == [axis.key]
                kpath = f"{path}.{axis.key}" if key == axis.key else f"{path}.{axis.key}.{option.label}.{key}"
                if not whole:
                    raise ConfigError(source, kpath, "expected a distribution as the whole value of an hparam "
                                                     "(not in a list or a group)")
                parse_distribution(value, source, kpath)
                if not searched:
                    raise ConfigError(source, kpath, f"a distribution needs a search: section "
                                                     f"({where}), e.g. search: {{method: random, samples: 20}}")
                if axis.key == SAMPLE_KEY:
                    raise ConfigError(source, kpath, f"{SAMPLE_KEY} is the sample index of a search")
                found = True
    return found


def _rng(seed: int, index: int, key: str) -> random.Random:
    # A string seed is hashed with SHA-512: the same numbers in every process and on every platform.
    return random.Random(f"kube-toolbox/{seed}/{index}/{key}")


def sample_values(dist: Distribution, key: str, spec: SearchSpec) -> list[Any]:
    """The `samples` values of one hparam, sample i drawn from (seed, i, key) alone."""
    return [dist.draw(_rng(spec.seed, i, key)) for i in range(spec.samples)]


def expand(axes: Sequence[Axis], spec: SearchSpec | None) -> tuple[list[Axis], Iterator[tuple[Option, ...]]]:
    """(axes, combinations) of one (dataset, model) pair: the grid of the fixed axes, times the samples.

    With distributions, a last hidden axis `_sample` (0, 1, ...) is added: every sample is its own cell, even
    when two draw equal values, and its index is available as `<_sample>` and to `only=`.
    """
    dists = distributions(axes)
    if not dists or spec is None:
        return list(axes), itertools.product(*(a.options for a in axes))
    drawn = {p: sample_values(d, axes[p].key, spec) for p, d in dists.items()}
    per_sample = [{p: Option(value_text(values[i]), {axes[p].key: values[i]}) for p, values in drawn.items()}
                  for i in range(spec.samples)]
    index_axis = Axis(SAMPLE_KEY, tuple(Option(str(i), {SAMPLE_KEY: i}) for i in range(spec.samples)))
    fixed = [a.options if p not in dists else (a.options[0],) for p, a in enumerate(axes)]

    def combos() -> Iterator[tuple[Option, ...]]:
        for combo in itertools.product(*fixed):
            for i, chosen in enumerate(per_sample):
                yield tuple(chosen.get(p, o) for p, o in enumerate(combo)) + (index_axis.options[i],)
    return [*axes, index_axis], combos()
