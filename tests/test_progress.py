"""Progress bars of long operations: tqdm on stderr when it is a terminal (a real pty here), nothing when it is a
pipe or a file, and the per-item lines still on stdout either way."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import termios
import sys
from pathlib import Path

import pytest

from kube import cluster_cli
from s3sync.console import Reporter
from s3sync.transfer import Finished, Moved, Started, Transfer


@pytest.fixture
def terminal(monkeypatch):
    """Call it in the test (pytest's own capture swaps stderr back after fixtures run): stderr becomes the writing
    end of a 100-column pseudo-terminal; it returns a function reading what the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    stream = os.fdopen(slave, "w", buffering=1)

    def shown() -> str:
        stream.flush()
        os.set_blocking(master, False)
        chunks = []
        try:
            while True:
                chunks.append(os.read(master, 65536))
        except (BlockingIOError, OSError):
            pass
        return b"".join(chunks).decode(errors="replace")

    def attach():
        monkeypatch.setattr(sys, "stderr", stream)
        return shown
    yield attach
    stream.close()
    os.close(master)


def transfers(n: int) -> list[Transfer]:
    return [Transfer(f"data/{i}.bin", Path(f"/tmp/{i}.bin"), 1024 * 1024) for i in range(n)]


def test_s3_transfers_show_a_bar_on_a_terminal(terminal):
    shown_by = terminal()
    out = io.StringIO()
    report = Reporter(out=out)
    report(Started(files=3, bytes=3 * 1024 * 1024))
    for t in transfers(3):
        report(Moved(t, upload=True))
    bar = report.bar
    assert bar is not None and bar.n == 3 * 1024 * 1024 and bar.total == 3 * 1024 * 1024
    report(Finished())
    shown = shown_by()
    assert "3 files:" in shown and "3.00M [" in shown and report.bar is None
    assert out.getvalue().splitlines() == [f"Uploaded data/{i}.bin to data/{i}.bin" for i in range(3)]


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    report = Reporter(out=out)
    report(Started(files=3, bytes=3 * 1024 * 1024))
    for t in transfers(3):
        report(Moved(t, upload=False))
    report(Finished())
    assert err.getvalue() == "" and len(out.getvalue().splitlines()) == 3
    assert cluster_cli.progress(10_000, "jobs") is None


def test_a_large_submission_gets_a_bar_a_small_one_does_not(terminal):
    shown_by = terminal()
    assert cluster_cli.progress(cluster_cli.PROGRESS_FROM, "jobs") is None
    bar = cluster_cli.progress(1000, "jobs")
    assert bar is not None
    bar.update(500)
    bar.refresh()                                   # updates are drawn at most 10 times a second
    bar.close()
    assert "0/1000" in shown_by() and bar.n == 500
