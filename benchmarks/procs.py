"""What the benchmarks that run `amq` processes share: which `amq` to run, the queues a
store shows, stopping receivers as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (fields 14 and 15 of
    /proc/PID/stat, counted after the command name, which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rabbitmq_pid() -> int | None:
    """RabbitMQ's Erlang VM on this machine, if there is one (the oldest beam.smp)."""
    for entry in sorted((e for e in os.listdir("/proc") if e.isdigit()), key=int):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"beam.smp") and b"rabbit" in argv:
            return int(entry)
    return None


def amq_default() -> list[str]:
    """The `amq` beside this Python (its venv's), else the one on PATH, else the module."""
    beside = os.path.join(os.path.dirname(sys.executable), "amq")
    if os.access(beside, os.X_OK):
        return [beside]
    exe = shutil.which("amq")
    return [exe] if exe else [sys.executable, "-m", "amqcli"]


def queues(amq: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """`amq list queues` of the broker ``env`` names, as rows."""
    out = subprocess.run(amq + ["list", "queues", "--format", "json"], env=env,
                         capture_output=True, check=True).stdout
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def queue_row(amq: list[str], env: dict[str, str], queue: str) -> dict[str, Any]:
    return next((q for q in queues(amq, env) if q["name"] == queue), {})


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl+C for each, as a user would; SIGKILL for what is still there after 10 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_registered(count: Callable[[], int], procs: list[subprocess.Popen[bytes]], tmp: str,
                    interval: float = 0.2) -> None:
    """Wait until ``count()`` (consumers the broker shows) reaches one per receiver; stop,
    with the stderr (``tmp/errN``) of one that ended, if one did."""
    deadline = time.monotonic() + 120
    while count() < len(procs):
        for i, p in enumerate(procs):
            if p.poll() is not None:
                with open(f"{tmp}/err{i}", "rb") as f:
                    err = f.read().decode(errors="replace").strip()
                raise SystemExit(f"receiver {i + 1} of {len(procs)} exited {p.returncode} "
                                 f"while starting: {err}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(procs)} receivers did not all register as consumers")
        time.sleep(interval)


def rabbitmq_problem(url: str) -> str | None:
    """Why the RabbitMQ at ``url`` cannot be measured (None when a connection opens)."""
    try:
        import pika
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception as err:  # noqa: BLE001 - any failure: the caller skips, saying why
        return repr(err)
    return None
