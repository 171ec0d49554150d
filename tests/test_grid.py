"""Grid expansion: order, scalars, named groups, `_` hparams, the run section and command-line selection."""
from __future__ import annotations

import textwrap

import pytest

from kube import config, grid
from kube.errors import ConfigError, UsageError

REFERENCE = """\
model:
  average:
    command: "[](make download file=data/;) python src/avg.py <fn>"
  median:
    command: "[](make download file=data/;) python src/med.py <fn>"
dataset:
  data1: {hparam: {_fn: data/1.txt}}
  data2: {hparam: {_fn: data/2.txt}}
run:
  dataset: [data1, data2]
  model: [average, median]
"""


KUBE = {"project_name": "example", "namespace": "lab", "user": "alice"}


def runs_of(launch, only=None):
    """The grid of a launch.yaml given as text or as a mapping; nothing is written to disk."""
    data = config.parse_yaml(textwrap.dedent(launch), config.LAUNCH_FILE) if isinstance(launch, str) else launch
    return grid.build_runs(config.from_mappings(KUBE, data), only)


def test_reference_order_is_dataset_then_model():
    runs = runs_of(REFERENCE)
    assert [(r.model, r.dataset) for r in runs] == [
        ("average", "data1"), ("median", "data1"), ("average", "data2"), ("median", "data2")]
    assert runs[0].local_command == "python src/avg.py data/1.txt"
    assert runs[0].remote_command == "make download file=data/; python src/avg.py data/1.txt"
    assert [r.index for r in runs] == [0, 1, 2, 3]


def test_run_section_order_is_the_users():
    runs = runs_of(REFERENCE.replace("[data1, data2]", "[data2, data1]"))
    assert [r.dataset for r in runs] == ["data2", "data2", "data1", "data1"]


def test_missing_run_section_means_everything():
    text = REFERENCE.split("run:")[0]
    assert len(runs_of(text)) == 4


def test_last_hparam_varies_fastest_and_scalars_are_one_value():
    runs = runs_of("""\
        model:
          m:
            command: echo <a> <b> <c>
            hparam: {a: [1, 2], b: x, c: [true, false]}
        dataset: {d: {}}
        """)
    assert [(r.hparams["a"], r.hparams["c"]) for r in runs] == [(1, True), (1, False), (2, True), (2, False)]
    assert runs[1].local_command == "echo 1 x false"


def test_model_hparams_win_over_dataset_hparams():
    runs = runs_of("""\
        model:
          m: {command: echo <lr> <bs>, hparam: {lr: [0.5]}}
        dataset:
          d: {hparam: {bs: 8, lr: [0.1, 0.2]}}
        """)
    assert len(runs) == 1 and runs[0].hparams == {"bs": 8, "lr": 0.5}
    assert list(runs[0].hparams) == ["bs", "lr"]


def test_named_group_from_the_reference_gives_three_runs():
    runs = runs_of("""\
        model:
          t5:
            command: python train.py --lr <_learning_rate> --sched <_lr_scheduler> --warmup <_lr_warmup_steps>
            hparam:
              train:
                paper: {_learning_rate: 0.000000008192, _lr_scheduler: linear, _lr_warmup_steps: 0}
                original: {_learning_rate: 1e-5, _lr_scheduler: constant, _lr_warmup_steps: 500}
                scale: {_learning_rate: 1e-5, _lr_scheduler: constant, _lr_warmup_steps: 500}
        dataset: {yelp: {}}
        """)
    assert [r.hparams["train"] for r in runs] == ["paper", "original", "scale"]
    assert all("-train-" in r.name for r in runs)
    assert "train-paper-" in runs[0].name
    assert runs[1].local_command == "python train.py --lr 1e-5 --sched constant --warmup 500"
    assert len({r.name for r in runs}) == 3   # original and scale have equal values, different names


def test_underscore_hparams_stay_out_of_names():
    runs = runs_of(REFERENCE)
    assert all("fn" not in r.name and "txt" not in r.name for r in runs)
    assert runs[0].name.startswith("example-average-data1-")


def test_run_hparam_selects_values():
    runs = runs_of("""\
        model:
          m: {command: echo <lr>, hparam: {lr: [0.1, 0.2, 0.3]}}
        dataset: {d: {}}
        run: {hparam: {lr: [0.3, 0.1]}}
        """)
    assert [r.hparams["lr"] for r in runs] == [0.1, 0.3]


def test_run_list_entries_are_unioned_without_duplicates():
    runs = runs_of(REFERENCE.split("run:")[0] + """\
run:
  - {model: average, dataset: data1}
  - {dataset: [data1, data2], model: [average]}
""")
    assert [(r.model, r.dataset) for r in runs] == [("average", "data1"), ("average", "data2")]


@pytest.mark.parametrize("only, expected", [
    pytest.param("model=average dataset=data1", [("average", "data1")], id="model-and-dataset"),
    pytest.param("model=median", [("median", "data1"), ("median", "data2")], id="model-only"),
    pytest.param("dataset=data1,data2 model=average", [("average", "data1"), ("average", "data2")], id="comma-or"),
    pytest.param("_fn=data/2.txt", [("average", "data2"), ("median", "data2")], id="hidden-hparam"),
])
def test_only_selects_from_the_command_line(only, expected):
    assert [(r.model, r.dataset) for r in runs_of(REFERENCE, only)] == expected


def test_only_by_name():
    all_runs = runs_of(REFERENCE)
    picked = runs_of(REFERENCE, f"name={all_runs[2].name}")
    assert [r.name for r in picked] == [all_runs[2].name]


@pytest.mark.parametrize("only, message", [
    pytest.param("colour=red", "unknown key 'colour'", id="unknown-key"),
    pytest.param("model=nope", "selects no combination", id="nothing-selected"),
    pytest.param("banana", "expected key=value", id="bare-word"),
])
def test_bad_only_is_a_usage_error(only, message):
    with pytest.raises(UsageError, match=message):
        runs_of(REFERENCE, only)


def test_hparam_named_like_a_field_overrides_it_per_combination():
    runs = runs_of("""\
        gpu_count: 1
        model:
          m: {command: echo <gpu_count>, hparam: {gpu_count: [0, 2]}, memory: 8}
        dataset: {d: {memory: 4, cpu_count: 3}}
        """)
    assert [r.settings.gpu_count for r in runs] == [0, 2]
    assert runs[0].settings.memory == 8 and runs[0].settings.cpu_count == 3


def test_placeholders_in_model_strings_and_builtins():
    runs = runs_of("""\
        model:
          m:
            command: python run.py --out out/<model>_<dataset> --tag <tag>
            hparam: {tag: [v1]}
            image: registry/img:<tag>
            env: {RUN_TAG: "<tag>"}
        dataset: {d: {}}
        """)
    assert runs[0].local_command == "python run.py --out out/m_d --tag v1"
    assert runs[0].settings.image == "registry/img:v1"
    assert runs[0].settings.env["RUN_TAG"] == "v1"


def test_unresolved_placeholder_is_named():
    with pytest.raises(ConfigError, match=r"model\.m\.command: unresolved placeholder <fnn>"):
        runs_of("model: {m: {command: python a.py <fnn>}}\ndataset: {d: {hparam: {_fn: x}}}\n")


def test_hparam_value_cannot_inject_a_command():
    runs = runs_of("""\
        model: {m: {command: "python a.py <arg>"}}
        dataset: {d: {hparam: {arg: "x; touch pwned"}}}
        """)
    assert runs[0].local_command == "python a.py 'x; touch pwned'"


def test_ten_thousand_grid_names_are_unique():
    runs = runs_of("""\
        model:
          a-really-long-model-name-used-to-force-truncation-of-every-job-name:
            command: echo <lr> <wd>
            hparam: {lr: [%s], wd: [%s]}
        dataset: {d: {}}
        """ % (", ".join(str(i / 1000) for i in range(100)), ", ".join(str(i) for i in range(100))))
    assert len(runs) == 10_000
    assert len({r.name for r in runs}) == 10_000
    assert all(len(r.name) <= 63 for r in runs)


def _m(command, **hparam):
    return {"command": command, **({"hparam": hparam} if hparam else {})}


# name -> (launch.yaml as a mapping, only=, expected (model, dataset, local command) of every cell in order)
CASES = {
    "one-cell": ({"model": {"m": _m("echo hi")}}, None, [("m", "default", "echo hi")]),
    "product-order": ({"model": {"m": _m("e <a><b>", a=[1, 2], b=["x", "y"])}}, None,
                      [("m", "default", "e 1x"), ("m", "default", "e 1y"), ("m", "default", "e 2x"),
                       ("m", "default", "e 2y")]),
    "datasets-outer": ({"model": {"a": _m("a <f>"), "b": _m("b <f>")},
                        "dataset": {"d1": {"hparam": {"f": 1}}, "d2": {"hparam": {"f": 2}}}}, None,
                       [("a", "d1", "a 1"), ("b", "d1", "b 1"), ("a", "d2", "a 2"), ("b", "d2", "b 2")]),
    "model-wins": ({"model": {"m": _m("e <x>", x=[3])}, "dataset": {"d": {"hparam": {"x": [1, 2]}}}}, None,
                   [("m", "d", "e 3")]),
    "group": ({"model": {"m": _m("e <opt> <lr>", opt={"sgd": {"lr": 0.1}, "adam": {"lr": 0.01}})}}, None,
              [("m", "default", "e sgd 0.1"), ("m", "default", "e adam 0.01")]),
    "run-selects": ({"model": {"m": _m("e <a>", a=[1, 2, 3])}, "run": {"hparam": {"a": [3, 1]}}}, None,
                    [("m", "default", "e 1"), ("m", "default", "e 3")]),
    "only-filters": ({"model": {"m": _m("e <a>", a=[1, 2, 3])}}, "a=2", [("m", "default", "e 2")]),
    "sugar": ({"model": {"m": _m("[local](remote) <a>", a=[1])}}, None, [("m", "default", "local 1")]),
    "merge-key": ({"base": None, "model": {"m": {"<<": {"command": "e <a>"}, "hparam": {"a": [1]}}}}, None,
                  [("m", "default", "e 1")]),
}


@pytest.mark.parametrize("launch, only, expected", [pytest.param(*c, id=k) for k, c in CASES.items()])
def test_grid_table(launch, only, expected):
    if "base" in launch:            # the merge key needs YAML: `<<:` is a loader feature, not a mapping one
        text = "base: &b {command: 'e <a>'}\nmodel: {m: {<<: *b, hparam: {a: [1]}}}\n"
        launch = {k: v for k, v in config.parse_yaml(text, config.LAUNCH_FILE).items() if k != "base"}
    assert [(r.model, r.dataset, r.local_command) for r in runs_of(launch, only)] == expected
