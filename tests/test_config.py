"""Config loading: precedence, .env, and every bad input as one line with exit status 2 before anything runs."""
from __future__ import annotations

import pytest

from kube import config, grid
from tests.helpers import KUBE, launch, make_project

GOOD = """\
model:
  m:
    command: touch ran
dataset:
  d: {}
"""


def test_precedence_defaults_kube_launch_dataset_model(tmp_path):
    make_project(tmp_path, kube=KUBE + "memory: 16\ncpu_count: 2\ngpu_count: 1\nephermal_storage: 50\n", launch="""\
        cpu_count: 3
        gpu_count: 2
        model:
          m: {command: echo, gpu_count: 4}
        dataset:
          d: {gpu_count: 3, cpu_count: 7}
        """)
    cfg = config.load(tmp_path)
    s = grid.build_runs(cfg)[0].settings
    assert (s.memory, s.cpu_count, s.gpu_count, s.ephemeral_storage) == (16, 7, 4, 50)
    assert s.limit_ratio == 2.0 and s.ssh_port == 30622 and s.server_command == "sleep infinity"
    assert cfg.base_settings.gpu_count == 2 and cfg.base_settings.cpu_count == 3


def test_derived_defaults_image_and_pull_secret(tmp_path):
    make_project(tmp_path, GOOD, kube=KUBE + "gitlab_user: bob\n")
    s = config.load(tmp_path).base_settings
    assert s.image == "gitlab-registry.nrp-nautilus.io/bob/example:latest"
    assert s.image_pull_secrets == "example-read-registry"
    assert config.load(tmp_path).project.conda_env_name == "example"


def test_env_merges_across_levels(tmp_path):
    make_project(tmp_path, kube=KUBE + "env: {A: kube, B: kube}\n", launch="""\
        env: {B: launch, C: 1}
        model: {m: {command: echo, env: {D: model}}}
        dataset: {d: {}}
        """)
    assert dict(grid.build_runs(config.load(tmp_path))[0].settings.env) == {
        "A": "kube", "B": "launch", "C": "1", "D": "model"}


def test_dotenv_quotes_export_and_comments(tmp_path):
    make_project(tmp_path, GOOD, dotenv="""\
        # a comment
        export S3_BUCKET_NAME=example
        QUOTED="a value # not a comment"
        SINGLE='x y'
        """)
    assert dict(config.load(tmp_path).project.dotenv) == {
        "S3_BUCKET_NAME": "example", "QUOTED": "a value # not a comment", "SINGLE": "x y"}


def test_project_repr_never_shows_dotenv(tmp_path):
    make_project(tmp_path, GOOD, dotenv="AWS_SECRET_ACCESS_KEY=topsecret\n")
    assert "topsecret" not in repr(config.load(tmp_path))


BAD = [
    ("project-name-underscore", KUBE.replace("example", "my_proj"), GOOD,
     "config/kube.yaml: project_name: expected lowercase"),
    ("unknown-kube-key", KUBE + "gpu_cuont: 1\n", GOOD, "config/kube.yaml: gpu_cuont: unknown key; did you mean 'gpu_count'"),
    ("wrong-type", KUBE, GOOD.replace("touch ran", "touch ran\n    gpu_count: two"),
     "config/launch.yaml: model.m.gpu_count: expected a whole number >= 0, got a string"),
    ("mapping-hparam", KUBE, GOOD.replace("touch ran", "touch ran\n    hparam: {lr: {a: 1}}"),
     "config/launch.yaml: model.m.hparam.lr: expected a list or a scalar, got a mapping"),
    ("group-keys-differ", KUBE, GOOD.replace("touch ran", "touch ran\n    hparam: {t: {a: {x: 1}, b: {y: 1}}}"),
     "config/launch.yaml: model.m.hparam.t.b: expected the same keys as t.a"),
    ("run-missing-model", KUBE, GOOD + "run: {model: [nope]}\n", "config/launch.yaml: run.model: no model named 'nope'"),
    ("run-missing-dataset", KUBE, GOOD + "run: {dataset: dd}\n", "config/launch.yaml: run.dataset: no dataset named 'dd'"),
    ("override-project-key", KUBE, GOOD + "user: mallory\n", "config/launch.yaml: user: project-wide key"),
    ("both-gpu-lists", KUBE + "gpu_whitelist: [A10]\n", GOOD + "gpu_blacklist: [A100]\n",
     "gpu_blacklist: cannot be set together with gpu_whitelist"),
    ("both-host-lists", KUBE, GOOD + "hostname_whitelist: [a]\nhostname_blacklist: [b]\n",
     "hostname_blacklist: cannot be set together with hostname_whitelist"),
    ("unknown-launch-key", KUBE, GOOD + "modle: {}\n", "config/launch.yaml: modle: unknown key; did you mean 'model'"),
    ("unknown-model-key", KUBE, GOOD.replace("touch ran", "touch ran\n    comand: x"),
     "config/launch.yaml: model.m.comand: unknown key; did you mean 'command'"),
    ("missing-command", KUBE, "model: {m: {}}\n", "config/launch.yaml: model.m.command: expected a non-empty command"),
    ("unresolved-placeholder", KUBE, GOOD.replace("touch ran", "touch ran <missing>"),
     "config/launch.yaml: model.m.command: unresolved placeholder <missing>"),
    ("duplicate-key", KUBE, GOOD + "model: {}\n", "config/launch.yaml: invalid YAML: line 6: duplicate key 'model'"),
    ("bad-yaml", KUBE, "model: [\n", "config/launch.yaml: invalid YAML"),
    ("not-a-mapping", KUBE, "- a\n", "config/launch.yaml: expected a mapping at the top level, got a list"),
    ("run-hparam-unknown-value", KUBE, GOOD.replace("touch ran", "touch ran <lr>\n    hparam: {lr: [1, 2]}")
     + "run: {hparam: {lr: 3}}\n", "config/launch.yaml: run.hparam.lr: expected values among 1, 2, got 3"),
    ("tolerations-not-list", KUBE + "tolerations: gpu\n", GOOD, "config/kube.yaml: tolerations: expected a list of strings"),
]


@pytest.mark.parametrize("kube, launch_text, message", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_runs(tmp_path, kube, launch_text, message):
    make_project(tmp_path, launch_text, kube=kube)
    result = launch(tmp_path, "local")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ran").exists()
    assert result.stdout == ""


def test_missing_config_file_is_named(tmp_path):
    result = launch(tmp_path, "local")
    assert result.returncode == 2
    assert "config/kube.yaml: file not found" in result.stderr


def test_print_config_shows_merged_settings_and_hides_secrets(tmp_path):
    make_project(tmp_path, GOOD.replace("touch ran", "touch ran\n    memory: 8"), dotenv="AWS_SECRET_ACCESS_KEY=s3cr3t\n")
    result = launch(tmp_path, "print-config")
    assert result.returncode == 0, result.stderr
    assert "memory: 8" in result.stdout and "namespace: lab" in result.stdout
    assert "AWS_SECRET_ACCESS_KEY: \"<redacted>\"" in result.stdout
    assert "s3cr3t" not in result.stdout


def test_local_targets_need_no_cluster_identity_but_cluster_ones_do(tmp_path):
    make_project(tmp_path, GOOD, kube="project_name: example\n")
    result = launch(tmp_path, "local")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ran").exists()
    for command, key in (("dryrun", "user"), ("job", "user"), ("status", "user")):
        result = launch(tmp_path, command)
        assert result.returncode == 2 and result.stderr.startswith(f"error: config/kube.yaml: {key}: required for")
        assert len(result.stderr.splitlines()) == 1
    (tmp_path / "config" / "kube.yaml").write_text("project_name: example\nuser: alice\n")
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 2 and "namespace: required for `make dryrun`" in result.stderr
