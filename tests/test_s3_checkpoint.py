"""The checkpoint sync engine (`s3utils.py checkpoint sync|restore`, `monitor`) against real SeaweedFS and moto,
both backends, with real writer processes: only complete files reach the bucket, a signal ends with a final sync,
keep never deletes the only complete checkpoint, restore never brings a half-written file, one engine per folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from s3sync.checkpoint import natural, temporary
from tests.helpers import ROOT
from tests.s3_fixtures import tree

pytestmark = pytest.mark.usefixtures("elsewhere")

# A checkpoint file says its own length in its first 8 bytes: a half-written one is shorter than it says.
WRITER = textwrap.dedent("""\
    import os, sys, time
    folder, steps, chunks, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    def body(n):
        size = 8 + n * 65536
        return size.to_bytes(8, "big") + bytes([n % 251]) * (size - 8)
    for step in range(1, steps + 1):
        d = os.path.join(folder, f"step_{step}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "model.bin.tmp"), "wb") as fh:      # write, then rename into place
            fh.write(body(step * 7))
        os.replace(os.path.join(d, "model.bin.tmp"), os.path.join(d, "model.bin"))
        data = body(chunks)
        with open(os.path.join(d, "optimizer.bin"), "wb") as fh:       # slow writes in place
            for i in range(0, len(data), 65536):
                fh.write(data[i:i + 65536])
                fh.flush()
                time.sleep(pause)
    """)


def whole(body: bytes) -> bool:
    return len(body) >= 8 and int.from_bytes(body[:8], "big") == len(body)


def s3utils(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "s3utils.py"), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    return finish(s3utils(*args, cwd=cwd))


def writer(project: Path, steps: int, chunks: int, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(project / "ckpt"), str(steps), str(chunks), str(pause)])


def test_only_complete_files_reach_the_bucket_while_a_writer_runs(s3, backend, tmp_path):
    project = tree(tmp_path / "p", {"ckpt/.keep-me-out": b"x"})
    engine = s3utils("checkpoint", "sync", "ckpt", "--every", "0.5", cwd=project)
    write = writer(project, steps=3, chunks=12, pause=0.15)
    seen: dict[str, bytes] = {}
    while write.poll() is None:
        for key, body in s3.keys().items():
            assert whole(body), f"{key}: a half-written file reached the bucket ({len(body)} bytes)"
            seen[key] = body
        time.sleep(0.2)
    time.sleep(2.5)                                   # one more interval for the last file written in place
    engine.send_signal(signal.SIGTERM)
    status, out, err = finish(engine)
    assert status == 143 and "Traceback" not in err, err
    keys = s3.keys()
    expected = {f"ckpt/step_{n}/{name}" for n in (1, 2, 3) for name in ("model.bin", "optimizer.bin")}
    assert set(keys) == expected and all(whole(body) for body in keys.values())
    assert all(keys[k] == (project / k).read_bytes() for k in keys)
    assert "ckpt/step_1/model.bin" in seen                    # uploaded while the writer was still running
    assert f"Uploaded ckpt/step_3/optimizer.bin to ckpt/step_3/optimizer.bin" in out


def test_engine_stopped_mid_upload_leaves_no_partial_object_and_a_restart_completes(s3, backend, tmp_path):
    big = os.urandom(48 << 20)
    project = tree(tmp_path / "p", {"ckpt/step_1/model.bin": big, "ckpt/step_1/small.txt": b"small"})
    old = time.time() - 3600
    for path in (project / "ckpt/step_1").iterdir():
        os.utime(path, (old, old))
    engine = s3utils("checkpoint", "sync", "ckpt", "--every", "30", "--final-timeout", "0.3", cwd=project)
    time.sleep(1.6)                                   # past the second look, into the upload
    engine.send_signal(signal.SIGTERM)
    status, _out, err = finish(engine)
    assert status == 143, err
    keys = s3.keys()
    assert keys.get("ckpt/step_1/model.bin", big) == big                     # absent, or complete
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    status, out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", cwd=project)
    assert status == 0, err
    assert s3.keys() == {"ckpt/step_1/model.bin": big, "ckpt/step_1/small.txt": b"small"}
    status, out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", cwd=project)
    assert status == 0 and out == "" and err == "", err               # nothing changed: nothing moves


def test_restore_gets_the_complete_checkpoints_and_never_a_half_written_file(s3, backend, tmp_path):
    project = tmp_path / "p"
    write = writer(project, steps=2, chunks=60, pause=0.1)           # step_2's optimizer takes ~6 s
    deadline = time.monotonic() + 30
    while not (project / "ckpt/step_2/optimizer.bin").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    status, _out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", cwd=project)
    assert status == 0 and write.poll() is None, err
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    status, out, err = cli("checkpoint", "restore", "ckpt", cwd=fresh)
    assert status == 0, err
    restored = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file() and
                      not p.name.startswith("."))
    assert "ckpt/step_1/model.bin" in restored and "ckpt/step_1/optimizer.bin" in restored
    assert "ckpt/step_2/optimizer.bin" not in restored
    assert all(whole((fresh / rel).read_bytes()) for rel in restored)
    write.wait(timeout=60)
    status, out, err = cli("checkpoint", "restore", "ckpt", cwd=fresh)           # again: only what is missing
    assert status == 0 and out == "" and "0 restored" in err


def test_restore_of_an_empty_prefix_is_fine(s3, tmp_path):
    status, out, err = cli("checkpoint", "restore", "ckpt/run-1", cwd=tmp_path)
    assert status == 0 and out == "" and "error" not in err and not (tmp_path / "ckpt").exists()


def age(path: Path, seconds: float = 600) -> None:
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def test_keep_orders_by_number_and_never_deletes_the_only_complete_checkpoint(s3, backend, tmp_path):
    project = tree(tmp_path / "p", {"ckpt/step_9/model.bin": b"nine", "ckpt/step_8/model.bin": b"eight"})
    age(project / "ckpt")
    status, _out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", "--keep", "1", cwd=project)
    assert status == 0, err
    assert set(s3.keys()) == {"ckpt/step_9/model.bin"}             # step_8 older: removed once step_9 is up
    (project / "ckpt/step_10").mkdir()
    slow = subprocess.Popen([sys.executable, "-c", "import sys, time\nf = open(sys.argv[1], 'wb')\n"
                             "for i in range(40):\n    f.write(b'x' * 1000); f.flush(); time.sleep(0.1)\n",
                             str(project / "ckpt/step_10/model.bin")])
    time.sleep(0.3)
    status, out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", "--keep", "1", cwd=project)
    assert status == 0 and slow.poll() is None, err
    assert set(s3.keys()) == {"ckpt/step_9/model.bin"}             # step_10 is still being written: 9 stays
    slow.wait(timeout=30)
    age(project / "ckpt/step_10")
    status, out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", "--keep", "1", cwd=project)
    assert status == 0, err
    assert s3.keys() == {"ckpt/step_10/model.bin": b"x" * 40000}   # step_10 > step_9 in number order
    assert "Removed ckpt/step_9/model.bin" in out


def test_names_sort_in_number_order_and_temporary_names_are_left_out():
    assert sorted(["step_10", "step_9", "step_100", "step_1"], key=natural) == [
        "step_1", "step_9", "step_10", "step_100"]
    assert [n for n in ("a.tmp", ".a", "a.partial", "a.part", "a~", "a.bin") if temporary(n)] == [
        "a.tmp", ".a", "a.partial", "a.part", "a~"]


def test_monitor_runs_once_per_folder_takes_over_a_stale_lock_and_exits_130_or_143(seaweed, tmp_path):
    project = tree(tmp_path / "p", {"ckpt/a.txt": b"a"})
    age(project / "ckpt")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (project / "ckpt/.s3sync.lock").write_text(f"{dead.pid}\n")          # left by a process that is gone
    first = s3utils("monitor", "ckpt", "--interval", "0.5", cwd=project)
    deadline = time.monotonic() + 30
    while "ckpt/a.txt" not in seaweed.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (project / "ckpt/.s3sync.lock").read_text().strip() == str(first.pid)
    status, out, err = cli("monitor", "ckpt", "--interval", "0.5", cwd=project)
    assert status == 2 and out == "" and err == (
        f"error: {project}/ckpt: already synced by process {first.pid} (lock file {project}/ckpt/.s3sync.lock)\n")
    first.send_signal(signal.SIGINT)
    status, out, err = finish(first)
    assert status == 130 and out == "Uploaded ckpt/a.txt to ckpt/a.txt\n" and "Traceback" not in err, err
    assert not (project / "ckpt/.s3sync.lock").exists()
    again = s3utils("monitor", "ckpt", "--interval", "0.5", cwd=project)
    time.sleep(2)
    again.send_signal(signal.SIGTERM)
    status, out, err = finish(again)
    assert status == 143 and out == "", err                            # nothing new to upload


def test_monitor_removes_from_the_bucket_only_with_delete(s3, backend, tmp_path):
    project = tree(tmp_path / "p", {"ckpt/a.txt": b"a", "ckpt/b.txt": b"b"})
    age(project / "ckpt")
    for flags, left in (([], {"ckpt/a.txt", "ckpt/b.txt"}), (["--delete"], {"ckpt/a.txt"})):
        s3.put("ckpt/b.txt", b"b")
        (project / "ckpt/b.txt").unlink(missing_ok=True)
        proc = s3utils("monitor", "ckpt", "--interval", "0.5", *flags, cwd=project)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        status, out, err = finish(proc)
        assert status == 143 and set(s3.keys()) == left, (flags, err)
        assert ("Removed ckpt/b.txt" in out) == bool(flags)


def test_make_monitor_passes_interval_and_delete(seaweed, tmp_path):
    project = tree(tmp_path / "p", {"ckpt/a.txt": b"a"})
    age(project / "ckpt")
    (project / "Makefile").symlink_to(ROOT / "Makefile")
    proc = subprocess.Popen(["make", "--no-print-directory", "mn", "file=ckpt", "interval=0.5", "delete=1",
                             f"PYTHON={sys.executable}"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while "ckpt/a.txt" not in seaweed.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    seaweed.put("ckpt/gone.txt", b"deleted locally")
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGINT)                       # Ctrl-C reaches make and the monitor alike
    out, err = proc.communicate(timeout=60)
    assert "Uploaded ckpt/a.txt to ckpt/a.txt" in out and "Removed ckpt/gone.txt" in out, err
    assert set(seaweed.keys()) == {"ckpt/a.txt"} and "Traceback" not in err
    assert "Error 130" in err or proc.returncode != 0


def test_a_complete_object_is_never_replaced_by_a_half_written_file(s3, backend, tmp_path):
    old = (8 + 65536 * 3).to_bytes(8, "big") + b"o" * (65536 * 3)
    project = tree(tmp_path / "p", {"ckpt/last.ckpt": old})
    age(project / "ckpt")
    status, _out, err = cli("checkpoint", "sync", "ckpt", "--every", "1", "--once", cwd=project)
    assert status == 0 and s3.keys() == {"ckpt/last.ckpt": old}, err
    engine = s3utils("checkpoint", "sync", "ckpt", "--every", "0.5", cwd=project)
    rewrite = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""\
        import sys, time
        size = 8 + 65536 * 30
        data = size.to_bytes(8, "big") + b"n" * (size - 8)
        with open(sys.argv[1], "r+b") as fh:                      # the same file, rewritten in place, slowly
            for i in range(0, len(data), 65536):
                fh.write(data[i:i + 65536]); fh.flush(); time.sleep(0.1)
        """), str(project / "ckpt/last.ckpt")])
    versions = set()
    while rewrite.poll() is None:
        body = s3.keys().get("ckpt/last.ckpt", b"")
        assert whole(body) and body in (old, (project / "ckpt/last.ckpt").read_bytes() if body != old else old)
        versions.add(body[8:9])
        time.sleep(0.1)
    time.sleep(3)
    engine.send_signal(signal.SIGTERM)
    status, out, err = finish(engine)
    assert status == 143, err
    assert s3.keys() == {"ckpt/last.ckpt": (project / "ckpt/last.ckpt").read_bytes()}      # no temporary key left
    assert versions == {b"o"} and "Uploaded ckpt/last.ckpt to ckpt/last.ckpt" in out


def test_monitor_delete_removes_nothing_when_the_folder_is_empty_or_missing(seaweed, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    seaweed.put("ckpt/a.txt", b"a")
    proc = s3utils("monitor", "ckpt", "--interval", "0.5", "--delete", cwd=project)      # no ckpt/ here yet
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    status, out, err = finish(proc)
    assert status == 143 and out == "" and seaweed.keys() == {"ckpt/a.txt": b"a"}, err
