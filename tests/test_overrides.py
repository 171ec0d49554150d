"""`set=` overrides: Hydra's basic grammar (table-driven, named cases) and what each key form changes in the grid."""
from __future__ import annotations

import textwrap

import pytest

from kube import config, grid, overrides
from kube.errors import ConfigError
from tests.helpers import launch, make_project

KUBE = {"project_name": "example", "namespace": "lab", "user": "alice"}

# name -> (override text, expected (key, op, values) of each override)
VALID = {
    # Hydra's documented basic forms
    "key-value": ("lr=0.01", [("lr", "set", (0.01,))]),
    "dotted-key": ("model.m.gpu_count=2", [("model.m.gpu_count", "set", (2,))]),
    "simple-sweep": ("lr=0.1,0.01,0.001", [("lr", "set", (0.1, 0.01, 0.001))]),
    "string-sweep": ("db=mysql,postgresql", [("db", "set", ("mysql", "postgresql"))]),
    "delete": ("~lr", [("lr", "delete", ())]),
    "single-quoted-comma": ("msg='a,b'", [("msg", "set", ("a,b",))]),
    "double-quoted-space": ('msg="a b"', [("msg", "set", ("a b",))]),
    "quoted-number-is-text": ("tag='1'", [("tag", "set", ("1",))]),
    "escaped-quote": (r"msg='it\'s'", [("msg", "set", ("it's",))]),
    "escaped-comma": (r"msg=a\,b", [("msg", "set", ("a,b",))]),
    "escaped-space": (r"msg=a\ b", [("msg", "set", ("a b",))]),
    "int": ("n=10", [("n", "set", (10,))]),
    "float": ("x=3.14", [("x", "set", (3.14,))]),
    "float-with-dot-exponent": ("x=1.0e-5", [("x", "set", (1e-5,))]),
    "yaml11-exponent-is-text": ("x=1e-5", [("x", "set", ("1e-5",))]),
    "bool": ("flag=true", [("flag", "set", (True,))]),
    "bool-false": ("flag=false", [("flag", "set", (False,))]),
    "null": ("x=null", [("x", "set", (None,))]),
    "empty-string": ("prefix=", [("prefix", "set", ("",))]),
    "colon-in-value": ("image=reg/img:tag", [("image", "set", ("reg/img:tag",))]),
    "list": ("x=[1,2]", [("x", "set", ([1, 2],))]),
    "nested-list": ("x=[a, [b, c]]", [("x", "set", (["a", ["b", "c"]],))]),
    "empty-list": ("x=[]", [("x", "set", ([],))]),
    "sweep-of-lists": ("x=[1,2],[3]", [("x", "set", ([1, 2], [3]))]),
    "dict": ("env={A:1,B:two}", [("env", "set", ({"A": 1, "B": "two"},))]),
    "distribution": ("lr=loguniform(1e-5, 1e-2)", [("lr", "set", ("loguniform(1e-5, 1e-2)",))]),
    "choice-distribution": ("opt=choice([sgd, adam])", [("opt", "set", ("choice([sgd, adam])",))]),
    "several": ("lr=0.1 model.m.memory=8 ~wd", [("lr", "set", (0.1,)), ("model.m.memory", "set", (8,)),
                                                ("wd", "delete", ())]),
    "extra-spaces": ("  lr=0.1   bs=8 ", [("lr", "set", (0.1,)), ("bs", "set", (8,))]),
    "quoted-space-kept-in-one": ("msg='a b' lr=1", [("msg", "set", ("a b",)), ("lr", "set", (1,))]),
    "space-inside-list": ("x=[1, 2]", [("x", "set", ([1, 2],))]),
}

# name -> (override text, words the one-line error must hold)
INVALID = {
    "append-plus": ("+lr=0.1", "'+' adds a key"),
    "force-add": ("++lr=0.1", "'+' adds a key"),
    "package": ("db@backup=mysql", "packages (key@package) are not supported"),
    "config-group-path": ("db/mysql=x", "config groups (a/b) are not supported"),
    "delete-by-value": ("~lr=0.1", "deleting by value"),
    "no-equals": ("lr", "expected key=value"),
    "no-key": ("=1", "expected key=value"),
    "range-sweep": ("x=range(1,5)", "range() is not supported"),
    "interval-sweep": ("x=interval(0,1)", "interval() is not supported"),
    "unknown-function": ("x=foo(1)", "unknown function foo()"),
    "interpolation": ("x=${y}", "interpolations"),
    "unclosed-list": ("x=[1,2", "expected ',' or ']'"),
    "unclosed-quote": ("x='ab", "expected a closing '"),
    "empty-sweep-element": ("x=1,,2", "expected a value"),
    "dict-without-colon": ("x={a}", "expected ':' after a key"),
    "trailing-garbage": ("x=[1]]", "unexpected ']'"),
}


@pytest.mark.parametrize("text, expected", [pytest.param(*c, id=k) for k, c in VALID.items()])
def test_valid_overrides_parse(text, expected):
    assert [(o.key, o.op, o.values) for o in overrides.parse(text)] == expected


@pytest.mark.parametrize("text, words", [pytest.param(*c, id=k) for k, c in INVALID.items()])
def test_invalid_overrides_are_one_line_errors_naming_set(text, words):
    with pytest.raises(ConfigError) as info:
        overrides.parse(text)
    message = str(info.value)
    assert message.startswith("set=: ") and words in message and "\n" not in message


def test_several_set_options_are_joined_in_order():
    parsed = overrides.parse(["lr=0.1", "bs=8 ~wd"])
    assert [o.key for o in parsed] == ["lr", "bs", "wd"]
    assert overrides.canonical(parsed) == "lr=0.1 bs=8 ~wd"
    assert overrides.job_annotations([]) == {}


LAUNCH = """\
model:
  m:
    command: echo <lr> <bs> <gpu_count>
    hparam: {lr: [0.1, 0.2], gpu_count: 0}
    memory: 4
  n:
    command: echo <opt> <lr>
    hparam:
      opt: {sgd: {lr: 0.1}, adam: {lr: 0.01}, rms: {lr: 0.5}}
dataset:
  d: {hparam: {bs: [8, 16]}}
run: {hparam: {bs: [16]}}
"""


def cfg_of(text=LAUNCH):
    return config.from_mappings(KUBE, config.parse_yaml(textwrap.dedent(text), config.LAUNCH_FILE))


def runs_with(sets, text=LAUNCH, only=None):
    return grid.build_runs(overrides.apply(cfg_of(text), overrides.parse(sets)), only)


def test_value_names_and_hashes_its_cells_exactly_as_the_same_value_in_yaml():
    via_set = runs_with("lr=0.01", only="model=m")
    in_yaml = grid.build_runs(cfg_of(LAUNCH.replace("lr: [0.1, 0.2]", "lr: 0.01")), "model=m")
    assert [(r.name, dict(r.hparams), r.local_command) for r in via_set] == \
        [(r.name, dict(r.hparams), r.local_command) for r in in_yaml]
    assert [r.hparams["lr"] for r in via_set] == [0.01]


def test_sweep_replaces_the_axis_in_order():
    runs = runs_with("lr=0.3,0.01,0.2", only="model=m")
    assert [r.hparams["lr"] for r in runs] == [0.3, 0.01, 0.2]
    in_yaml = grid.build_runs(cfg_of(LAUNCH.replace("[0.1, 0.2]", "[0.3, 0.01, 0.2]")), "model=m")
    assert [r.name for r in runs] == [r.name for r in in_yaml]


def test_hparam_narrowed_by_the_run_section_is_replaced_for_this_invocation():
    assert [r.hparams["bs"] for r in runs_with("", only="model=m")] == [16, 16]
    assert [r.hparams["bs"] for r in runs_with("bs=32,64", only="model=m")] == [32, 32, 64, 64]


def test_group_override_chooses_members_like_a_config_group():
    runs = runs_with("opt=rms,sgd", only="model=n")
    assert [(r.hparams["opt"], r.hparams["lr"]) for r in runs] == [("rms", 0.5), ("sgd", 0.1)]
    with pytest.raises(ConfigError, match=r"set=: opt: expected members of the group opt among sgd, adam, rms"):
        runs_with("opt=lamb")


def test_model_hparam_path_changes_only_that_model():
    runs = runs_with("model.m.hparam.lr=0.7")
    assert {r.model: r.hparams["lr"] for r in runs if r.model == "m"} == {"m": 0.7}
    assert sorted(r.hparams["lr"] for r in runs if r.model == "n") == [0.01, 0.1, 0.5]


def test_settings_bare_is_above_every_level_and_entry_paths_reach_one_entry():
    runs = runs_with("gpu_count=3 memory=64 model.n.cpu_count=2")     # gpu_count is an hparam of m: its axis
    m = next(r for r in runs if r.model == "m")
    n = next(r for r in runs if r.model == "n")
    assert (m.hparams["gpu_count"], m.settings.gpu_count, m.settings.memory) == (3, 3, 64)   # over model m's 4
    assert (n.settings.memory, n.settings.cpu_count, m.settings.cpu_count) == (64, 2, 5)
    assert "gpu_count" not in n.hparams and n.settings.gpu_count == 0
    prefixed = runs_with("prefix=try", only="model=m")
    assert [r.name for r in prefixed] == [r.name for r in grid.build_runs(cfg_of("prefix: try\n" + LAUNCH), "model=m")]
    assert prefixed[0].name.startswith("try-example-m-d-")


def test_delete_removes_an_hparam_where_meaningful():
    runs = runs_with("~bs model.m.command='echo <lr>'")
    assert all("bs" not in r.hparams for r in runs)
    assert runs[0].local_command == "echo 0.1"
    cfg = overrides.apply(cfg_of(), overrides.parse("~model.m.memory"))
    assert grid.build_runs(cfg, "model=m")[0].settings.memory == 32


@pytest.mark.parametrize("sets, words", [
    pytest.param("lrr=0.1", "set=: lrr: unknown key; did you mean 'lr'?", id="typo-hparam"),
    pytest.param("gpu_cont=1", "did you mean 'gpu_count'?", id="typo-setting"),
    pytest.param("model.m.memroy=8", "did you mean 'model.m.memory'?", id="typo-entry-setting"),
    pytest.param("model.mm.memory=8", "no model named 'mm'; did you mean 'm'?", id="typo-model"),
    pytest.param("model.n.hparam.zz=1", "model n has no hparam 'zz'", id="hparam-nowhere"),
    pytest.param("memory=8,16", "a setting takes one", id="setting-sweep"),
    pytest.param("memory=lots", "set=: memory: expected a number > 0, got a string", id="bad-setting-value"),
    pytest.param("~memory", "nothing to delete", id="delete-bare-setting"),
    pytest.param("lr=[[1]]", "set=: lr", id="nested-list-hparam"),
    pytest.param("lr=0.1,0.1", "expected distinct values", id="repeated-sweep-value"),
    pytest.param("lr={a:1}", "got a mapping", id="mapping-hparam"),
    pytest.param("model=m", "use only=", id="selection-key"),
    pytest.param("lr=loguniform(1e-5,1e-2)", "needs a search: section", id="distribution-without-search"),
    pytest.param("lr=loguniform(2,1)", "expected loguniform(low, high)", id="bad-distribution"),
    pytest.param("search.samples=0", "set=: search.samples: expected a whole number >= 1", id="bad-search"),
    pytest.param("results=", "set=: results: expected a folder (relative to the project root)", id="empty-folder"),
])
def test_bad_overrides_fail_before_anything_runs(sets, words):
    with pytest.raises(ConfigError) as info:
        runs_with(sets)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_key_set_by_a_group_member_names_the_group():
    with pytest.raises(ConfigError, match=r"set=: momentum: is set by the members of the hparam group opt: choose "
                                          r"members with opt=NAME"):
        runs_with("momentum=0.9", text="model: {n: {command: echo <opt>, hparam: {opt: {sgd: {momentum: 0.5}}}}}")


def test_distribution_and_search_from_set_alone():
    runs = runs_with("model.m.hparam.lr=uniform(0,1) search.samples=3 search.seed=7", only="model=m")
    assert len(runs) == 3 * 1 and all(0 <= r.hparams["lr"] <= 1 for r in runs)
    assert [r.hparams["_sample"] for r in runs] == [0, 1, 2]


def test_make_local_set_reaches_the_commands_and_unknown_key_exits_2(tmp_path):
    root = make_project(tmp_path, "model: {m: {command: 'echo lr=<lr> msg=<msg>', hparam: {lr: 0.1, msg: hi}}}\n")
    result = launch(root, "local", "--set", "lr=0.5,0.25 msg='a b'")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("lr=")] == \
        ["lr=0.5 msg=a b", "lr=0.25 msg=a b"]
    bad = launch(root, "local", "--set", "lrr=1")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: set=: lrr: unknown key; did you mean 'lr'?"
    assert "Running" not in bad.stdout


def test_dryrun_records_the_overrides_in_an_annotation_status_reads_back(tmp_path):
    import yaml

    from kube import status
    from kube.settings import Run
    root = make_project(tmp_path, "model: {m: {command: 'echo <lr>', hparam: {lr: 0.1}}}\n")
    text = "lr=0.5 model.m.env={A:'x: #y \"q\"'}"          # YAML indicators and quotes in the recorded text
    result = launch(root, "dryrun", "--set", text)
    assert result.returncode == 0, result.stderr
    job = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Job")
    assert job["metadata"]["annotations"][overrides.ANNOTATION] == text
    plain = launch(root, "dryrun")
    assert overrides.ANNOTATION not in plain.stdout
    job["status"] = {"active": 1}
    grid_cells, _ = status.cells([Run(0, job["metadata"]["name"], "m", "default", {}, {})], [job], [], [], {}, None)
    assert grid_cells[0].overrides == text


def test_make_passes_set_to_every_grid_target_literally(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT
    root = make_project(tmp_path, "model: {m: {command: 'echo lr=<lr> msg=<msg>', hparam: {lr: 0.1, msg: hi}}}\n")
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)

    def make(*args):
        return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=root,
                              capture_output=True, text=True, timeout=120)
    local = make("local", "set=lr=0.5,0.25 msg=\"it's a b\"")
    assert local.returncode == 0, local.stderr
    assert [line for line in local.stdout.splitlines() if line.startswith("lr=")] == \
        ["lr=0.5 msg=it's a b", "lr=0.25 msg=it's a b"]
    runs = make("runs", "set=lr=0.5,0.25")
    assert "lr=0.5" in runs.stdout and "lr=0.25" in runs.stdout and "2 combinations" in runs.stdout
    bad = make("runs", "set=lrr=1")
    assert bad.returncode == 2 and "error: set=: lrr: unknown key; did you mean 'lr'?" in bad.stderr
