"""Pipelines in the config and the grid: `stages:` parsed and checked, stage Runs named, labelled and merged."""
from __future__ import annotations

import pytest
import yaml

from kube import config, grid, stages
from kube.errors import ConfigError, UsageError
from tests.helpers import launch, make_project

KUBE = {"project_name": "example", "user": "alice", "namespace": "lab"}
PIPELINE = """\
gpu_count: 1
model:
  m:
    command: python train.py <lr> --stage <stage>
    hparam: {lr: [0.1, 0.01], memory: [16]}
    stages:
      - {name: fetch, command: 'make download file=data/<_set>/', gpu_count: 0, memory: 4}
      - {name: train, gpu_count: 8}
      - {name: eval, command: 'python eval.py <name>', image: 'eval:<stage>'}
  plain:
    command: echo <_set>
dataset:
  d1: {hparam: {_set: a}}
"""


def build(text: str, only: str | None = None, sets: list[str] | None = None):
    from kube import overrides
    cfg = config.from_mappings(KUBE, yaml.safe_load(text))
    if sets:
        cfg = overrides.apply(cfg, overrides.parse(sets))
    return grid.build_runs(cfg, only)


def test_stage_runs_are_named_from_their_cell_labelled_and_run_their_own_settings():
    runs = build(PIPELINE)
    staged = [r for r in runs if r.model == "m"]
    plain = next(r for r in runs if r.model == "plain")
    assert plain.stages == () and plain.labels == {"user": "alice", "project": "example", "model": "plain",
                                                   "dataset": "d1"}
    cell = staged[0]
    fetch, train, evaluate = cell.stages
    digest = cell.name.rsplit("-", 1)[1]
    assert [s.name for s in cell.stages] == [cell.name.replace(f"-{digest}", f"-{stage}-{digest}")
                                            for stage in ("fetch", "train", "eval")]
    assert all(s.labels == {**cell.labels, "stage": s.stage, "cell": digest} for s in cell.stages)
    assert (fetch.remote_command, train.remote_command) == ("make download file=data/a/",
                                                            "python train.py 0.1 --stage train")
    assert evaluate.remote_command == f"python eval.py {cell.name}" and evaluate.settings.image == "eval:eval"
    # a stage's own settings win over the hparams (memory: 16), the model's and the root's; the rest is inherited
    assert (fetch.settings.gpu_count, fetch.settings.memory) == (0, 4)
    assert (train.settings.gpu_count, train.settings.memory) == (8, 16)
    assert evaluate.settings.gpu_count == 1 and evaluate.cell == cell.name and evaluate.cell_name == cell.name
    assert len({s.name for r in staged for s in r.stages}) == 6


def test_set_overrides_win_over_a_stage_and_stages_come_from_the_dataset_or_the_root():
    runs = build(PIPELINE, "model=m", ["gpu_count=3"])
    assert {s.stage: s.settings.gpu_count for s in runs[0].stages} == {"fetch": 3, "train": 3, "eval": 3}
    text = """\
stages:
  - {name: prepare, command: 'echo prepare <model>'}
  - {name: run}
model:
  a: {command: 'echo a'}
  b: {command: 'echo b', stages: [{name: only}]}
dataset:
  d1: {}
  d2: {stages: [{name: fetch, command: 'echo fetch'}, {name: go}]}
"""
    chains = {(r.model, r.dataset): [(s.stage, s.remote_command) for s in r.stages] for r in build(text)}
    assert chains == {("a", "d1"): [("prepare", "echo prepare a"), ("run", "echo a")],
                      ("b", "d1"): [("only", "echo b")], ("b", "d2"): [("only", "echo b")],
                      ("a", "d2"): [("fetch", "echo fetch"), ("go", "echo a")]}


def test_stage_job_names_fit_63_characters_and_stay_apart():
    text = """\
model:
  a-very-long-model-name-that-goes-on-and-on:
    command: echo <learning_rate>
    hparam: {learning_rate: [0.000123456789, 0.000123456788]}
    stages: [{name: fetch-the-data-now}, {name: t}, {name: fetch-the-data}]
dataset:
  an-equally-long-dataset-name: {}
"""
    runs = build(text)
    names = [s.name for r in runs for s in r.stages]
    assert len(set(names)) == 6 and all(len(n) <= 63 and n[0].isalnum() and n[-1].isalnum() for n in names)
    assert all(s.name.endswith(f"-{s.stage}-{r.name.rsplit('-', 1)[1]}") for r in runs for s in r.stages)
    assert names == [s.name for r in build(text) for s in r.stages]          # stable


def test_one_stage_picked_alone_and_a_missing_one_named():
    runs = stages.pick(build(PIPELINE), "train")
    assert [r.model for r in runs] == ["m", "m"] and all([s.stage for s in r.stages] == ["train"] for r in runs)
    assert len(stages.flatten(runs)) == 2
    with pytest.raises(UsageError, match="no selected cell has a stage 'test' \\(stages: eval, fetch, train\\)"):
        stages.pick(build(PIPELINE), "test")


BAD = [
    ("not-a-list", "stages: {fetch: x}", "stages: expected a non-empty list of stages"),
    ("empty", "stages: []", "stages: expected a non-empty list"),
    ("not-a-mapping", "stages: [fetch]", "stages[0]: expected a mapping with a name and a command, got a string"),
    ("no-name", "stages: [{command: x}]", "stages[0].name: expected a stage name of lowercase letters"),
    ("upper", "stages: [{name: Fetch}]", "stages[0].name: expected a stage name of lowercase letters, digits and "
                                         "'-' (at most 20), got 'Fetch'"),
    ("underscore", "stages: [{name: my_fetch}]", "stages[0].name: expected a stage name"),
    ("long", "stages: [{name: a-stage-name-too-long-for-it}]", "(at most 20)"),
    ("twice", "stages: [{name: a}, {name: a}]", "stages[1].name: expected unique stage names; 'a' is also "
                                                 "model.m.stages[0]"),
    ("unknown", "stages: [{name: a, gpu_cuont: 1}]", "stages[0].gpu_cuont: unknown key; did you mean 'gpu_count'?"),
    ("bad-command", "stages: [{name: a, command: ''}]", "stages[0].command: expected a non-empty command string"),
    ("bad-setting", "stages: [{name: a, gpu_count: -1}]", "stages[0].gpu_count: expected"),
]


@pytest.mark.parametrize("case, stages_text, expected", BAD, ids=[c[0] for c in BAD])
def test_bad_stages_are_one_line_errors_naming_the_key_path(case, stages_text, expected):
    text = f"model:\n  m:\n    command: echo\n    {stages_text}\n"
    with pytest.raises(ConfigError) as err:
        build(text)
    message = str(err.value)
    assert message.startswith("config/launch.yaml: model.m.") and expected in message and "\n" not in message


COMMANDS = [
    ("no-command", "model: {m: {stages: [{name: a}]}}",
     "model.m.command: expected a command: stage 'a' (model.m.stages[0]) runs the model's command"),
    ("never-run", "model: {m: {command: x, stages: [{name: a, command: y}]}}",
     "model.m.command: is never run: every stage of model.m.stages has its own command"),
    ("root-needs-command", "stages: [{name: a}]\nmodel: {m: {}}", "model.m.command: expected a command: stage 'a' "
                                                                  "(stages[0])"),
    ("packed", "model: {m: {command: x, shared: 2, stages: [{name: a}]}}",
     "model.m.stages[0]: expected neither shared nor max_parallel for a stage"),
    ("driver-place", "driver: laptop\nmodel: {m: {command: x}}", "driver: expected local or cluster, got 'laptop'"),
    ("driver-key", "driver: {where: cluster, pol: 3}\nmodel: {m: {command: x}}",
     "driver.pol: unknown key; did you mean 'poll'?"),
    ("driver-account", "driver: {where: cluster, service_account: Bad_Name}\nmodel: {m: {command: x}}",
     "driver.service_account: expected a ServiceAccount name"),
]


@pytest.mark.parametrize("case, text, expected", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_commands_and_the_driver_are_checked(case, text, expected):
    with pytest.raises(ConfigError) as err:
        build(text)
    assert str(err.value).startswith(f"config/launch.yaml: {expected}") and "\n" not in str(err.value)


def test_a_bad_stage_stops_the_command_line_with_status_2(tmp_path):
    make_project(tmp_path, "model:\n  m:\n    command: echo\n    stages: [{name: a}, {name: a}]\n")
    result = launch(tmp_path, "local")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: config/launch.yaml: model.m.stages[1].name: expected unique stage names; "
                             "'a' is also model.m.stages[0]\n")
