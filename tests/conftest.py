"""Test harness: run `amq` as a real process against each broker, with unique names.

The ``amq`` fixture runs the command line in a subprocess (as users do: separate
processes sharing a broker) and fails the test on an unexpected exit code, showing
stderr. Every behaviour test takes ``amq`` and so runs against each broker in
``BROKERS``; names come from ``name()`` so tests never collide on a shared RabbitMQ.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

AMQ_EXE = shutil.which("amq")
AMQ_CMD = [AMQ_EXE] if AMQ_EXE else [sys.executable, "-m", "amqcli"]

# The brokers every behaviour test runs against.
BROKERS = ["local"]


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]


@dataclass
class Amq:
    """Runs ``amq`` against one broker."""

    broker: str
    url: str
    declared_queues: set[str] = field(default_factory=set)
    declared_exchanges: set[str] = field(default_factory=set)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, AMQ_URL=self.url, PYTHONUNBUFFERED="1")
        env.pop("COLUMNS", None)
        env.update(extra)
        return env

    def __call__(self, *args: str, input: bytes | str | None = b"", expect: int | None = 0,
                 timeout: float = 60, env: dict[str, str] | None = None) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            AMQ_CMD + list(args), input=data, capture_output=True, timeout=timeout,
            env=env or self.env())
        result = Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
        assert "Traceback" not in result.stderr, result.stderr
        if expect is not None:
            assert result.code == expect, (
                f"amq {' '.join(args)} exited {result.code}, expected {expect}\n"
                f"stderr: {result.stderr}\nstdout: {result.out[:2000]}")
        return result

    def popen(self, *args: str, stdout: Any = subprocess.PIPE, stdin: Any = subprocess.DEVNULL,
              stderr: Any = subprocess.PIPE, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(AMQ_CMD + list(args), stdout=stdout, stdin=stdin,
                                stderr=stderr, env=kwargs.pop("env", None) or self.env(),
                                **kwargs)

    def queue(self, name: str) -> dict[str, Any] | None:
        """The queue as ``amq list queues --format json`` shows it, or None."""
        for q in self("list", "queues", "--format", "json").json_lines()[0]:
            if q["name"] == name:
                return q
        return None

    def queue_names(self) -> list[str]:
        return [q["name"] for q in self("list", "queues", "--format", "json").json_lines()[0]]

    def wait_for(self, check: Callable[[], Any], timeout: float = 15,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_for_consumers(self, queue: str, count: int = 1) -> None:
        self.wait_for(lambda: (q := self.queue(queue)) and q["consumers"] >= count,
                      what=f"{count} consumer(s) on {queue}")


@pytest.fixture(params=BROKERS)
def amq(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Amq]:
    """``amq`` bound to a fresh local store (or, with issue 3, to the shared RabbitMQ)."""
    if request.param == "local":
        yield Amq("local", f"local:{tmp_path}/amq.db")
    else:  # pragma: no cover - added with the RabbitMQ backend
        raise NotImplementedError(request.param)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique names for queues and exchanges: ``name("q")`` -> ``q-test_x-1a2b3c4d``."""
    test = request.node.name.split("[")[0][:40]

    def make(prefix: str = "q") -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"
    return make


def kill_and_reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
