"""Process groups and leftovers of local runs: a command's background children (`cmd &`) share its group;
daemons (`setsid cmd &`, a double fork) leave it, but on Linux they come back to the launcher when orphaned,
because the launcher is a child subreaper. When a cell ends, both kinds end with it.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

END_WAIT_SECONDS = 2.0          # what a leftover gets between SIGTERM and SIGKILL
_adopting = False


def killpg(pgid: int, signum: int) -> None:
    """Signal a whole process group; one that is already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies don't count (a PID 1 that never reaps keeps them)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, pgrp = text[text.rfind(")") + 2:].split()[:3]
        if state not in "ZX" and int(pgrp) == pgid:
            return True
    return False


def adopt_orphans() -> bool:
    """Become a child subreaper (Linux prctl): orphaned descendants are re-parented to this process."""
    global _adopting
    if _adopting:
        return True
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


MARK = "KUBE_TOOLBOX_CELL_RUN"      # in a command's environment, inherited by whatever it starts


def mark() -> tuple[str, str]:
    """The environment entry that marks one command's processes (checked before an adopted one is stopped)."""
    return MARK, f"{os.getpid()}-{time.monotonic_ns()}"


def _orphans(token: str) -> list[int]:
    """Adopted leftovers of the command marked `token`: our children whose environment carries the mark. Other
    children of this process (servers a caller started, say) are never touched."""
    me, found, needle = os.getpid(), [], f"{MARK}={token}".encode()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if int(text[text.rfind(")") + 2:].split()[1]) != me:
                continue
            if needle in (stat.parent / "environ").read_bytes().split(b"\0"):
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def end_leftovers(pgid: int, token: str) -> None:
    """After a command ended by itself: SIGTERM its group and the daemons it left (adopted, carrying its mark),
    SIGKILL what is left after END_WAIT_SECONDS, and reap the adopted ones."""
    orphans = _orphans(token) if _adopting else []
    if not group_alive(pgid) and not orphans:
        return
    killpg(pgid, signal.SIGTERM)
    for pid in orphans:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + END_WAIT_SECONDS
    while time.monotonic() < deadline and (group_alive(pgid) or _reap(orphans)):
        time.sleep(0.05)
    killpg(pgid, signal.SIGKILL)
    for pid in orphans:
        _kill(pid, signal.SIGKILL)
    _reap(orphans, block=True)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pids: list[int], block: bool = False) -> bool:
    """Reap the adopted processes that ended; whether some still run."""
    running = False
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            continue
        running = running or done == 0
    return running
