"""Is a process still alive? The local broker's stand-in for "the TCP connection dropped".

A process is identified by its pid and, on Linux, its start time (field 22 of
``/proc/PID/stat``), so a recycled pid is not mistaken for the process that died. A
zombie (killed, not yet reaped by its parent) counts as dead: it holds nothing any more.
"""

from __future__ import annotations

import os


def _stat(pid: int) -> list[bytes] | None:
    """Fields 3 onwards of /proc/PID/stat (state first), or None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return stat[stat.rfind(b")") + 2:].split()


def start_time(pid: int) -> str:
    """The process's start time as the kernel reports it, or ``""`` where unknown."""
    fields = _stat(pid)
    return fields[19].decode() if fields and len(fields) > 19 else ""


def alive(pid: int, started: str) -> bool:
    """True while the process that registered (pid, started) runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    fields = _stat(pid)
    if fields is None:
        return not started  # no /proc: trust kill(); registered with /proc: it is gone
    if fields[0] in (b"Z", b"X"):
        return False
    return not started or len(fields) <= 19 or fields[19].decode() == started


def identity() -> tuple[int, str]:
    pid = os.getpid()
    return pid, start_time(pid)


def users_of(paths: set[str]) -> list[int]:
    """The processes that have one of these files open (Linux: their ``/proc/PID/fd``
    links; the ones of other users show only to root), in pid order; ``[]`` elsewhere."""
    try:
        pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
    except OSError:
        return []
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in paths:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def command_line(pid: int) -> str:
    """The process's command line, its words joined by spaces (``""`` where unknown)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return ""
    return " ".join(w.decode("utf-8", "replace") for w in words if w)
