"""s3utils against hostile input and sick servers: real SeaweedFS and moto, real sockets, both backends.

Classes (docs/s3-safety.md states the policies): 1. no call waits forever; 2. uploads take only what belongs to the
project, downloads never write outside it; 3. per-file conflicts are per-file errors; 4. keys are printed escaped.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import s3utils
from tests.helpers import ROOT
from tests.s3_fixtures import S3, SickProxy, dead_url, make_s3, run_s3utils as run, tree

pytestmark = pytest.mark.usefixtures("elsewhere")      # run from an empty folder: no `.env` of the checkout is read
FAST = {"S3_CONNECT_TIMEOUT": "0.5", "S3_READ_TIMEOUT": "0.5", "S3_MAX_ATTEMPTS": "2"}




def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "s3utils.py"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=Path.cwd())


def leftovers(root: Path) -> list[str]:
    """Temporary files of either backend (ours end in .s3part; s5cmd's own add digits to the name)."""
    return [p.name for p in root.rglob("*") if ".s3part" in p.name]


def server(request, name: str, monkeypatch) -> S3:
    return make_s3(request.getfixturevalue(f"{name}_url"), monkeypatch)


# ---------------------------------------------------------------- 1. no call waits forever

BLACKHOLE_CASES = {
    "list": ("boto3", ["list", "data/"]),
    "download-boto3": ("boto3", ["download", "data/"]),
    "download-s5cmd": ("s5cmd", ["download", "data/"]),
    "upload-overwrite-boto3": ("boto3", ["upload", "data/", "--overwrite"]),
    "upload-overwrite-s5cmd": ("s5cmd", ["upload", "data/", "--overwrite"]),
    "remove": ("boto3", ["remove", "data/", "--yes"]),
}


@pytest.mark.parametrize("case", BLACKHOLE_CASES, ids=list(BLACKHOLE_CASES))
def test_blackhole_endpoint_fails_fast_with_one_line(case, blackhole, tmp_path):
    backend, argv = BLACKHOLE_CASES[case]
    project = tree(tmp_path / "p", {"data/a.txt": b"a", "data/b.txt": b"b"})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_"))}, **FAST,
           "S3_BUCKET_NAME": "b", "S3_ENDPOINT_URL": blackhole.url, "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s", "S3UTILS_BACKEND": backend}
    start = time.monotonic()
    result = cli([*argv, "--local-path", str(project)], env)
    elapsed = time.monotonic() - start
    lines = result.stderr.splitlines()
    assert elapsed < 15, (elapsed, result.stderr)
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert blackhole.url in lines[0] and "within 0.5 s (S3_READ_TIMEOUT)" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout and not leftovers(project)


def test_refused_connection_is_one_line(tmp_path):
    url = dead_url()
    env = {**os.environ, **FAST, "S3_BUCKET_NAME": "b", "S3_ENDPOINT_URL": url,
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    result = cli(["download", "data/", "--local-path", str(tmp_path)], env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"{url}: cannot connect" in result.stderr and "S3_MAX_ATTEMPTS" in result.stderr


def sick_endpoint(s3: S3, rule, backend: str, monkeypatch) -> SickProxy:
    """A SickProxy in front of `s3`, s3utils pointed at it with short timeouts (1 s of silence) and `backend`."""
    proxy = SickProxy(s3.url, rule)
    for var, value in {**FAST, "S3_READ_TIMEOUT": "1", "S3_ENDPOINT_URL": proxy.url,
                       "S3UTILS_BACKEND": backend}.items():
        monkeypatch.setenv(var, value)
    return proxy


def is_get_object(method: str, target: str) -> bool:
    return method == "GET" and "?" not in target


SICK_DOWNLOADS = {      # server, backend, proxy action on GET object, object size
    "seaweedfs-boto3-hang": ("seaweedfs", "boto3", "hang", 1000),
    "moto-s5cmd-hang": ("moto", "s5cmd", "hang", 1000),
    "moto-boto3-stall-mid-body": ("moto", "boto3", "stall", 1 << 20),
    "seaweedfs-s5cmd-stall-mid-body": ("seaweedfs", "s5cmd", "stall", 1 << 20),
    "seaweedfs-boto3-stall-multipart": ("seaweedfs", "boto3", "stall", 9 << 20),
}


@pytest.mark.parametrize("case", SICK_DOWNLOADS, ids=list(SICK_DOWNLOADS))
def test_server_that_stops_answering_mid_download(case, request, monkeypatch, capsys, tmp_path):
    name, backend, action, size = SICK_DOWNLOADS[case]
    s3 = server(request, name, monkeypatch)
    s3.put("data/big.bin", os.urandom(size))
    proxy = sick_endpoint(s3, lambda m, t: action if is_get_object(m, t) else "pass", backend, monkeypatch)
    dst = tree(tmp_path / "dst", {"data/big.bin": b"the previous complete copy"})
    start = time.monotonic()
    status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    proxy.close()
    assert time.monotonic() - start < 20
    assert status == 1 and err.count("\n") == 1, err
    assert f"S3 endpoint {proxy.url} did not answer within 1 s (S3_READ_TIMEOUT)" in err
    assert (dst / "data/big.bin").read_bytes() == b"the previous complete copy"
    assert sorted(p.name for p in (dst / "data").iterdir()) == ["big.bin"]          # no temp file of either backend
    assert any(a == action for _m, _t, a in proxy.log)                               # the sickness really happened


BAD_SETTINGS = {
    "read-not-a-number": ("S3_READ_TIMEOUT", "abc", "a number of seconds above 0"),
    "connect-zero": ("S3_CONNECT_TIMEOUT", "0", "a number of seconds above 0"),
    "read-nan": ("S3_READ_TIMEOUT", "nan", "a number of seconds above 0"),
    "attempts-zero": ("S3_MAX_ATTEMPTS", "0", "a whole number of attempts, 1 or more"),
    "attempts-fraction": ("S3_MAX_ATTEMPTS", "2.5", "a whole number of attempts, 1 or more"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_bad_timeout_settings_are_bad_input(case, seaweed, monkeypatch, capsys, tmp_path):
    var, value, expected = BAD_SETTINGS[case]
    monkeypatch.setenv(var, value)
    project = tree(tmp_path / "p", {"data/a.txt": b"a"})
    status, out, err = run(capsys, "upload", "data/", "--local-path", project)
    assert status == 2 and err == f"error: {var}: expected {expected}, got {value!r}\n" and out == ""
    assert seaweed.keys() == {}


# ---------------------------------------------------------------- 2. only what belongs to the project

def hostile_project(tmp: Path) -> Path:
    """A project with links out of it, special files, excluded names, and a few ordinary files."""
    outside = tree(tmp / "outside", {"secret.env": b"TOKEN=outside", "dir/loot.txt": b"loot"})
    p = tree(tmp / "p", {"data/ok.txt": b"ok", "data/build/x.txt": b"nested build is data", "other/o.txt": b"o",
                         ".env": b"TOKEN=1", ".git/config": b"[core]", "build/jobs/job.yaml": b"kind: Job",
                         "data/.env": b"TOKEN=2", "data/.git/HEAD": b"ref", "data/.ok.txt.abc123.s3part": b"partial"})
    links = {"data/passwd": "/etc/passwd", "data/up.env": "../../outside/secret.env", "data/inside": "ok.txt",
             "data/broken": "nowhere", "data/loot": str(outside / "dir"), "data/other": "../other"}
    for link, target in links.items():
        os.symlink(target, p / link)
    os.mkfifo(p / "data/fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(p / "data/sock"))
    sock.close()
    try:
        os.mknod(p / "data/null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        os.mkfifo(p / "data/null")             # no right to make devices: another special file in its place
    return p


UPLOADED = {"data/ok.txt": b"ok", "data/inside": b"ok", "data/build/x.txt": b"nested build is data"}
SKIPPED = ["data/broken: broken symbolic link", "data/fifo: a FIFO, not a regular file",
           "data/loot: symbolic link to {tmp}/outside/dir, outside the project root",
           "data/other: symbolic link to a folder (not followed)",
           "data/passwd: symbolic link to /etc/passwd, outside the project root",
           "data/sock: a socket, not a regular file",
           "data/up.env: symbolic link to {tmp}/outside/secret.env, outside the project root"]


@pytest.mark.parametrize("selection", ["*", "data/"])
def test_upload_takes_only_project_files(selection, s3, backend, capsys, tmp_path):
    project = hostile_project(tmp_path)
    status, out, err = run(capsys, "upload", selection, "--local-path", project)
    expected = {**UPLOADED, **({"other/o.txt": b"o"} if selection == "*" else {})}
    assert status == 0, err
    assert s3.keys() == expected                                   # same keys and bytes through both backends
    assert sorted(out.splitlines()) == sorted(f"Uploaded {k} to {k}" for k in expected)
    for line in SKIPPED:
        assert f"warning: skipped {line.format(tmp=tmp_path)}" in err
    null_kind = "device" if stat.S_ISCHR(os.lstat(project / "data/null").st_mode) else "FIFO"
    assert f"data/null: a {null_kind}, not a regular file" in err and "Traceback" not in err


NAMED = {                 # selection -> keys it uploads (excluded names only when spelled out)
    ".env": [".env"],
    ".git/config": [".git/config"],
    ".git/": [".git/config"],
    "build/": ["build/jobs/job.yaml"],
    "data/.env": ["data/.env"],
    "data/*env": [],
    ".e*": [],
    "*.yaml": [],
}


@pytest.mark.parametrize("selection", NAMED, ids=list(NAMED))
def test_excluded_names_only_when_named_exactly(selection, seaweed, capsys, tmp_path):
    project = hostile_project(tmp_path)
    status, _out, err = run(capsys, "upload", selection, "--local-path", project)
    assert sorted(seaweed.keys()) == NAMED[selection]
    assert status == (0 if NAMED[selection] else 2), err
    if not NAMED[selection]:
        assert f"error: file: no local file matches {selection!r}" in err


@pytest.mark.parametrize("root", ["./", ".", ""])
def test_the_project_root_itself_is_not_a_selection(root, seaweed, capsys, tmp_path):
    project = hostile_project(tmp_path)
    status, out, err = run(capsys, "upload", root, "--local-path", project)
    assert status == 2 and out == "" and seaweed.keys() == {}
    assert err == "error: file: expected a path relative to the project root (e.g. data/), got an empty one\n"


@pytest.mark.parametrize("named", ["data/passwd", "data/up.env", "data/loot/", "data/loot/loot.txt", "data/fifo"])
def test_named_link_out_or_special_file_uploads_nothing(named, seaweed, capsys, tmp_path):
    project = hostile_project(tmp_path)
    status, _out, err = run(capsys, "upload", named, "--local-path", project)
    assert status == 2 and "warning: skipped data/" in err and "error: file: no local file matches" in err
    assert seaweed.keys() == {}


def test_download_excluded_keys_only_when_named(seaweed, backend, capsys, tmp_path):
    for key in (".env", ".git/hooks/post-checkout", "build/run.sh", "data/.env", "data/ok.txt"):
        seaweed.put(key, b"from the bucket")
    dst = tmp_path / "dst"
    status, out, _err = run(capsys, "download", "*", "--local-path", dst)
    assert status == 0 and sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == [
        "data/ok.txt"]
    status, out, _err = run(capsys, "download", ".env", "--local-path", dst)
    assert status == 0 and (dst / ".env").read_bytes() == b"from the bucket"


LINKED_DOWNLOADS = {      # local links, then which key fails and which file must stay untouched
    "file-link-out": ({"data/x": "{out}/victim.txt"}, ["data/x"], "is a symbolic link"),
    "file-link-in": ({"data/x": "ok.txt"}, ["data/x"], "is a symbolic link"),
    "folder-link-out": ({"data/sub": "{out}"}, ["data/sub/y"], "outside the local root"),
}


@pytest.mark.parametrize("case", LINKED_DOWNLOADS, ids=list(LINKED_DOWNLOADS))
def test_download_never_writes_through_links(case, seaweed, backend, capsys, tmp_path):
    links, failing, reason = LINKED_DOWNLOADS[case]
    outside = tree(tmp_path / "outside", {"victim.txt": b"untouched"})
    dst = tree(tmp_path / "dst", {"data/ok.txt": b"local ok"})
    for link, target in links.items():
        os.symlink(target.format(out=outside), dst / link)
    for key in ("data/x", "data/sub/y", "data/z.txt"):
        seaweed.put(key, b"remote " + key.encode())
    status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    assert status == 1 and [line.split(": ")[1] for line in err.splitlines() if line.startswith("error")] == failing
    assert reason in err
    assert (dst / "data/z.txt").read_bytes() == b"remote data/z.txt"                 # the others complete
    assert sorted(p.name for p in outside.rglob("*")) == ["victim.txt"]
    assert (outside / "victim.txt").read_bytes() == b"untouched" and (dst / "data/ok.txt").read_bytes() == b"local ok"
    assert all(os.path.islink(dst / link) for link in links) and not leftovers(tmp_path)


def test_download_through_a_folder_link_inside_the_root(seaweed, backend, capsys, tmp_path):
    dst = tree(tmp_path / "dst", {"real/keep.txt": b"keep"})
    os.symlink("real", dst / "data")
    seaweed.put("data/new.txt", b"new")
    status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    assert status == 0, err
    assert (dst / "real/new.txt").read_bytes() == b"new" and os.path.islink(dst / "data")


# ---------------------------------------------------------------- 3. per-file conflicts

CONFLICTS = {      # server, local files (None: a folder, "fifo", or bytes), keys in the bucket, the key that fails
    "file-where-folder-needed": ("seaweedfs", {"data/a": b"local"}, ["data/a/b"], "data/a/b", "local data/a is a file: the key needs a folder there"),
    "folder-where-file-goes": ("seaweedfs", {"data/a/keep": b"k"}, ["data/a"], "data/a", "local data/a is a folder: the key needs a file there"),
    "bucket-has-file-and-folder": ("moto", {}, ["data/a", "data/a/b"], "data/a", "cannot share the name"),
    "marker-where-file-stands": ("moto", {"data/m": b"local"}, ["data/m/"], "data/m/", "local data/m is a file: the key needs a folder there"),
    "fifo-at-target": ("seaweedfs", {"data/f": "fifo"}, ["data/f"], "data/f", "local data/f is a FIFO: the key needs a file there"),
    "empty-path-component": ("moto", {}, ["data//x"], "data//x", "an empty or '.' path component"),
    "dot-path-component": ("moto", {}, ["data/./x"], "data/./x", "an empty or '.' path component"),
}


@pytest.mark.parametrize("case", CONFLICTS, ids=list(CONFLICTS))
def test_download_conflicts_are_per_file_errors(case, request, backend, monkeypatch, capsys, tmp_path):
    name, local, keys, failing, reason = CONFLICTS[case]
    s3 = server(request, name, monkeypatch)
    for key in [*keys, "data/ok.txt"]:
        s3.put(key, b"" if key.endswith("/") else b"remote")
    dst = tmp_path / "dst"
    for rel, body in local.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(dst / rel) if body == "fifo" else (dst / rel).write_bytes(body)
    status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 1 and len(errors) == 1 and errors[0].startswith(f"error: {failing}: "), err
    assert reason in errors[0] and err.endswith("failed\n")
    assert (dst / "data/ok.txt").read_bytes() == b"remote" and not leftovers(dst)
    for rel, body in local.items():
        assert stat.S_ISFIFO(os.lstat(dst / rel).st_mode) if body == "fifo" else (dst / rel).read_bytes() == body


@pytest.mark.parametrize("name", ["seaweedfs", "moto"])
def test_folder_markers_become_folders(name, request, backend, monkeypatch, capsys, tmp_path):
    s3 = server(request, name, monkeypatch)
    for key, body in (("data/", b""), ("data/empty/", b""), ("data/sub/", b""), ("data/sub/x.txt", b"x")):
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    dst = tmp_path / "dst"
    status, out, err = run(capsys, "download", "data/", "--local-path", dst)
    assert status == 0 and err.endswith("1 downloaded, 0 unchanged, 0 failed\n"), err
    assert (dst / "data/sub/x.txt").read_bytes() == b"x"
    assert (dst / "data/empty").is_dir()


ODD_NAMES = ["a*b.txt", "q?.txt", "[x].txt", "sp ace.txt", 'dq"x.txt', "sq'x.txt", "dollar$HOME.txt",
             "tick`x`.txt", "ünï €.txt", "-dash.txt"]
QUIRKS = {"seaweedfs": ["new\nline.txt"],       # SeaweedFS turns a backslash into a folder separator
          "moto": ["back\\slash.txt"]}         # moto answers 404 to a key with a newline


@pytest.mark.parametrize("name", ["seaweedfs", "moto"])
def test_names_with_wildcards_and_quotes_round_trip(name, request, backend, monkeypatch, capsys, tmp_path):
    s3 = server(request, name, monkeypatch)
    names = ODD_NAMES + QUIRKS[name]
    src = tree(tmp_path / "src", {f"data/{n}": n.encode() for n in names})
    (src / "data/a*b-not-me.txt").write_bytes(b"must not be confused with a*b.txt")
    status, _out, err = run(capsys, "upload", "data/", "--local-path", src)
    assert status == 0, err
    keys = s3.keys()
    assert all(keys[f"data/{n}"] == n.encode() for n in names) and len(keys) == len(names) + 1
    dst = tmp_path / "dst"
    status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    assert status == 0, err
    assert {p.name: p.read_bytes() for p in (dst / "data").iterdir()} == {
        p.name: p.read_bytes() for p in (src / "data").iterdir()}


def test_download_modes_follow_umask_or_the_replaced_file(seaweed, backend, capsys, tmp_path):
    for key in ("data/new.txt", "data/private.txt", "data/script.sh"):
        seaweed.put(key, b"remote")
    dst = tree(tmp_path / "dst", {"data/private.txt": b"old", "data/script.sh": b"old"})
    os.chmod(dst / "data/private.txt", 0o600)
    os.chmod(dst / "data/script.sh", 0o750)
    old = os.umask(0o027)
    try:
        status, _out, err = run(capsys, "download", "data/", "--local-path", dst)
    finally:
        os.umask(old)
    assert status == 0, err
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (dst / "data").iterdir()}
    assert modes == {"new.txt": "0o640", "private.txt": "0o600", "script.sh": "0o750"}
    assert all(p.read_bytes() == b"remote" for p in (dst / "data").iterdir())


MULTIPART_FAILURES = {    # server, backend, what the proxy does to part 2
    "seaweedfs-boto3-500": ("seaweedfs", "boto3", "500"),
    "moto-s5cmd-500": ("moto", "s5cmd", "500"),
    "moto-boto3-hang": ("moto", "boto3", "hang"),
    "seaweedfs-s5cmd-hang": ("seaweedfs", "s5cmd", "hang"),
}


@pytest.mark.parametrize("case", MULTIPART_FAILURES, ids=list(MULTIPART_FAILURES))
def test_failed_multipart_upload_is_aborted(case, request, monkeypatch, capsys, tmp_path):
    name, backend, action = MULTIPART_FAILURES[case]
    s3 = server(request, name, monkeypatch)
    proxy = sick_endpoint(s3, lambda m, t: action if m == "PUT" and "partNumber=2&" in t + "&" else "pass", backend,
                          monkeypatch)
    src = tree(tmp_path / "src", {"data/big.bin": os.urandom(20 << 20), "data/small.txt": b"small"})
    status, _out, err = run(capsys, "upload", "data/", "--local-path", src, "--overwrite")
    proxy.close()
    assert status == 1 and "Traceback" not in err
    if action == "500":      # a per-file failure: the other file completes
        assert err.splitlines()[0].startswith("error: data/big.bin: ") and s3.keys() == {"data/small.txt": b"small"}
    else:                    # a hung endpoint ends the operation in one line
        assert err.count("\n") == 1 and "did not answer within 1 s (S3_READ_TIMEOUT)" in err
    assert any(a == action for _m, _t, a in proxy.log)
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert "data/big.bin" not in s3.keys()


# ---------------------------------------------------------------- 4. keys printed escaped

HOSTILE = ["data/\x1b[2Jwiped.txt", "data/cr\rfake.txt", "data/bel\x07.txt", "data/\u202etxt.exe"]
SHOWN = ["data/\\x1b[2Jwiped.txt", "data/cr\\rfake.txt", "data/bel\\x07.txt", "data/\\u202etxt.exe"]


def output_of(path: str, s3: S3, capsys, tmp_path: Path) -> tuple[str, list[str]]:
    """All output of one s3utils output path, and the keys it must show (escaped)."""
    local = tmp_path / "local"
    if path == "upload":
        tree(local, {k: b"local" for k in HOSTILE})
        return "".join(run(capsys, "upload", "data/", "--local-path", local)[1:]), SHOWN
    for key in HOSTILE:
        s3.put(key, b"remote")
    if path in ("list", "find"):
        return "".join(run(capsys, path, "data/" if path == "list" else "data/*")[1:]), SHOWN
    if path == "download":
        return "".join(run(capsys, "download", "data/", "--local-path", local)[1:]), SHOWN
    if path == "error":             # a local folder where the hostile file goes: its error line
        (local / HOSTILE[0]).mkdir(parents=True)
        status, out, err = run(capsys, "download", "data/", "--local-path", local)
        assert status == 1
        return out + err, [f"error: {SHOWN[0]}: local {SHOWN[0]} is a folder"]
    if path == "warning":           # a local broken link with a hostile name
        local.mkdir()
        (local / "data").mkdir()
        os.symlink("nowhere", local / HOSTILE[1])
        (local / "data/ok.txt").write_bytes(b"ok")
        return "".join(run(capsys, "upload", "data/", "--local-path", local)[1:]), [
            f"warning: skipped {SHOWN[1]}: broken symbolic link"]
    if path == "interactive":
        tree(local, {HOSTILE[2]: b"local"})
        return "".join(run(capsys, "interactive", "data/*", "--local-path", local, stdin="exit\n")[1:]), SHOWN
    assert path == "remove"
    status, out, err = run(capsys, "remove", "data/", stdin="y\n")
    assert status == 0 and s3.keys() == {}
    return out + err, [f"Removed {k}" for k in SHOWN]


@pytest.mark.parametrize("path", ["list", "find", "download", "upload", "error", "warning", "interactive", "remove"])
def test_keys_are_escaped_in_every_output(path, moto_url, backend, monkeypatch, capsys, tmp_path):
    s3 = make_s3(moto_url, monkeypatch)
    text, shown = output_of(path, s3, capsys, tmp_path)
    assert not any(c in text for c in "\x1b\r\x07\u202e"), repr(text)
    for expected in shown:
        assert expected in text, (expected, text)


def test_clean_keeps_printable_text():
    assert s3utils.clean("data/ünï €/a b.txt") == "data/ünï €/a b.txt"
    assert s3utils.clean("a\x1b[2J\r\n\t\x07\x7f\x9b\u200f") == "a\\x1b[2J\\r\\n\\t\\x07\\x7f\\x9b\\u200f"


def test_remove_names_one_key_even_with_cr_in_it(seaweed, capsys):
    """A CR in XML becomes LF: a batch delete of `a\\rb` would remove `a\\nb`. Each such key goes by URL."""
    for key in ("data/cr\rx", "data/cr\nx", "data/other"):
        seaweed.put(key, b"x")
    status, out, _err = run(capsys, "remove", "data/cr\rx", "--yes")
    assert status == 0 and out.splitlines() == [f"Will remove from s3://{seaweed.bucket}:", "  data/cr\\rx",
                                                "Removed data/cr\\rx"]
    assert sorted(seaweed.keys()) == ["data/cr\nx", "data/other"]


def test_named_folder_link_inside_the_root_is_walked(seaweed, capsys, tmp_path):
    project = tree(tmp_path / "p", {"real/a.txt": b"a", "real/sub/b.txt": b"b"})
    os.symlink("real", project / "data")
    status, out, err = run(capsys, "upload", "data/", "--local-path", project)
    assert status == 0 and err == "2 uploaded, 0 unchanged, 0 failed\n"
    assert seaweed.keys() == {"data/a.txt": b"a", "data/sub/b.txt": b"b"}
