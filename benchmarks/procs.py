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
from typing import Any


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
