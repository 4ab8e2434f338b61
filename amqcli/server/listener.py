"""The listening socket and the server's lifetime: start, serve, stop cleanly.

``Server.start`` binds (``port=0`` picks a free port; ``address`` then says which), and
``run`` serves until ``stop`` is called (the CLI calls it on Ctrl+C and SIGTERM). Stopping
closes the listening socket, sends every client ``connection.close`` 320
CONNECTION_FORCED as RabbitMQ does on shutdown, requeues what they held unacked, gives
them a moment to answer, and closes the store. ``consumer_timeout`` (seconds, None: off)
is RabbitMQ's limit on how long a client may hold a delivery unacknowledged
(``acktimeout``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import platform
import socket
from typing import Any

from .. import __version__, errors
from ..broker.engine import Broker
from .acktimeout import DEFAULT as DEFAULT_CONSUMER_TIMEOUT
from .acktimeout import AckTimeout
from .auth import Users
from .connection import AMQPConnection
from .dispatch import Dispatcher
from .replyto import ReplyTo
from .turn import Turn

log = logging.getLogger("amq.server")

STOP_GRACE = 2.0  # seconds for clients to answer connection.close on shutdown


class Server:
    def __init__(self, broker: Broker, users: Users, host: str = "127.0.0.1",
                 port: int = 5672,
                 consumer_timeout: float | None = DEFAULT_CONSUMER_TIMEOUT) -> None:
        self.broker = broker
        self.users = users
        self.host, self.port = host, port
        self.turn = Turn(broker.store)
        self.dispatcher = Dispatcher(broker, self.turn)
        self.reply_to = ReplyTo()
        self.ack_timeout = AckTimeout(consumer_timeout)
        self.connections: set[AMQPConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._stopped: asyncio.Event | None = None

    def properties(self) -> dict[str, Any]:
        """The server-properties of ``connection.start``: RabbitMQ's capabilities table."""
        from .connection import CAPABILITIES
        return {
            "capabilities": dict(CAPABILITIES),
            "cluster_name": f"amq@{socket.gethostname()}",
            "copyright": "amq: the AMQP 0-9-1 toolkit",
            "information": "amq broker serve: the amq local broker over AMQP 0-9-1",
            "platform": f"Python {platform.python_version()}",
            "product": "amq",
            "version": __version__,
        }

    async def start(self) -> tuple[str, int]:
        """Listen; the address bound. ``errors.CannotListen`` if the port is taken."""
        loop = asyncio.get_running_loop()
        host = self.host
        if self.port == 0:  # one address, so that "the" port is one port
            infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
            host = str(infos[0][4][0]) if infos else host
        try:
            self._server = await loop.create_server(
                lambda: AMQPConnection(self), host, self.port, reuse_address=True)
        except OSError as err:
            raise _listen_error(self.host, self.port, err) from err
        self._stopped = asyncio.Event()
        self.dispatcher.start()
        address = self._server.sockets[0].getsockname()
        return address[0], address[1]

    async def run(self) -> None:
        """Serve until ``stop``; then close every connection and the store."""
        assert self._server is not None and self._stopped is not None
        await self._stopped.wait()
        self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)
        self.ack_timeout.stop()
        self.dispatcher.stop()
        self.turn.close()
        self.broker.close()

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()


def _listen_error(host: str, port: int, err: OSError) -> errors.AmqError:
    where = f"{host}:{port}"
    if err.errno == errno.EADDRINUSE:
        return errors.CannotListen(
            f"cannot listen on {where}: the address is already in use",
            hint="is RabbitMQ or another broker running there? Stop it, or pick another "
                 "port with --port")
    if err.errno == errno.EACCES:
        return errors.CannotListen(f"cannot listen on {where}: permission denied",
                                   hint="ports below 1024 need privileges; use --port")
    return errors.CannotListen(f"cannot listen on {where}: {err.strerror or err}")
