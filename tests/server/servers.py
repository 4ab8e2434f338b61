"""Helpers for the server tests: ``amq broker serve`` as a real process on port 0.

``start_server`` runs ``amq broker serve --port 0`` on a store and reads the port from its
first stdout line; ``Served`` is that process (stop it with ``stop``: SIGTERM, as a user's
Ctrl+C); ``Target`` is where a flow connects, a served store or the RabbitMQ on this
machine; ``rabbitmq_problem`` says why that RabbitMQ cannot be used, if it cannot.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AMQ_EXE = shutil.which("amq")
AMQ_CMD = [AMQ_EXE] if AMQ_EXE else [sys.executable, "-m", "amqcli"]
RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
REQUIRE_RABBITMQ = os.environ.get("AMQ_TEST_REQUIRE_RABBITMQ", "") not in ("", "0")
_rabbitmq: list[str | None] = []


def rabbitmq_problem() -> str | None:
    """Why the RabbitMQ on this machine cannot be used (None when it can), checked once."""
    if not _rabbitmq:
        import pika
        try:
            pika.BlockingConnection(pika.ConnectionParameters(
                RABBITMQ_HOST, RABBITMQ_PORT, connection_attempts=1)).close()
            _rabbitmq.append(None)
        except Exception as err:  # noqa: BLE001 - any failure means "not usable"
            _rabbitmq.append(f"no RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({err!r})")
    return _rabbitmq[0]


def require_rabbitmq() -> None:
    """For a test's RabbitMQ side: skip it, saying why, when that RabbitMQ cannot be used
    (fail when the run requires RabbitMQ)."""
    import pytest
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)


@dataclass
class Served:
    """A running ``amq broker serve``."""

    proc: subprocess.Popen
    host: str
    port: int
    store: str
    log_path: Path
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def params(self, **kwargs: Any) -> Any:
        import pika
        return pika.ConnectionParameters(
            self.host, self.port, credentials=pika.PlainCredentials("guest", "guest"),
            **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def amq(self, *args: str, input: bytes = b"", expect: int | None = 0,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the amq CLI on the served store (the command line next to the server)."""
        proc = subprocess.run(AMQ_CMD + ["--url", f"local:{self.store}", *args], input=input,
                              capture_output=True, timeout=timeout, check=False)
        if expect is not None:
            assert proc.returncode == expect, (proc.returncode, proc.stderr.decode())
        return proc

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()


def start_server(store: str, log_path: Path, *extra: str) -> Served:
    """Start ``amq broker serve --port 0`` and wait for its "listening on" line."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            AMQ_CMD + ["broker", "serve", "--port", "0", "--url", f"local:{store}", *extra],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise AssertionError(f"no 'listening on' line: {line!r}\n{log_path.read_text()}")
    address = line.split()[-1]
    host, port = address.rsplit(":", 1)
    return Served(proc, host.strip("[]"), int(port), store, log_path, list(extra))


@dataclass
class Target:
    """Where a test connects: the served local broker or the real RabbitMQ."""

    kind: str
    host: str
    port: int

    def params(self, **kwargs: Any) -> Any:
        import pika
        return pika.ConnectionParameters(
            self.host, self.port, credentials=pika.PlainCredentials("guest", "guest"),
            **kwargs)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses on the shared RabbitMQ."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


PYTHON = sys.executable
