"""A TCP proxy that misbehaves on command, for tests of clients that must survive a bad
network: between a client and a broker (RabbitMQ, ``amq broker serve``), it forwards bytes
both ways, and on command cuts connections, stalls or slows them.

It runs its own asyncio loop on a daemon thread, so the same proxy serves a test that
runs ``amq`` processes (synchronous) and one that runs an asyncio client; every command
is safe to call from any thread and applies to open connections and to later ones.

    with FaultProxy("127.0.0.1", 5672) as proxy:        # listens on 127.0.0.1, port 0
        url = proxy.url("amqp://guest:guest@127.0.0.1:5672/%2F")  # the same, via the proxy
        proxy.cut_after(300, grow=2)   # cut each connection after 300 bytes of traffic;
                                       # after each cut the allowance doubles
        proxy.cut()                    # cut every open connection now
        proxy.stall()                  # hold all traffic (connections stay open) ...
        proxy.resume()                 # ... and let it flow again, held bytes first
        proxy.slow(10_000)             # at most 10,000 bytes/s each way, per connection
        proxy.heal()                   # no more faults
        proxy.stats                    # connections, cuts, bytes up and down so far

A cut aborts both sockets (the peers see a reset, as when a network path dies), after
forwarding exactly the bytes allowed: with ``cut_after(300)`` the 301st byte is never
delivered. ``direction`` limits what counts: ``"down"`` (broker to client), ``"up"``
(client to broker) or ``"both"``.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Self

CHUNK = 65536
DIRECTIONS = ("up", "down", "both")


@dataclass
class Stats:
    connections: int = 0  # accepted so far
    cuts: int = 0  # connections cut by a fault (not closed by a peer)
    up: int = 0  # bytes forwarded client -> broker
    down: int = 0  # bytes forwarded broker -> client


@dataclass
class _CutPolicy:
    limit: float
    direction: str
    grow: float
    delay: float


class _Link:
    """One proxied connection: the client's socket and the broker's."""

    def __init__(self, client: asyncio.StreamWriter, broker: asyncio.StreamWriter) -> None:
        self.client, self.broker = client, broker
        self.counted = 0  # bytes that count towards the cut policy
        self.doomed = False  # the cut policy has reached its limit here
        self.cut = False

    def abort(self) -> None:
        for writer in (self.client, self.broker):
            writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.stats = Stats()
        self._policy: _CutPolicy | None = None
        self._rate: int | None = None  # bytes per second, per direction and connection
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy",
                                        daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._flowing: asyncio.Event | None = None

    # --- lifetime ---------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def url(self, url: str) -> str:
        """``url`` (amqp://user:pass@host:port/vhost?query) with the proxy's host and port."""
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.host}:{self.port}" if userinfo else \
            f"{self.host}:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    # --- commands -----------------------------------------------------------------------

    def cut_after(self, nbytes: int, *, direction: str = "both", grow: float = 1.0,
                  delay: float | None = None) -> None:
        """Cut each connection once ``nbytes`` of its traffic (in ``direction``) have been
        forwarded; after each cut, the allowance is multiplied by ``grow``. With ``delay``
        (seconds), traffic goes on flowing from the moment the allowance is reached until
        the cut, that long after (the chunk that reached it is forwarded whole)."""
        if direction not in DIRECTIONS or nbytes < 0 or grow < 1 or (delay or 0) < 0:
            raise ValueError(f"cut_after({nbytes}, direction={direction!r}, grow={grow}, "
                             f"delay={delay})")
        self._policy = _CutPolicy(float(nbytes), direction, grow, delay)

    def cut(self) -> int:
        """Cut every open connection now; how many there were."""
        return self._call(self._cut_all())

    def stall(self) -> None:
        """Hold all traffic, both ways, until ``resume``; connections stay open."""
        self._loop.call_soon_threadsafe(self._stalled().clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._stalled().set)

    def slow(self, bytes_per_second: int | None) -> None:
        """Forward at most ``bytes_per_second`` each way per connection (None: full speed)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError(f"slow({bytes_per_second})")
        self._rate = bytes_per_second

    def heal(self) -> None:
        """No cutting, stalling or slowing from now on."""
        self._policy = None
        self._rate = None
        self.resume()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # --- the loop's side ----------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _stalled(self) -> asyncio.Event:
        assert self._flowing is not None
        return self._flowing

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all(count=False)

    async def _cut_all(self, count: bool = True) -> int:
        links = list(self._links)
        for link in links:
            self._cut(link, count)
        return len(links)

    def _cut(self, link: _Link, count: bool = True) -> None:
        if link.cut:
            return
        link.cut = True
        if count:
            self.stats.cuts += 1
        link.abort()
        self._links.discard(link)

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        link = _Link(client_writer, broker_writer)
        self._links.add(link)
        await asyncio.gather(self._pump(link, client_reader, broker_writer, "up"),
                             self._pump(link, broker_reader, client_writer, "down"))
        self._links.discard(link)

    async def _pump(self, link: _Link, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, direction: str) -> None:
        try:
            while not link.cut:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._stalled().wait()
                if not await self._forward(link, data, writer, direction):
                    return
        except (ConnectionError, OSError):
            pass
        if not link.cut:  # a peer closed its side: close the other side after what it sent
            link.cut = True
            self._links.discard(link)
            for w in (link.client, link.broker):
                if not w.transport.is_closing():
                    w.close()

    async def _forward(self, link: _Link, data: bytes, writer: asyncio.StreamWriter,
                       direction: str) -> bool:
        """Forward ``data`` within the faults in force; False once the link is cut."""
        policy = self._policy
        if policy is not None and (link.doomed or policy.direction not in (direction, "both")):
            policy = None  # this link's cut is already on its way, or this way is free
        allowed = len(data)
        if policy is not None and policy.delay is None:
            allowed = max(0, min(allowed, int(policy.limit) - link.counted))
        sent = 0
        while sent < allowed and not link.cut:
            rate = self._rate
            piece = allowed - sent if rate is None else max(1, min(allowed - sent, rate // 20))
            setattr(self.stats, direction, getattr(self.stats, direction) + piece)
            writer.write(data[sent:sent + piece])
            sent += piece
            await writer.drain()
            if rate is not None:
                await asyncio.sleep(piece / rate)
        if policy is not None:
            link.counted += sent
            if sent < len(data) or link.counted >= policy.limit:
                policy.limit *= policy.grow
                link.doomed = True
                if policy.delay is not None:
                    asyncio.get_running_loop().call_later(policy.delay, self._cut, link)
                    return not link.cut
                await _flushed(writer)  # the bytes allowed reach the peer, then the cut
                self._cut(link)
                return False
        return not link.cut


async def _flushed(writer: asyncio.StreamWriter, most: float = 2.0) -> None:
    """Wait (up to ``most`` seconds) until the transport has handed its buffer to the
    kernel."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + most
    while writer.transport.get_write_buffer_size() and loop.time() < deadline:
        await asyncio.sleep(0.001)
