"""`kill -9` of a worker (`receive --exec`, `rpc serve`) ends every process of its jobs.

Each command's processes (sh, what `sh -c 'a; b'` runs, background grandchildren) must
be gone within a couple of seconds of the worker's death, before their messages run
again elsewhere, and what the command would have done later (the marker file) never
happens. On both brokers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import kill_and_reap, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

SLEEP = 3  # how long the job's first command runs before it would touch its marker


def job_command(tmp: Path) -> str:
    """Per message (body B): a background grandchild and two foreground commands, each
    leaving a marker if it lives long enough; B's pids written down first."""
    return (f"b=$(cat); (sleep {SLEEP}; touch {tmp}/bg-marker.$b) & "
            f"echo $! > {tmp}/bg.$b; echo $$ > {tmp}/sh.$b; "
            f"sleep {SLEEP}; touch {tmp}/marker.$b")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def started_jobs(tmp: Path, bodies: list[str]) -> list[tuple[int, int, int]]:
    """(sh pid, background pid, process group) of each job, once all have started."""
    def ready() -> bool:
        return all((tmp / f"sh.{b}").exists() and (tmp / f"bg.{b}").exists()
                   and (tmp / f"bg.{b}").read_text().strip() for b in bodies)
    wait_until(ready, "the jobs to start", timeout=30)
    jobs = []
    for b in bodies:
        sh = int((tmp / f"sh.{b}").read_text())
        bg = int((tmp / f"bg.{b}").read_text())
        fields = _stat(sh)
        assert fields is not None, "the job's sh ended early"
        jobs.append((sh, bg, int(fields[2])))
    return jobs


def assert_all_gone(tmp: Path, bodies: list[str], jobs: list[tuple[int, int, int]]) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if not any(group_members(pgid) or alive(sh) or alive(bg) for sh, bg, pgid in jobs):
            break
        time.sleep(0.05)
    left = {pgid: group_members(pgid) for _sh, _bg, pgid in jobs}
    assert not any(left.values()), f"processes of the jobs still alive: {left}"
    assert not any(alive(sh) or alive(bg) for sh, bg, _ in jobs)
    time.sleep(SLEEP + 1)  # when the markers would have appeared
    markers = sorted(p.name for p in tmp.iterdir() if "marker" in p.name)
    assert markers == [], f"a job ran on after its worker died: {markers}"


def test_kill_9_of_receive_exec_ends_every_process_of_its_jobs(amq, name, tmp_path):
    q = name("q")
    bodies = ["one", "two"]
    amq("send", q, "--lines", input="one\ntwo\n")
    worker = amq.popen("receive", q, "--exec", job_command(tmp_path), "--prefetch", "2")
    try:
        jobs = started_jobs(tmp_path, bodies)
        for sh, _bg, pgid in jobs:
            assert pgid != os.getpgid(worker.pid)  # a group of its own, not the worker's
            assert sh in group_members(pgid)
    finally:
        kill_and_reap(worker)
    assert_all_gone(tmp_path, bodies, jobs)
    # The messages went back to the queue, flagged, for the next worker.
    got = amq("receive", q, "--count", "2", "--format", "json", "--timeout", "20")
    assert sorted(m["body"] for m in got.json_lines()) == ["one", "two"]
    assert all(m["redelivered"] for m in got.json_lines())


def test_kill_9_of_rpc_serve_ends_every_process_of_its_jobs(amq, name, tmp_path):
    q, replies = name("q"), name("replies")
    amq("declare", "queue", replies)
    amq("send", q, "one", "-p", f"reply_to={replies}")
    server = amq.popen("rpc", "serve", q, "--exec", job_command(tmp_path))
    try:
        jobs = started_jobs(tmp_path, ["one"])
    finally:
        kill_and_reap(server)
    assert_all_gone(tmp_path, ["one"], jobs)
    got = amq("receive", q, "--count", "1", "--format", "json", "--timeout", "20")
    assert [m["body"] for m in got.json_lines()] == ["one"]
    assert amq("receive", replies, "--count", "1", "--timeout", "0.5", expect=9)


def test_a_command_still_sees_its_exit_status_and_signal(amq, name):
    q = name("q")
    amq("send", q, "--lines", input="a\nb\n")
    r = amq("receive", q, "--exec", "test \"$(cat)\" = a || kill -TERM $$", "--count", "2",
            "--on-failure", "reject", expect=12)
    assert "was killed by SIGTERM" in r.stderr
    assert "failed for 1 of 2" in r.stderr
