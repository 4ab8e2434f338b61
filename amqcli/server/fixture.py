"""A real AMQP broker for tests: ``amq broker serve`` on a store in memory, in a thread.

pytest loads this module through the package's ``pytest11`` entry point (``amq``). At
that point it imports only pytest and the standard library; the server is imported when
a test first asks for a fixture, so a suite that never does pays nothing. ``amq_broker``
is a fresh server for one test, ``amq_broker_session`` one shared by the whole session;
each is a ``Running`` (``url``, ``host``, ``port``) on a free port of 127.0.0.1, stopped
after. ``InThread`` is the same outside pytest (``with InThread() as running: ...``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .listener import Server

START_TIMEOUT = 30.0  # seconds for the server to listen (a loaded CI machine)
STOP_TIMEOUT = 15.0  # seconds for it to close its clients and its store


@dataclass(frozen=True)
class Running:
    """Where a started server listens, and a login it accepts."""

    host: str
    port: int
    user: str = "guest"
    password: str = "guest"

    @property
    def url(self) -> str:
        """An ``amqp://`` URL of the default vhost, for pika, kombu, Celery, ``amq --url``."""
        return self.url_of("/")

    def url_of(self, vhost: str) -> str:
        """The URL of another vhost (one the server was started with: ``InThread(vhosts=)``)."""
        from urllib.parse import quote
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://{self.user}:{self.password}@{host}:{self.port}/{quote(vhost, safe='')}"


class InThread:
    """A server on a fresh store in memory, run by its own event loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 vhosts: tuple[str, ...] = ()) -> None:
        self.host, self.port = host, port
        self.vhosts = vhosts  # besides '/'; each empty
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._ready = threading.Event()
        self._address: tuple[str, int] | None = None
        self._failure: BaseException | None = None

    def start(self) -> Running:
        self._thread = threading.Thread(target=self._main, name="amq-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"amq broker: not listening after {START_TIMEOUT:g} s")
        if self._failure is not None:
            raise self._failure
        assert self._address is not None
        return Running(*self._address)

    def stop(self) -> None:
        """Stop as on SIGTERM (clients get 320 CONNECTION_FORCED) and wait for the thread."""
        if self._loop is not None and self._server is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._server.stop)
            except RuntimeError:  # the loop closed in between: already stopped
                pass
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"amq broker: not stopped after {STOP_TIMEOUT:g} s")
        if self._failure is not None and self._ready.is_set() and self._address is not None:
            raise self._failure

    def __enter__(self) -> Running:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            self._failure = err
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from ..broker.engine import Broker
        from .auth import Users
        from .listener import Server
        self._loop = asyncio.get_running_loop()
        server = Server(Broker(None), Users(), self.host, self.port)
        for vhost in self.vhosts:
            server.hosts.ensure(vhost)
        self._address = await server.start()
        self._server = server
        self._ready.set()
        await server.run()


@pytest.fixture
def amq_broker() -> Iterator[Running]:
    """A fresh amq broker for this test, on a free port (``amq_broker.url``)."""
    with InThread() as running:
        yield running


@pytest.fixture(scope="session")
def amq_broker_session() -> Iterator[Running]:
    """One amq broker for the whole session: tests share its queues."""
    with InThread() as running:
        yield running
