"""Random search: distributions drawn from a seed into ordinary cells, the same on every invocation."""
from __future__ import annotations

import math
import os
import statistics
import textwrap

import pytest

from kube import config, grid, search
from kube.errors import ConfigError
from tests.helpers import launch, make_project

KUBE = {"project_name": "example", "namespace": "lab", "user": "alice"}

SEARCH = """\
search: {method: random, samples: 40, seed: 0}
model:
  m:
    command: python train.py --lr <lr> --wd <wd> --layers <layers> --opt <opt> --bs <bs>
    hparam:
      lr: loguniform(1e-5, 1e-2)
      wd: uniform(0, 0.1)
      layers: randint(2, 8)
      opt: choice([sgd, adam])
      bs: [32, 64]
"""


def runs_of(text, only=None):
    return grid.build_runs(config.from_mappings(KUBE, config.parse_yaml(textwrap.dedent(text),
                                                                         config.LAUNCH_FILE)), only)


def test_grid_times_samples_with_values_in_their_ranges():
    runs = runs_of(SEARCH)
    assert len(runs) == 2 * 40
    assert [r.hparams["bs"] for r in runs] == [32] * 40 + [64] * 40
    for r in runs:
        assert 1e-5 <= r.hparams["lr"] <= 1e-2
        assert 0 <= r.hparams["wd"] <= 0.1
        assert r.hparams["layers"] in range(2, 9) and isinstance(r.hparams["layers"], int)
        assert r.hparams["opt"] in ("sgd", "adam")
    assert [r.hparams["_sample"] for r in runs[:3]] == [0, 1, 2]
    assert len({r.name for r in runs}) == 80
    # sample i draws the same values for every fixed combination: bs=32 and bs=64 are compared on equal draws
    assert [r.hparams["lr"] for r in runs[:40]] == [r.hparams["lr"] for r in runs[40:]]
    assert runs[0].local_command == (f"python train.py --lr {runs[0].hparams['lr']} --wd {runs[0].hparams['wd']} "
                                     f"--layers {runs[0].hparams['layers']} --opt {runs[0].hparams['opt']} --bs 32")


def test_same_cells_names_and_values_in_two_processes(tmp_path):
    root = make_project(tmp_path, SEARCH)
    outputs = []
    for hash_seed in ("1", "2"):
        result = launch(root, "runs", env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].rstrip().endswith("80 combinations")
    names = [r.name for r in runs_of(SEARCH)]
    assert [line.split()[1] for line in outputs[0].splitlines()[1:-1]] == names


def test_increasing_samples_keeps_the_first_cells():
    few = runs_of(SEARCH.replace("samples: 40", "samples: 5"), only="bs=32")
    many = runs_of(SEARCH.replace("samples: 40", "samples: 12"), only="bs=32")
    assert [(r.name, dict(r.hparams)) for r in many[:5]] == [(r.name, dict(r.hparams)) for r in few]
    other_seed = runs_of(SEARCH.replace("seed: 0", "seed: 1"), only="bs=32")
    assert [r.hparams["lr"] for r in other_seed[:5]] != [r.hparams["lr"] for r in few]


def quartiles(values):
    return statistics.quantiles(values, n=4)


def test_quartiles_follow_the_distributions():
    spec = search.SearchSpec(samples=4000, seed=0)
    lr = search.sample_values(search.parse_distribution("loguniform(1e-4, 1)", "", "lr"), "lr", spec)
    assert [round(math.log10(q), 1) for q in quartiles(lr)] == pytest.approx([-3, -2, -1], abs=0.1)
    wd = search.sample_values(search.parse_distribution("uniform(0, 10)", "", "wd"), "wd", spec)
    assert quartiles(wd) == pytest.approx([2.5, 5, 7.5], abs=0.25)
    assert min(wd) >= 0 and max(wd) <= 10
    n = search.sample_values(search.parse_distribution("randint(1, 4)", "", "n"), "n", spec)
    assert sorted(set(n)) == [1, 2, 3, 4]                               # both bounds included
    assert all(abs(n.count(v) - 1000) < 100 for v in (1, 2, 3, 4))
    assert quartiles(n) == pytest.approx([1.5, 2.5, 3.5], abs=0.5)
    c = search.sample_values(search.parse_distribution("choice([a, b])", "", "c"), "c", spec)
    assert abs(c.count("a") - 2000) < 150


def test_model_search_wins_over_the_root_one_and_fixed_models_stay_a_grid():
    runs = runs_of(SEARCH + """\
  fixed: {command: echo <lr>, hparam: {lr: [0.1, 0.2]}}
  own:
    command: echo <lr>
    hparam: {lr: 'uniform(0, 1)'}
    search: {samples: 3, seed: 5}
""")
    assert [r.hparams["lr"] for r in runs if r.model == "fixed"] == [0.1, 0.2]
    assert len([r for r in runs if r.model == "own"]) == 3


def test_dataset_distribution_with_a_root_search():
    runs = runs_of("""\
        search: {samples: 4}
        model: {m: {command: echo <x>}}
        dataset: {d: {hparam: {x: 'randint(0, 100)'}}}
        """)
    assert len(runs) == 4 and all(0 <= r.hparams["x"] <= 100 for r in runs)


@pytest.mark.parametrize("text, words", [
    pytest.param("model: {m: {command: echo <lr>, hparam: {lr: 'loguniform(1e-5, 1e-2)'}}}",
                 "config/launch.yaml: model.m.hparam.lr: a distribution needs a search: section", id="no-search"),
    pytest.param("model: {m: {command: echo}}\ndataset: {d: {hparam: {x: 'uniform(0, 1)'}}}",
                 "dataset.d.hparam.x: a distribution needs a search: section", id="dataset-no-search"),
    pytest.param("search: {samples: 2, sead: 1}\nmodel: {m: {command: echo}}",
                 "search.sead: unknown key; did you mean 'seed'?", id="typo-key"),
    pytest.param("search: {samples: 0}\nmodel: {m: {command: echo}}",
                 "search.samples: expected a whole number >= 1, got 0", id="zero-samples"),
    pytest.param("search: {seed: 1}\nmodel: {m: {command: echo}}", "search.samples: required", id="no-samples"),
    pytest.param("search: {samples: 2, method: grid}\nmodel: {m: {command: echo}}",
                 "search.method: expected one of random, got 'grid'", id="bad-method"),
    pytest.param("search: {samples: 2, seed: 1.5}\nmodel: {m: {command: echo}}",
                 "search.seed: expected a whole number", id="float-seed"),
    pytest.param("search: [2]\nmodel: {m: {command: echo}}", "search: expected a mapping", id="not-a-mapping"),
    pytest.param("model: {m: {command: echo, search: {samples: true}}}",
                 "model.m.search.samples: expected a whole number >= 1", id="model-bool-samples"),
    pytest.param("search: {samples: 2}\nmodel: {m: {command: echo <lr>, hparam: {lr: 'loguniform(0, 1)'}}}",
                 "model.m.hparam.lr: expected loguniform(low, high) with 0 < low < high", id="log-of-zero"),
    pytest.param("search: {samples: 2}\nmodel: {m: {command: echo <lr>, hparam: {lr: 'uniform(1, 1)'}}}",
                 "expected uniform(low, high) with low < high", id="empty-range"),
    pytest.param("search: {samples: 2}\nmodel: {m: {command: echo <n>, hparam: {n: 'randint(1.5, 3)'}}}",
                 "expected randint(low, high) with whole numbers", id="float-randint"),
    pytest.param("search: {samples: 2}\nmodel: {m: {command: echo <c>, hparam: {c: 'choice([])'}}}",
                 "expected choice([a, b, ...])", id="empty-choice"),
    pytest.param("search: {samples: 2}\nmodel: {m: {command: echo <lr>, hparam: {lr: [0.1, 'uniform(0, 1)']}}}",
                 "expected a distribution as the whole value", id="in-a-list"),
])
def test_bad_search_sections_and_distributions_are_one_line_errors(text, words):
    with pytest.raises(ConfigError) as info:
        runs_of(text)
    assert words in str(info.value) and "\n" not in str(info.value)
