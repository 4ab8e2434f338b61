"""The ``backend`` fixture of the contract suite: the Backend protocol's promises
(``amqcli/backends/base.py``) checked in-process, once against ``LocalBackend`` on a fresh
store and once against ``RabbitMQBackend`` on the test RabbitMQ (this run's vhost).

As huey's ``StorageTests``: one set of tests, one fixture per implementation. What differs
between the brokers on purpose is said by ``backend.caps`` (a ``Caps``), which tests read
instead of asking which broker they run on, or skipping. ``connect()`` opens another
connection to the same broker (for exclusive queues, requeues seen from outside), closed
after the test; ``name()`` gives unique names, deleted from RabbitMQ after the test.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    REQUIRE_RABBITMQ,
    _cleaner,
    management_problem,
    rabbitmq_problem,
    rabbitmq_url,
    unique_names,
)

from amqcli.backends.base import Backend
from amqcli.config import parse_url


@dataclass(frozen=True)
class Caps:
    """What one broker can do that the other cannot, deliberately (README)."""

    management: bool  # listing and route work (RabbitMQ: through its management API)
    bytes_routing_keys: bool  # routing keys that are not UTF-8 (RabbitMQ takes any bytes)
    vhost: str  # the vhost error texts name


def _open(kind: str, store: Path) -> Backend:
    if kind == "local":
        from amqcli.backends.local import LocalBackend
        return LocalBackend(str(store))
    from amqcli.backends.rabbitmq import RabbitMQBackend
    return RabbitMQBackend(parse_url(rabbitmq_url()))


def _caps(kind: str, request: pytest.FixtureRequest) -> Caps:
    if kind == "local":
        return Caps(management=True, bytes_routing_keys=False, vhost="/")
    problem = rabbitmq_problem() or management_problem()
    if problem and REQUIRE_RABBITMQ:
        pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
    if rabbitmq_problem():
        pytest.skip(problem or "")
    if problem and request.node.get_closest_marker("management"):
        pytest.skip(problem)  # a machine without the API: the test cannot say anything
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(rabbitmq_url()).path[1:]) or "/"
    return Caps(management=problem is None, bytes_routing_keys=True,
                vhost=vhost)


@dataclass
class Opened:
    """The backends a test opened and the names it made (cleaned up after it)."""

    kind: str
    store: Path
    backends: list[Backend]
    names: set[str]


@pytest.fixture(scope="function")
def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    kind = request.node.callspec.params["backend"]
    opened = Opened(kind, tmp_path / "amq.db", [], set())
    yield opened
    for b in reversed(opened.backends):
        b.close()
    if kind == "rabbitmq" and opened.names:
        _cleaner.delete(sorted(opened.names))


@pytest.fixture(params=["local", "rabbitmq"])
def backend(request: pytest.FixtureRequest, _opened: Opened) -> Backend:
    """The Backend under test, with ``caps``: what this broker can do."""
    caps = _caps(request.param, request)
    b = _open(request.param, _opened.store)
    b.caps = caps  # type: ignore[attr-defined]
    _opened.backends.append(b)
    return b


@pytest.fixture
def connect(backend: Backend, _opened: Opened) -> Callable[[], Backend]:
    """Open another connection to the broker under test (closed after the test)."""
    def make() -> Backend:
        b = _open(_opened.kind, _opened.store)
        _opened.backends.append(b)
        return b
    return make


@pytest.fixture
def name(request: pytest.FixtureRequest, backend: Backend,
         _opened: Opened) -> Callable[[str], str]:
    """Unique names: ``name("x")`` -> ``x-test_y-1a2b3c4d``."""
    return unique_names(request, _opened.names)


def ready(backend: Backend, queue: str) -> int:
    """The queue's ready messages (a passive declare: no management API needed)."""
    return backend.declare_queue(queue, passive=True).message_count


def consumers(backend: Backend, queue: str) -> int:
    return backend.declare_queue(queue, passive=True).consumer_count


def drain(sub: Any, most: int = 1000, timeout: float = 0.3) -> list[Any]:
    """Every delivery a subscription gets until none comes for ``timeout`` seconds."""
    got: list[Any] = []
    while len(got) < most:
        batch = sub.fetch(most - len(got), timeout)
        if not batch:
            return got
        got += batch
    return got
