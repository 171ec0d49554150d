"""s3utils against real S3 servers (SeaweedFS and moto) through both backends (boto3 and the s5cmd binary)."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import s3utils
from tests.helpers import ROOT
from tests.s3_fixtures import ACCESS_KEY, SECRET_KEY, dead_url, make_s3, start_seaweedfs, tree

pytestmark = pytest.mark.usefixtures("elsewhere")      # run from an empty folder: no `.env` of the checkout is read


def lines(result_out: io.StringIO) -> list[str]:
    return sorted(result_out.getvalue().splitlines())


def test_upload_download_anchored_skip_overwrite(s3, backend, tmp_path):
    src = tree(tmp_path / "src", {"data/1.txt": b"1,2,3\n", "data/sub/2.txt": b"4,5,6\n", "data2/x.txt": b"no"})
    out = io.StringIO()
    result = s3utils.upload_s3_path("data/", src, out=out)
    assert lines(out) == ["Uploaded data/1.txt to data/1.txt", "Uploaded data/sub/2.txt to data/sub/2.txt"]
    assert sorted(result.transferred) == ["data/1.txt", "data/sub/2.txt"]
    assert set(s3.keys()) == {"data/1.txt", "data/sub/2.txt"}           # data2/ untouched: anchored at '/'
    again = s3utils.upload_s3_path("data/", src, out=io.StringIO())
    assert again.transferred == [] and sorted(again.unchanged) == ["data/1.txt", "data/sub/2.txt"]
    assert s3utils.upload_s3_path("data/", src, overwrite=True, out=io.StringIO()).transferred != []
    s3.put("data2/y.txt", b"other")
    dst = tmp_path / "dst"
    dst.mkdir()
    out = io.StringIO()
    result = s3utils.download_s3_path("data/", dst, out=out)
    assert lines(out) == [f"Downloaded data/1.txt to {dst}/data/1.txt", f"Downloaded data/sub/2.txt to {dst}/data/sub/2.txt"]
    assert (dst / "data" / "1.txt").read_bytes() == b"1,2,3\n" and not (dst / "data2").exists()
    assert s3utils.download_s3_path("data/", dst, out=io.StringIO()).transferred == []
    assert not list(dst.rglob("*.s3part"))


def test_partial_files_are_repaired_both_ways(s3, backend, tmp_path):
    src = tree(tmp_path / "src", {"data/a.bin": os.urandom(3000), "data/b.bin": os.urandom(100)})
    s3utils.upload_s3_path("data/", src, out=io.StringIO())
    s3.put("data/a.bin", (src / "data/a.bin").read_bytes()[:1000])           # a truncated remote copy
    result = s3utils.upload_s3_path("data/", src, out=io.StringIO())
    assert result.transferred == ["data/a.bin"] and s3.keys()["data/a.bin"] == (src / "data/a.bin").read_bytes()
    dst = tree(tmp_path / "dst", {"data/a.bin": b"partial", "data/b.bin": (src / "data/b.bin").read_bytes()})
    result = s3utils.download_s3_path("data/", dst, out=io.StringIO())
    assert result.transferred == ["data/a.bin"] and result.unchanged == ["data/b.bin"]
    assert (dst / "data/a.bin").read_bytes() == (src / "data/a.bin").read_bytes()


def test_same_size_different_content_is_transferred(s3, backend, tmp_path):
    src = tree(tmp_path / "src", {"data/x.txt": b"aaaa"})
    s3utils.upload_s3_path("data/x.txt", src, out=io.StringIO())
    (src / "data/x.txt").write_bytes(b"bbbb")
    assert s3utils.upload_s3_path("data/x.txt", src, out=io.StringIO()).transferred == ["data/x.txt"]
    assert s3.keys()["data/x.txt"] == b"bbbb"


def test_wildcards_select_files(s3, backend, tmp_path):
    src = tree(tmp_path / "src", {"Model/Yelp/t5_wise_1419/config.json": b"{}", "Model/Yelp/bert/config.json": b"{}",
                                  "Model/t5_other.txt": b"x"})
    result = s3utils.upload_s3_path("Model/*t5*wise*419*", src, out=io.StringIO())
    assert result.transferred == ["Model/Yelp/t5_wise_1419/config.json"]
    s3utils.upload_s3_path("Model/", src, out=io.StringIO())
    assert sorted(s3utils.find_s3_path("Model/*t5*")) == ["Model/Yelp/t5_wise_1419/config.json", "Model/t5_other.txt"]


def test_multipart_50mb_round_trip_and_skip(seaweed, backend, tmp_path):
    big = os.urandom(50 * 1024 * 1024)
    src = tree(tmp_path / "src", {"ckpt/model.bin": big})
    s3utils.upload_s3_path("ckpt/", src, out=io.StringIO())
    etag = seaweed.client.head_object(Bucket=seaweed.bucket, Key="ckpt/model.bin")["ETag"]
    assert "-" in etag                                             # it really went as a multipart upload
    assert s3utils.upload_s3_path("ckpt/", src, out=io.StringIO()).unchanged == ["ckpt/model.bin"]
    dst = tmp_path / "dst"
    s3utils.download_s3_path("ckpt/", dst, out=io.StringIO())
    assert (dst / "ckpt/model.bin").read_bytes() == big
    assert s3utils.download_s3_path("ckpt/", dst, out=io.StringIO()).unchanged == ["ckpt/model.bin"]


def test_keys_escaping_the_root_are_refused(moto_url, monkeypatch, tmp_path):
    s3 = make_s3(moto_url, monkeypatch)          # SeaweedFS refuses such keys itself; moto stores them as given
    s3.put("data/ok.txt", b"ok")
    s3.put("data/../../escape.txt", b"evil")
    dst = tmp_path / "deep" / "dst"
    dst.mkdir(parents=True)
    result = s3utils.download_s3_path("data/", dst, out=io.StringIO())
    assert (dst / "data/ok.txt").read_bytes() == b"ok"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "escape.txt").exists()
    assert [k for k, _ in result.failed] == ["data/../../escape.txt"]
    assert "would land outside" in result.failed[0][1]
    for bad in ("../x", "/etc/passwd", "data/../../x"):
        with pytest.raises(s3utils.S3ConfigError, match="inside the project root"):
            s3utils.select(bad)


def cli(args, cwd, env=None, input=""):
    return subprocess.run([sys.executable, str(ROOT / "s3utils.py"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, input=input, timeout=120)


def test_cli_reads_dotenv_and_prints_the_reference_lines(seaweed, tmp_path, monkeypatch):
    project = tree(tmp_path / "p", {"data/1.txt": b"1,2,3\n", "data/2.txt": b"4,5,6\n"})
    (project / ".env").write_text(f"S3_BUCKET_NAME={seaweed.bucket}\nS3_ENDPOINT_URL={seaweed.url}\n"
                                  f"AWS_ACCESS_KEY_ID={os.environ['AWS_ACCESS_KEY_ID']}\n"
                                  f"AWS_SECRET_ACCESS_KEY={os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_"))}
    result = cli(["upload", "data/"], project, env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["Uploaded data/1.txt to data/1.txt", "Uploaded data/2.txt to data/2.txt"]
    (project / "data" / "1.txt").unlink()
    result = cli(["download", "data/"], project, env)
    assert result.stdout.splitlines() == ["Downloaded data/1.txt to ./data/1.txt"]
    assert "1 downloaded, 1 unchanged, 0 failed" in result.stderr


def test_missing_settings_name_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_"))}
    result = cli(["download", "data/"], tmp_path, env)
    assert result.returncode == 2 and "S3_BUCKET_NAME is not set" in result.stderr
    result = cli(["upload", "../x"], tmp_path, {**env, "S3_BUCKET_NAME": "b"})
    assert result.returncode == 2 and "inside the project root" in result.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import s3utils; "
                            "print('boto3' in sys.modules)" % str(ROOT)], env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == "False"


def make(project: Path, *args: str, input: str = "") -> subprocess.CompletedProcess:
    """`make TARGET ...` in a project linking the toolbox's Makefile, with this interpreter."""
    if not (project / "Makefile").exists():
        (project / "Makefile").symlink_to(ROOT / "Makefile")
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=project,
                          capture_output=True, text=True, input=input, timeout=120)


def listed(stdout: str, header: str) -> list[str]:
    """The names printed (indented) under the first line equal to `header`."""
    lines = stdout.splitlines()
    names = []
    for line in lines[lines.index(header) + 1:]:
        if not line.startswith("  "):
            break
        names.append(line[2:])
    return names


def interactive_project(s3, tmp_path: Path) -> Path:
    """Local data/a.txt (only here), data/b.txt (same in the bucket); the bucket's data/c.txt; other/ on both sides."""
    project = tree(tmp_path / "p", {"data/a.txt": b"a", "data/b.txt": b"b", "other/x.txt": b"x"})
    for key, body in (("data/b.txt", b"b"), ("data/c.txt", b"c"), ("other/x.txt", b"x")):
        s3.put(key, body)
    return project


ANSWERS = {             # download, upload, exit (None: end of input)
    "letters": ("d", "u", "e"),
    "spaces-and-case": ("  D ", "U  ", " E "),
    "numbers": ("1", "2", "5"),
    "words": ("download", "UPLOAD", None),
}


@pytest.mark.parametrize("case", ANSWERS, ids=list(ANSWERS))
def test_interactive_takes_short_answers_and_stays_open(case, seaweed, tmp_path):
    project = interactive_project(seaweed, tmp_path)
    answers = [a for a in ANSWERS[case] if a is not None]
    result = cli(["interactive", "data/*"], project, input="".join(f"{a}\n" for a in answers))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert listed(result.stdout, f"Local files matching 'data/*' under {project.resolve()}:") == [
        "data/a.txt", "data/b.txt"]
    assert listed(result.stdout, f"Objects matching 'data/*' in s3://{seaweed.bucket}:") == [
        "data/b.txt", "data/c.txt"]
    assert "Downloaded data/c.txt to ./data/c.txt" in result.stdout
    assert "Uploaded data/a.txt to data/a.txt" in result.stdout
    assert result.stdout.count("Choose: 1 [d]ownload, 2 [u]pload") == 3          # after each action, the menu again
    assert (project / "data/c.txt").read_bytes() == b"c"
    assert seaweed.keys() == {"data/a.txt": b"a", "data/b.txt": b"b", "data/c.txt": b"c", "other/x.txt": b"x"}
    assert "Will replace" not in result.stdout           # nothing was replaced: nothing to confirm


def test_interactive_remove_lists_asks_and_no_changes_nothing(seaweed, tmp_path):
    project = interactive_project(seaweed, tmp_path)
    before = seaweed.keys()
    result = cli(["interactive", "data/*"], project, input="r\nn\nR\n\n3\nN\n")       # no, empty (no), no
    assert result.returncode == 0 and seaweed.keys() == before, result.stderr
    assert result.stdout.count("Nothing removed.") == 3
    assert listed(result.stdout, f"Will remove from s3://{seaweed.bucket}:") == ["data/b.txt", "data/c.txt"]
    assert "Remove 2 objects? [y/N]" in result.stdout
    result = cli(["interactive", "data/*"], project, input="remove\n y \nexit\n")
    assert result.returncode == 0 and "Removed data/b.txt\nRemoved data/c.txt\n" in result.stdout
    assert seaweed.keys() == {"other/x.txt": b"x"}
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*.txt")) == [
        "data/a.txt", "data/b.txt", "other/x.txt"]                               # local files untouched


def test_interactive_local_delete_lists_asks_and_no_changes_nothing(seaweed, tmp_path):
    project = interactive_project(seaweed, tmp_path)
    (project / "data/.env").write_text("TOKEN=1\n")          # an excluded name: not picked by data/*
    result = cli(["interactive", "data/*"], project, input="l\nno\n")
    assert result.returncode == 0 and (project / "data/a.txt").exists() and (project / "data/b.txt").exists()
    assert listed(result.stdout, f"Will delete under {project.resolve()}:") == ["data/a.txt", "data/b.txt"]
    assert "Delete 2 local files? [y/N]" in result.stdout and "Nothing deleted." in result.stdout
    result = cli(["interactive", "data/*"], project, input="4\nY\n")
    assert result.returncode == 0 and "Deleted data/a.txt\nDeleted data/b.txt\n" in result.stdout
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        "data/.env", "other/x.txt"]
    assert set(seaweed.keys()) == {"data/b.txt", "data/c.txt", "other/x.txt"}       # the bucket untouched


def test_interactive_overwrite_lists_what_it_replaces_and_asks(seaweed, tmp_path):
    project = interactive_project(seaweed, tmp_path)
    (project / "data/b.txt").write_bytes(b"local edit")
    result = cli(["interactive", "data/*"], project, input="d\nn\nu\n")      # no, then the input ends at the question
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert listed(result.stdout, "Will replace with the bucket's copies:") == ["data/b.txt"]
    assert "Replace 1 local file? [y/N]" in result.stdout and "Nothing downloaded." in result.stdout
    assert listed(result.stdout, f"Will replace in s3://{seaweed.bucket} with the local files:") == ["data/b.txt"]
    assert "Replace 1 object? [y/N]" in result.stdout and "Nothing uploaded." in result.stdout
    assert (project / "data/b.txt").read_bytes() == b"local edit" and not (project / "data/c.txt").exists()
    assert set(seaweed.keys()) == {"data/b.txt", "data/c.txt", "other/x.txt"} and seaweed.keys()["data/b.txt"] == b"b"
    result = cli(["interactive", "data/*"], project, input="u\ny\nd\n")
    assert result.returncode == 0, result.stderr
    assert seaweed.keys()["data/b.txt"] == b"local edit" and seaweed.keys()["data/a.txt"] == b"a"
    assert (project / "data/c.txt").read_bytes() == b"c"
    assert "Will replace with the bucket's copies" not in result.stdout     # after the upload, b is the same


def test_interactive_unknown_answers_and_failed_actions(seaweed, tmp_path):
    project = tree(tmp_path / "p", {"data/a.txt": b"a"})
    result = cli(["interactive", "zzz/*"], project, input="x\nremove all\n\nd\ne\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: unknown choice 'x': answer 1 to 5 or d, u, r, l, e",
        "error: unknown choice 'remove all': answer 1 to 5 or d, u, r, l, e",
        f"error: nothing in s3://{seaweed.bucket} matches 'zzz/*': nothing downloaded"]
    assert f"Local files matching 'zzz/*' under {project.resolve()}: none" in result.stdout
    assert f"Objects matching 'zzz/*' in s3://{seaweed.bucket}: none" in result.stdout
    assert result.stdout.count("Choose: ") == 5 and seaweed.keys() == {}


def test_remove_asks_and_respects_the_anchor(seaweed, tmp_path):
    for key in ("data/a.txt", "data2/b.txt"):
        seaweed.put(key, b"x")
    result = cli(["remove", "data/"], tmp_path, input="n\n")
    assert result.returncode == 1 and set(seaweed.keys()) == {"data/a.txt", "data2/b.txt"}
    result = cli(["remove", "data/", "--yes"], tmp_path)
    assert result.returncode == 0 and set(seaweed.keys()) == {"data2/b.txt"}


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch, backend):
    server = start_seaweedfs(tmp_path / "weed")
    s3 = make_s3(server.url, monkeypatch)
    body = os.urandom(120 * 1024 * 1024)
    src = tree(tmp_path / "src", {"ckpt/big.bin": body})
    s3utils.upload_s3_path("ckpt/", src, out=io.StringIO())
    dst = tree(tmp_path / "dst", {"ckpt/big.bin": b"the previous complete checkpoint"})
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "2"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "s3utils.py"), "download", "ckpt/", "--overwrite"],
                            cwd=dst, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    def receiving() -> bool:               # bytes are arriving in some temporary file beside the real one
        return any(p.name != "big.bin" and p.is_file() and p.stat().st_size > 0 for p in (dst / "ckpt").iterdir())
    while time.monotonic() < deadline and not receiving():
        time.sleep(0.005)
    server.stop(hard=True)                     # the server dies in the middle of the transfer
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert (dst / "ckpt/big.bin").read_bytes() == b"the previous complete checkpoint"
    assert [p.name for p in (dst / "ckpt").iterdir()] == ["big.bin"]      # no partial file left anywhere


# ---------------------------------------------------------------- selections that match nothing

@pytest.mark.parametrize("selection", ["typo/", "data/typo.txt", "typo*/*.bin"])
def test_download_of_nothing_is_one_line_and_exit_1(selection, s3, tmp_path):
    s3.put("data/a.txt", b"a")
    project = tmp_path / "p"
    project.mkdir()
    result = cli(["download", selection], project)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: nothing in s3://{s3.bucket} matches {selection!r}: nothing downloaded\n"
    assert list(project.iterdir()) == []
    with pytest.raises(s3utils.NothingMatched, match=f"nothing in s3://{s3.bucket} matches"):
        s3utils.download_s3_path(selection, project)


@pytest.mark.parametrize("selection", ["typo/", "data/typo.txt", "data/*.bin"])
def test_upload_of_nothing_is_bad_input_exit_2(selection, seaweed, tmp_path):
    project = tree(tmp_path / "p", {"data/a.txt": b"a"})
    result = cli(["upload", selection], project)
    assert result.returncode == 2 and result.stdout == "" and seaweed.keys() == {}
    assert result.stderr == (f"error: file: no local file matches {selection!r} under {project.resolve()}: "
                             "nothing uploaded\n")


def test_make_says_nothing_matched_with_the_command_status(seaweed, tmp_path):
    project = tree(tmp_path / "p", {"data/a.txt": b"a"})
    result = make(project, "download", "file=typo/")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == (f"error: nothing in s3://{seaweed.bucket} matches 'typo/': "
                                             "nothing downloaded")
    assert "] Error 1" in result.stderr and len(result.stderr.splitlines()) == 2
    result = make(project, "upload", "file=typo/")
    assert result.stderr.splitlines()[0].startswith("error: file: no local file matches 'typo/' under ")
    assert "] Error 2" in result.stderr and len(result.stderr.splitlines()) == 2 and seaweed.keys() == {}
    result = make(project, "interactive", "file=data/*", input="u\ne\n")          # stdin reaches the menu
    assert result.returncode == 0 and seaweed.keys() == {"data/a.txt": b"a"}, result.stderr


# ---------------------------------------------------------------- .env wins over the environment

def dotenv_of(s3, **changes: str) -> str:
    values = {"S3_BUCKET_NAME": s3.bucket, "S3_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
              "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "S3_READ_TIMEOUT": "30", "S3_MAX_ATTEMPTS": "1", **changes}
    return "".join(f"{k}={v}\n" for k, v in values.items())


def by(way: str, project: Path, action: str, path: str) -> tuple[int, str]:
    """Run an upload or download from the project root: through make, `python s3utils.py`, or the functions."""
    if way == "code":
        try:
            getattr(s3utils, f"{action}_s3_path")(path, out=io.StringIO())
            return 0, ""
        except s3utils.S3Error as err:
            return err.exit_status, str(err)
    if way == "make":
        result = make(project, action, f"file={path}")
        status = int(re.search(r"\] Error (\d+)", result.stderr).group(1)) if result.returncode else 0
        return status, result.stderr
    result = cli([action, path], project)
    return result.returncode, result.stderr


@pytest.mark.parametrize("way", ["make", "python", "code"])
def test_dotenv_wins_over_the_shell(way, seaweed, monkeypatch, tmp_path):
    project = tree(tmp_path / "p", {"data/1.txt": b"1"})
    (project / ".env").write_text(dotenv_of(seaweed))
    shell = {"S3_ENDPOINT_URL": dead_url(), "S3_BUCKET_NAME": "not-this-bucket", "AWS_SECRET_ACCESS_KEY": "wrong",
             "S3_READ_TIMEOUT": "not a number", "S3_MAX_ATTEMPTS": "0"}
    for var, value in shell.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(project)
    assert by(way, project, "upload", "data/") == (0, "" if way == "code" else "1 uploaded, 0 unchanged, 0 failed\n")
    assert seaweed.keys() == {"data/1.txt": b"1"}
    (project / "data/1.txt").unlink()
    assert by(way, project, "download", "data/")[0] == 0 and (project / "data/1.txt").read_bytes() == b"1"
    assert {var: os.environ[var] for var in shell} == shell           # the caller's environment is left as it was


DOTENV_WRONG = {          # one .env value wrong, the shell's right: the failure names the .env value
    "S3_ENDPOINT_URL": (lambda: dead_url(), 1, "{value}: cannot connect"),
    "S3_BUCKET_NAME": (lambda: "no-such-bucket-here", 1, "s3://{value}/"),
    "AWS_SECRET_ACCESS_KEY": (lambda: "wrong-secret", 1, "SignatureDoesNotMatch"),
    "S3_READ_TIMEOUT": (lambda: "abc", 2, "S3_READ_TIMEOUT: expected a number of seconds above 0, got 'abc'"),
}


@pytest.mark.parametrize("way", ["make", "python", "code"])
def test_a_wrong_dotenv_value_is_used_over_the_shell(way, seaweed, monkeypatch, tmp_path):
    project = tree(tmp_path / "p", {"data/1.txt": b"1"})
    seaweed.put("data/1.txt", b"1")
    monkeypatch.setenv("S3_MAX_ATTEMPTS", "1")
    monkeypatch.chdir(project)
    for var, (value_of, status, message) in DOTENV_WRONG.items():
        value = value_of()
        (project / ".env").write_text(dotenv_of(seaweed, **{var: value}))
        (project / "data/1.txt").unlink(missing_ok=True)
        got, text = by(way, project, "download", "data/")
        assert got == status and message.format(value=value) in text, (var, text)
        assert not (project / "data/1.txt").exists()


def test_a_dotenv_without_python_dotenv_is_refused(seaweed, tmp_path):
    """Without the parser, the shell's values could name another bucket than the project's: one line, exit 2."""
    project = tree(tmp_path / "p", {"data/1.txt": b"1", ".env": dotenv_of(seaweed).encode()})
    code = (f"import sys; sys.modules['dotenv'] = None; sys.path.insert(0, {str(ROOT)!r}); import s3utils; "
            "sys.exit(s3utils.main(['upload', 'data/']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and seaweed.keys() == {}
    assert result.stderr == (f"error: {project.resolve()}/.env cannot be read: python-dotenv is not installed "
                             "(run make setup, or pip install python-dotenv)\n")
