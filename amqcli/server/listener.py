"""The listening socket and the server's lifetime: start, serve, stop cleanly.

``Server.start`` binds (``port=0`` picks a free port; ``listening`` then says which; the
plain port may be None when a ``tls.TlsListener`` serves TLS on its own port), and
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
import ssl
from dataclasses import dataclass
from typing import Any

from .. import __version__, errors
from ..broker.engine import Broker
from .acktimeout import DEFAULT as DEFAULT_CONSUMER_TIMEOUT
from .acktimeout import AckTimeout
from .alarm import DEFAULT_LIMIT as DEFAULT_DISK_FREE_LIMIT
from .alarm import DiskAlarm
from .auth import FAILURE_DELAY, FailureLog, Users
from .connection import CHANNEL_MAX, AMQPConnection
from .replyto import ReplyTo
from .tls import TlsListener
from .vhosts import Hosts

log = logging.getLogger("amq.server")

STOP_GRACE = 2.0  # seconds for clients to answer connection.close on shutdown


@dataclass(frozen=True)
class Listening:
    """An address the server listens on, and whether it speaks TLS there."""

    host: str
    port: int
    tls: bool = False


class Server:
    def __init__(self, broker: Broker, users: Users, host: str = "127.0.0.1",
                 port: int | None = 5672,
                 consumer_timeout: float | None = DEFAULT_CONSUMER_TIMEOUT,
                 tls: TlsListener | None = None,
                 login_failure_delay: float = FAILURE_DELAY,
                 max_connections: int | None = None,
                 max_channels: int = CHANNEL_MAX,
                 disk_free_limit: int = DEFAULT_DISK_FREE_LIMIT) -> None:
        self.broker = broker
        self.users = users
        self.failed_logins = FailureLog()
        self.login_failure_delay = login_failure_delay
        self.max_connections = max_connections  # None: no limit (RabbitMQ's default)
        self.max_channels = max_channels  # the channel_max of connection.tune
        self.alarm = DiskAlarm(broker.store.path if broker.store.path != ":memory:" else None,
                               disk_free_limit)
        self.host, self.port, self.tls = host, port, tls
        self.listening: list[Listening] = []
        self.hosts = Hosts(broker)  # the vhosts served, each with its turn and dispatcher
        self.reply_to = ReplyTo()
        self.ack_timeout = AckTimeout(consumer_timeout)
        self.connections: set[AMQPConnection] = set()
        self._servers: list[asyncio.base_events.Server] = []
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
        """Listen (the plain port, then the TLS one); the first address bound.
        ``errors.CannotListen`` if a port is taken."""
        ports: list[tuple[int, ssl.SSLContext | None]] = \
            [(self.port, None)] if self.port is not None else []
        if self.tls is not None:
            ports.append((self.tls.port, self.tls.context))
        for port, context in ports:
            self.listening.append(await self._listen(port, context))
        self._stopped = asyncio.Event()
        self.hosts.start()
        self.alarm.start(self.connections)
        first = self.listening[0]
        return first.host, first.port

    async def _listen(self, port: int, context: ssl.SSLContext | None) -> Listening:
        loop = asyncio.get_running_loop()
        host = self.host
        if port == 0:  # one address, so that "the" port is one port
            infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
            host = str(infos[0][4][0]) if infos else host
        try:
            server = await loop.create_server(
                lambda: AMQPConnection(self), host, port, reuse_address=True, ssl=context)
        except OSError as err:
            for earlier in self._servers:
                earlier.close()
            raise _listen_error(self.host, port, err) from err
        self._servers.append(server)
        address = server.sockets[0].getsockname()
        return Listening(address[0], address[1], context is not None)

    async def run(self) -> None:
        """Serve until ``stop``; then close every connection and the store."""
        assert self._servers and self._stopped is not None
        await self._stopped.wait()
        for server in self._servers:
            server.close()
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
        self.alarm.stop()
        self.hosts.stop()
        self.hosts.close()

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
