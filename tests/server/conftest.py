"""Fixtures for the server tests: ``amq broker serve`` as a real process on port 0.

``served`` starts a server on a fresh store (``--url local:<tmp>/amq.db``), reads its port
from its first stdout line, and stops it with SIGTERM after the test, checking that it
exited cleanly and logged no traceback. ``broker`` runs a test against a served store and
against the RabbitMQ on this machine, for the flows that must behave the same on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import (
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    Served,
    Target,
    require_rabbitmq,
    start_server,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log")
    yield server
    code = server.stop()
    log = server.log()
    assert "Traceback" not in log, log
    assert code == 0, f"server exited {code}\n{log}"


@pytest.fixture(params=["served", "rabbitmq"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The same flow against ``amq broker serve`` and against RabbitMQ: both must pass."""
    if request.param == "rabbitmq":
        require_rabbitmq()
        yield Target("rabbitmq", RABBITMQ_HOST, RABBITMQ_PORT)
        return
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log")
    try:
        yield Target("served", server.host, server.port)
    finally:
        code = server.stop()
        log = server.log()
    assert "Traceback" not in log, log
    assert code == 0, f"server exited {code}\n{log}"


