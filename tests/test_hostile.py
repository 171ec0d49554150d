"""Hostile input and sick servers: each class of failure tried with several members, against the test servers."""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
import yaml

from kube import config, files, grid, operations, render
from tests.helpers import KUBE, launch, make_project
from tests.kube_fixtures import write_kubeconfig
from tests.manifest_checks import validate_manifest
from tests.s3_fixtures import pipe, serve
from tests.helpers import job_names, run

OTHER = {"user": "bob", "project": "example"}


# --- 1. ownership before anything is done by name ----------------------------------------------------------------

def _job(name: str, labels: dict, state: str = "Complete") -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "lab", "labels": labels},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}}},
            "status": {"conditions": [{"type": state, "status": "True"}]}}


def test_smoke_refuses_to_replace_another_users_job(project, kube):
    cfg = config.load(project)
    smoke_name = grid.build_runs(cfg, overrides={"_smoke": True})[0].name
    kube.seed(_job(smoke_name, OTHER))
    code, out, err = run(project, "smoke", "--timeout", "1", "--poll", "0.1")
    assert code == 1 and f"Job '{smoke_name}' belongs to user 'bob' of project 'example'" in err
    assert [j["metadata"]["labels"]["user"] for j in kube.objects("jobs")] == ["bob"]
    assert not [r for r in kube.requests() if r["method"] in ("DELETE", "POST")]


def test_logs_refuse_another_users_job(project, kube):
    name = job_names(project)[0]
    kube.seed(_job(name, OTHER))
    code, _, err = run(project, "logs", "--name", name)
    assert code == 1 and "belongs to user 'bob'" in err


def test_a_configmap_of_the_expected_name_made_by_someone_else_is_not_trusted(project, kube):
    (project / "config" / "launch.yaml").write_text("file: [data/1.txt]\n" +
                                                    (project / "config" / "launch.yaml").read_text())
    cm = render.files_configmap(config.load(project).project, files.read(config.load(project).project, ["data/1.txt"]))
    kube.seed({**cm, "metadata": {**cm["metadata"], "labels": OTHER}})
    code, out, err = run(project, "job")
    assert code == 1 and f"ConfigMap '{cm['metadata']['name']}' belongs to user 'bob'" in err
    assert kube.objects("jobs") == []


def test_a_job_name_taken_by_another_user_fails_that_cell_only(project, kube):
    names = job_names(project)
    kube.seed(_job(names[0], OTHER))
    code, out, err = run(project, "job")
    assert code == 1 and "4 jobs: 3 created, 1 failed" in out
    assert f"Job '{names[0]}' belongs to user 'bob'" in err


def test_two_users_of_one_project_never_share_a_name(tmp_path):
    launch_text = "model: {m: {command: 'echo <a>', hparam: {a: [1, 2]}}}\n"
    alice = [r.name for r in grid.build_runs(config.load(make_project(tmp_path / "a", launch_text)))]
    bob = [r.name for r in grid.build_runs(config.load(make_project(tmp_path / "b", launch_text,
                                                                     kube=KUBE.replace("alice", "bob"))))]
    assert not set(alice) & set(bob)


# --- 2. no call waits forever ----------------------------------------------------------------------------------

@pytest.fixture
def blackhole():
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("command", ["status", "job", "delete"])
def test_a_silent_api_server_fails_in_bounded_time_with_one_line(project, tmp_path, monkeypatch, blackhole, command):
    kf = project / "config" / "kube.yaml"
    kf.write_text(kf.read_text().replace("api_retry_seconds: 3", "api_timeout: 0.5\napi_retry_seconds: 1"))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "hole", blackhole)))
    start = time.monotonic()
    code, out, err = run(project, command, *(["--yes"] if command == "delete" else []))
    elapsed = time.monotonic() - start
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and elapsed < 8, (elapsed, err)
    assert len(errors) == 1 and blackhole in errors[0] and "no answer within 0.5 s (api_timeout)" in errors[0]


class DroppingProxy:
    """Forwards TCP to a server, but closes the first `drops` connections at once (a proxy killed mid-submit)."""

    def __init__(self, target: str, drops: int) -> None:
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target, self.drops = (host, int(port)), drops
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        serve(self.server, self._handle)

    def _handle(self, conn: socket.socket) -> None:
        if self.drops > 0:
            self.drops -= 1
            conn.close()
            return
        upstream = socket.create_connection(self.target)
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)


def test_dropped_connections_during_a_submit_are_retried(project, kube, tmp_path, monkeypatch):
    proxy = DroppingProxy(kube.url, drops=3)
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "proxy", proxy.url)))
    code, out, err = run(project, "job")
    assert code == 0, err
    assert "4 jobs: 4 created, 0 failed" in out and len(kube.objects("jobs")) == 4
    proxy.server.close()


# --- 5, 6, 7. secrets, quoting, YAML the user did not mean -------------------------------------------------------

GOOD = "model: {m: {command: 'touch ran'}}\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")) + GOOD

BAD = {
    "alias-bomb": (KUBE, BOMB, "values once aliases are expanded"),
    "run-hparam-mapping": (KUBE, GOOD.replace("'touch ran'", "'touch ran <a>', hparam: {a: [1]}") +
                           "run: {hparam: {a: {x: 1}}}\n", "run.hparam.a: expected a value or a list of values"),
    "smoke-list": (KUBE, GOOD + "smoke: {a: [1, 2]}\n", "smoke.a: expected a value, got a list"),
    "memory-inf": (KUBE + "memory: .inf\n", GOOD, "memory: expected a number > 0, got inf"),
    "cpu-nan": (KUBE, GOOD + "cpu_count: .nan\n", "cpu_count: expected a number > 0, got nan"),
    "hparam-nan": (KUBE, GOOD.replace("'touch ran'", "'touch ran <a>', hparam: {a: [.nan]}"),
                   "model.m.hparam.a[0]: expected a finite number"),
    "env-name": (KUBE + "env: {'BAD NAME': x}\n", GOOD, "env.BAD NAME: expected an environment variable name"),
    "file-dotenv": (KUBE, "file: [.env]\n" + GOOD, ".env holds the project's secrets"),
    "file-dotenv-dotted": (KUBE, "file: [config/../.env]\n" + GOOD, ".env holds the project's secrets"),
    "file-folder-with-dotenv": (KUBE, "file: [.]\n" + GOOD, ".env holds the project's secrets"),
    "volume-names-collide": (KUBE + "volumes: {my_pvc: /a, my-pvc: /b}\n", GOOD, "collides with"),
    "startup-unquotable": (KUBE, GOOD.replace("'touch ran'", "'touch ran <a>', hparam: {a: ['x']}, "
                                              "startup_script: 'echo `<a>`'"), "cannot be quoted safely"),
}


@pytest.mark.parametrize("kube_text, launch_text, message", [pytest.param(*c, id=k) for k, c in BAD.items()])
def test_hostile_configs_are_one_line_exit_2_and_nothing_happens(tmp_path, kube_text, launch_text, message):
    make_project(tmp_path, launch_text, kube=kube_text, dotenv="AWS_SECRET_ACCESS_KEY=hush\n")
    for command in ("dryrun",) if "file: [.]" in launch_text else ("local", "dryrun"):
        start = time.monotonic()
        result = launch(tmp_path, command)
        assert time.monotonic() - start < 10
        assert result.returncode == 2, (command, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stdout == "" and "hush" not in result.stderr
        assert not (tmp_path / "ran").exists() and not (tmp_path / "build").exists()


def test_merge_keys_and_anchors_work(tmp_path):
    make_project(tmp_path, """\
        common: &common {gpu_count: 2, memory: 8}
        model:
          m:
            <<: *common
            memory: 4
            command: echo hi
        """.replace("common: &common", "env: &common"), kube=KUBE)
    text = (tmp_path / "config" / "launch.yaml").read_text().replace("env: &common {gpu_count: 2, memory: 8}",
                                                                     "x-defaults: &common {gpu_count: 2, memory: 8}")
    data = config.parse_yaml(text, config.LAUNCH_FILE)
    data.pop("x-defaults")
    settings = grid.build_runs(config.from_mappings(yaml.safe_load(KUBE), data))[0].settings
    assert (settings.gpu_count, settings.memory) == (2, 4)


def test_emoji_and_odd_characters_render_valid_manifests(tmp_path):
    make_project(tmp_path, """\
        env: {GREETING: "héllo 😀 \\u2028 \\x85 tab\\there"}
        model: {m: {command: "echo <msg>", hparam: {msg: ["😀 ünïcode", "a: b # c", "-x", "yes"]}}}
        """)
    result = launch(tmp_path, "dryrun")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(docs) == 4
    for doc in docs:
        validate_manifest(doc)
        env = {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["GREETING"] == "héllo 😀 \u2028 \x85 tab\there"
    assert "echo '😀 ünïcode'" in docs[0]["spec"]["template"]["spec"]["containers"][0]["command"][2]


def test_startup_script_placeholders_are_quoted_like_commands(tmp_path):
    make_project(tmp_path, """\
        model:
          m:
            command: echo done
            startup_script: echo <x>
            hparam: {x: ['a; touch pwned']}
        """)
    script = operations.render_job(grid.build_runs(config.load(tmp_path))[0]).manifest[
        "spec"]["template"]["spec"]["containers"][0]["command"][2]
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.splitlines() == ["a; touch pwned", "done"]
    assert not (tmp_path / "pwned").exists()
