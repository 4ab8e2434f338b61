"""One served AMQP connection: the handshake, its channels, heartbeats, and errors sent as
``channel.close``/``connection.close`` with RabbitMQ's codes and texts.

An ``asyncio.Protocol`` rather than a task reading a stream: frames are handled in
``data_received`` as they arrive, with no ``await`` between reading and handling, so the
frames of one read are handled in one go: the messages published in them reach the engine
in one call per channel and exchange (``flush``), their acks in one write
(``flush_acks``), all inside the loop turn's one transaction (``turn.Turn``), whose
output is sent once it commits.

Engine calls run inline on the event loop, not on a worker thread. Each is a short piece
of SQLite work (microseconds; WAL, ``synchronous=NORMAL``); a worker thread would add a
hand-off per call, and the GIL would serialize its Python anyway; inline calls keep each
connection's frames in order with no queue or lock, and let one transaction span a loop
turn. The cost: while another process holds the store's write lock (a bulk ``amq send``),
the server waits with it, as long as that one transaction lasts.

Each AMQP connection is one engine ``Connection`` (made at ``connection.open``), so the
engine's rules on exclusive queues and unacked deliveries apply per AMQP connection; when
the socket goes, for whatever reason, ``release`` requeues and deletes what it held.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

from .. import errors
from ..amqp.model import PublishOutcome
from . import alarm, auth, frames, replyto
from .channel import Pending, ServerChannel
from .permissions import Grants

if TYPE_CHECKING:
    from ..broker.engine import Connection as EngineConnection
    from .listener import Server

log = logging.getLogger("amq.server")

CHANNEL_MAX = 2047
HEARTBEAT = 60
HANDSHAKE_TIMEOUT = 10.0  # seconds from accept to connection.open, as RabbitMQ
CLOSE_TIMEOUT = 3.0  # seconds to wait for connection.close-ok
PUBLISH_IDS = (60, 40)
CAPABILITIES = {
    "publisher_confirms": True, "exchange_exchange_bindings": True, "basic.nack": True,
    "consumer_cancel_notify": True, "connection.blocked": True, "consumer_priorities": True,
    "authentication_failure_close": True, "per_consumer_qos": True, "direct_reply_to": True,
}


class State(enum.IntEnum):
    HEADER = 0  # waiting for the protocol header
    START = 1  # connection.start sent
    TUNE = 2  # connection.tune sent
    OPENING = 3  # tune-ok received, waiting for connection.open
    OPEN = 4
    CLOSING = 5  # connection.close sent or received
    CLOSED = 6


class AMQPConnection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.host = server.hosts.default  # the vhost served, from connection.open on
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.state = State.HEADER
        self.peer = "?"
        self.name = "?"
        self.user = ""
        self.grants: Grants | None = None  # what the user may do, from connection.open on
        self.refusing = False  # a refused login waits out its delay: input is dropped
        self.told_blocked = False  # sent connection.blocked (the disk alarm)
        self.published_blocked = False  # published during the alarm: not read until it ends
        self.client_properties: dict[str, Any] = {}
        self.frame_max = frames.FRAME_MAX
        self.channel_max = CHANNEL_MAX
        self.heartbeat = 0
        self.channels: dict[int, ServerChannel] = {}
        self._engine: EngineConnection | None = None  # from connection.open on
        self.pending: list[Pending] = []  # completed publishes not yet given to the engine
        self.acked: set[ServerChannel] = set()  # channels with lazy acks to write
        self.context: base.Frame | None = None  # the method being handled, for error replies
        self.paused = False
        self.wrote = False
        self.last_read = self.loop.time()
        self._timers: list[asyncio.TimerHandle] = []
        self._released = False
        self._close_after_send = False

    # --- asyncio.Protocol -------------------------------------------------------------

    @property
    def engine(self) -> EngineConnection:
        """The engine ``Connection`` of this AMQP connection: made at ``connection.open``,
        before which the handshake lets no method reach a channel or the engine."""
        if self._engine is None:
            raise errors.CommandInvalid("connection.open has not been received")
        return self._engine

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.peer = peer[0]
        self.name = f"{_address(peer)} -> {_address(sock)}"
        log.info("accepting AMQP connection %s", self.name)
        self._later(HANDSHAKE_TIMEOUT, self._handshake_timeout)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state < State.CLOSING and self.state >= State.OPEN:
            log.warning("client unexpectedly closed TCP connection %s", self.name)
        self.state = State.CLOSED
        for timer in self._timers:
            timer.cancel()
        self.release()
        self.server.connections.discard(self)
        self.host.connections.discard(self)
        log.info("closed AMQP connection %s", self.name)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.host.dispatcher.wake()

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        if self.state == State.CLOSED or self.refusing:
            return
        buffer = self.buffer
        buffer += data
        if self.state == State.HEADER and not self._protocol_header():
            return
        found, used, error = frames.read_frames(buffer, self.frame_max)
        del buffer[:used]
        if found and self.state >= State.OPENING and not frames.only_acks(found):
            try:
                self.host.turn.begin(self)
            except Exception as err:  # noqa: BLE001 - the store is unusable
                self.internal_error(err)
                return
        for frame in found:
            if self.state >= State.CLOSING:
                self._closing_frame(frame)
            else:
                self._frame(frame)
        if self.state == State.OPEN:
            try:
                self.flush()
                self.flush_acks()
            except Exception as err:  # noqa: BLE001 - the store failed, not the client
                self.internal_error(err)
            if self.published_blocked and self.transport is not None:
                self.server.alarm.held.add(self)
                self.transport.pause_reading()
        if error is not None and self.state < State.CLOSING:
            self.fail(None, error, (0, 0))

    # --- frames -----------------------------------------------------------------------

    def _protocol_header(self) -> bool:
        """Check the 8-byte protocol header; True once it is there and right."""
        if len(self.buffer) < 8:
            if frames.PROTOCOL_HEADER.startswith(bytes(self.buffer)):
                return False
        elif self.buffer[:8] == frames.PROTOCOL_HEADER:
            del self.buffer[:8]
            self.state = State.START
            self.write(frames.method_frame(C.Connection.Start(
                0, 9, self.server.properties(), " ".join(auth.MECHANISMS), "en_US"), 0))
            return True
        log.warning("closing %s: not AMQP 0-9-1 (protocol header %s)", self.name,
                    frames.octets(bytes(self.buffer[:8])))
        self.write(frames.PROTOCOL_HEADER)  # the version the server speaks, as the spec says
        self._close_transport()
        return False

    def _frame(self, frame: frames.Frame) -> None:
        self.context = None
        channel = None
        try:
            if frame.type == frames.FRAME_HEARTBEAT:
                if frame.channel:
                    raise errors.UnexpectedFrame("type 8, all octets = <<>>")
            elif self.state < State.OPEN:
                self._handshake(frame)
            elif frame.channel == 0:
                self._channel0(frame)
            else:
                channel = self.channels.get(frame.channel)
                if channel is None:
                    self._open_channel(frame)
                elif channel.closing:
                    channel.handle_closing(frame)
                else:
                    channel.handle(frame)
        except errors.BrokerError as err:
            self.context = getattr(err, "method", self.context)
            self.fail(channel, err)
        except frames.UnknownMethod as err:
            self.fail(channel, errors.CommandInvalid("unimplemented method"),
                      (err.class_id, err.method_id))
        except errors.UsageError as err:  # from the engine: bad input, not a bug
            self.fail(channel, errors.PreconditionFailed(str(err)))
        except Exception as err:  # noqa: BLE001 - a bug: reported as 541, logged
            self.internal_error(err)

    def internal_error(self, err: Exception) -> None:
        """A bug, or the store failing: 541 INTERNAL_ERROR, the connection closes (and
        the turn's transaction is rolled back: see ``turn``)."""
        log.error("internal error on AMQP connection %s", self.name, exc_info=err)
        self.host.turn.fail(err)
        self.fail(None, errors.InternalError(f"{type(err).__name__}: {err}"))

    def abandon(self) -> None:
        """Drop the connection after its turn was rolled back."""
        log.warning("dropping AMQP connection %s: its work could not be stored", self.name)
        self.state = State.CLOSING
        self.release()
        if self.transport is not None:
            self.transport.abort()

    def _channel0(self, frame: frames.Frame) -> None:
        if frame.type != frames.FRAME_METHOD:
            raise errors.UnexpectedFrame(
                f"type {frame.type}, all octets = {frames.octets(frame.payload)}")
        method = self.context = frames.decode_method(frame.payload)
        self.flush()  # what was published before connection.close stands
        handler = CONNECTION_HANDLERS.get(type(method))
        if handler is None:
            raise errors.ChannelError("unexpected method in connection state running")
        handler(self, method)

    def _open_channel(self, frame: frames.Frame) -> None:
        if frame.type == frames.FRAME_METHOD:
            method = self.context = frames.decode_method(frame.payload)
            if isinstance(method, C.Channel.Open):
                if len(self.channels) >= self.channel_max:
                    self.context = None
                    raise errors.NotAllowed(
                        f"number of channels opened ({len(self.channels)}) has reached the "
                        f"negotiated channel_max ({self.channel_max})")
                channel = self.channels[frame.channel] = ServerChannel(self, frame.channel)
                channel.send(frames.build(C.Channel.OpenOk, ""))
                return
        raise errors.ChannelError("expected 'channel.open'")

    def _closing_frame(self, frame: frames.Frame) -> None:
        """After connection.close: only close and close-ok on channel 0 count."""
        if frame.channel or frame.type != frames.FRAME_METHOD:
            return
        try:
            method = frames.decode_method(frame.payload)
        except (errors.BrokerError, frames.UnknownMethod):
            return
        if isinstance(method, C.Connection.Close):
            self.write(frames.method_frame(C.Connection.CloseOk(), 0))
        if isinstance(method, (C.Connection.Close, C.Connection.CloseOk)):
            self._close_transport()

    def forget_channel(self, channel: ServerChannel) -> None:
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]

    # --- handshake --------------------------------------------------------------------

    def _handshake(self, frame: frames.Frame) -> None:
        expected, handler = HANDSHAKE[self.state]
        method = None
        if frame.channel == 0 and frame.type == frames.FRAME_METHOD:
            try:
                method = frames.decode_method(frame.payload)
            except (errors.BrokerError, frames.UnknownMethod):
                method = None
        if not isinstance(method, expected):
            got = getattr(method, "name", f"a frame of type {frame.type}")
            log.warning("closing %s: handshake error, expected %s, got %s", self.name,
                        expected.__qualname__, got)
            self._close_transport()
            return
        self.context = method
        handler(self, method)

    def _start_ok(self, m: C.Connection.StartOk) -> None:
        self.client_properties = m.client_properties or {}
        try:
            self.user = self.server.users.check(m.mechanism, m.response, self.peer)
        except auth.LoginRefused as why:
            left_out = self.server.failed_logins.note(self.peer)
            if left_out is not None:
                log.warning("closing %s: %s login refused: %s%s", self.name, m.mechanism,
                            why, f" ({left_out} more refused from {self.peer} since the "
                            "last line)" if left_out else "")
            self.refusing = True  # answered after a delay, to slow password guessing
            self._later(self.server.login_failure_delay, lambda: self._refuse(m.mechanism))
            return
        self.state = State.TUNE
        self.write(frames.method_frame(
            C.Connection.Tune(self.server.max_channels, frames.FRAME_MAX, HEARTBEAT), 0))

    def _refuse(self, mechanism: str) -> None:
        self.refusing = False
        if mechanism not in auth.MECHANISMS or \
                not self.capability("authentication_failure_close"):
            self._close_transport()
            return
        self.fail(None, errors.LoginRefused(
            f"Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile."), (0, 0))

    def _tune_ok(self, m: C.Connection.TuneOk) -> None:
        for field, low, high, value in (
                ("frame_max", frames.FRAME_MIN_SIZE, frames.FRAME_MAX, m.frame_max),
                ("channel_max", 1, self.server.max_channels, m.channel_max)):
            if value and value < low:
                raise errors.NotAllowed(f"negotiated {field} = {value} is lower than the "
                                        f"minimum allowed value ({low})")
            if value == 0 or value > high:
                raise errors.NotAllowed(f"negotiated {field} = {value} is higher than the "
                                        f"maximum allowed value ({high})")
        self.frame_max, self.channel_max, self.heartbeat = m.frame_max, m.channel_max, \
            m.heartbeat
        self.state = State.OPENING
        if self.heartbeat:
            self._later(self.heartbeat / 2, self._heartbeat)

    def _open(self, m: C.Connection.Open) -> None:
        vhost = m.virtual_host
        host = self.server.hosts.get(vhost)  # 530 "vhost x not found" if there is none
        permission = self.server.users.permission(self.user, vhost)
        if permission is None:
            raise errors.NotAllowed(f"access to vhost '{vhost}' refused for user "
                                    f"'{self.user}'")
        most = self.server.max_connections
        if most is not None and sum(c.state == State.OPEN for c in self.server.connections) \
                >= most:
            raise errors.NotAllowed(f"access to vhost '{vhost}' refused for user "
                                    f"'{self.user}': connection limit ({most}) is reached")
        self.grants = Grants(self.user, permission, vhost)
        if host is not self.host:
            self.host = host
            host.turn.begin(self)  # what follows in this read joins that vhost's turn
        host.connections.add(self)
        # The server sweeps for dead connections on its own schedule, not per login.
        self._engine = host.broker.connect(f"amqp {self.name} user {self.user}", sweep=False)
        self.state = State.OPEN
        self.write(frames.method_frame(frames.build(C.Connection.OpenOk, ""), 0))
        if self.server.alarm.on:
            self.alarm_changed(True)
        log.info("connection %s: user '%s' authenticated and granted access to vhost '%s'",
                 self.name, self.user, vhost)

    def forced(self, text: str) -> None:
        """Close the connection with 320 CONNECTION_FORCED and ``text`` (its vhost was
        deleted)."""
        if self.state == State.OPEN:
            self.flush()
            self.close(320, text)
        else:
            self._close_transport()

    def _handshake_timeout(self) -> None:
        if self.state < State.OPEN:
            log.warning("closing %s: handshake timeout", self.name)
            self._close_transport()

    def capability(self, name: str) -> bool:
        caps = self.client_properties.get("capabilities")
        return isinstance(caps, dict) and caps.get(name) is True

    # --- connection methods -----------------------------------------------------------

    def _close(self, m: C.Connection.Close) -> None:
        if m.reply_code not in (0, 200):
            log.info("client closing %s: %s %s", self.name, m.reply_code, m.reply_text)
        self.state = State.CLOSING
        self.release()
        self.write(frames.method_frame(C.Connection.CloseOk(), 0))
        self._close_transport()

    def _update_secret(self, m: C.Connection.UpdateSecret) -> None:
        self.write(frames.method_frame(C.Connection.UpdateSecretOk(), 0))

    # --- publishing and acks ------------------------------------------------------------

    def flush(self) -> None:
        """Give the engine the messages published so far: one call per run of messages
        from one channel to one exchange; then returns and confirms for each run."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        i, n = 0, len(pending)
        while i < n:
            channel, exchange = pending[i].channel, pending[i].message.exchange
            j = i + 1
            while j < n and pending[j].channel is channel and \
                    pending[j].message.exchange == exchange:
                j += 1
            run, i = pending[i:j], j
            if channel.closing or self.state != State.OPEN:
                continue
            try:
                outcomes = self._publish(exchange, run)
            except errors.BrokerError as err:
                self.fail(channel, err, PUBLISH_IDS)
                continue
            channel.routed(run, outcomes)
        self.host.dispatcher.wake()

    def _publish(self, exchange: str, run: list[Pending]) -> list[PublishOutcome]:
        """One engine call for a run; direct reply-to messages bypass the engine."""
        if exchange != "" or not any(replyto.is_reply("", p.message.routing_key)
                                     for p in run):
            return self.engine.publish(exchange, [p.message for p in run])
        outcomes: list[PublishOutcome | None] = []
        stored = []
        for p in run:
            if replyto.is_reply("", p.message.routing_key):
                delivered = self.server.reply_to.deliver(p.message)
                outcomes.append(PublishOutcome.ROUTED if delivered else PublishOutcome.UNROUTABLE)
            else:
                outcomes.append(None)
                stored.append(p.message)
        routed = iter(self.engine.publish(exchange, stored) if stored else [])
        return [next(routed) if o is None else o for o in outcomes]

    def flush_acks(self) -> None:
        """After a read: its acks go to the store with the turn (``Turn.defer_acks``), at
        once where a consumer was full (room for it is news for the dispatch)."""
        if not self.acked:
            return
        turn = self.host.turn
        if any(channel.full for channel in self.acked):
            turn.begin(self)
            self.write_acks()
        else:
            turn.defer_acks(self)

    def write_acks(self) -> None:
        """Write this connection's lazy acks, inside the turn's transaction."""
        room = [channel.flush_acks() for channel in self.acked]
        self.acked.clear()
        if any(room):
            self.host.dispatcher.wake()  # consumers that were full have room again

    # --- errors and closing -----------------------------------------------------------

    def fail(self, channel: ServerChannel | None, err: errors.BrokerError,
             ids: tuple[int, int] | None = None) -> None:
        """Report an error: ``channel.close`` for a soft one on an open channel, else
        ``connection.close`` (before connection.open: the socket just closes)."""
        if self.state >= State.CLOSING:
            return
        err.in_vhost(self.host.name)
        self.flush()  # what was published before the error stands
        if ids is None:
            m = self.context
            ids = (m.index >> 16, m.index & 0xFFFF) if m is not None else (0, 0)
        if channel is not None and not err.hard and self.state == State.OPEN and \
                not channel.closing:
            log.warning("channel error on AMQP connection %s, channel %d: %s", self.name,
                        channel.number, err)
            channel.release()
            channel.closing = True
            channel.send(frames.build(C.Channel.Close, err.reply_code or 541,
                                      _short(err.reply_text), *ids))
            return
        if self.state < State.START:
            self._close_transport()
            return
        if self.state < State.TUNE and err.reply_code != 403:
            log.warning("closing %s: handshake error: %s", self.name, err)
            self._close_transport()
            return
        log.warning("closing AMQP connection %s: %s", self.name, err)
        self.close(err.reply_code or 541, err.reply_text, ids)

    def ack_timed_out(self, channel: ServerChannel, text: str) -> None:
        """A delivery on ``channel`` went unacknowledged too long (``acktimeout``): close
        the channel with 406 and no method, as RabbitMQ does, inside a turn, so that the
        close goes out once the requeue of what the channel held is stored."""
        if self.state != State.OPEN or channel.closing or \
                self.channels.get(channel.number) is not channel:
            return
        try:
            self.host.turn.begin(self)
        except Exception as err:  # noqa: BLE001 - the store is unusable
            self.internal_error(err)
            return
        self.fail(channel, errors.PreconditionFailed(text), (0, 0))

    def close(self, code: int, text: str, ids: tuple[int, int] = (0, 0)) -> None:
        """Send connection.close, release everything, wait a little for close-ok."""
        if self.state >= State.CLOSING:
            return
        self.state = State.CLOSING
        self.write(frames.method_frame(frames.build(C.Connection.Close, code, _short(text),
                                                    *ids), 0))
        self.release()
        self._later(CLOSE_TIMEOUT, self._close_transport)

    def release(self) -> None:
        """Requeue what the connection held, drop its consumers and exclusive queues."""
        if self._released:
            return
        self._released = True
        self.pending.clear()
        for channel in list(self.channels.values()):
            try:
                channel.release()
            except errors.AmqError:
                log.exception("releasing channel %d of %s", channel.number, self.name)
        if self._engine is not None:
            try:
                self._engine.close()
            except errors.AmqError:
                log.exception("releasing AMQP connection %s", self.name)
        self.host.dispatcher.wake()

    def shutdown(self) -> None:
        """The server is stopping: tell the client, as RabbitMQ does."""
        if self.state == State.OPEN:
            self.flush()
            self.close(320, "CONNECTION_FORCED - broker forced connection closure with "
                            "reason 'shutdown'")
        else:
            self._close_transport()

    # --- output and timers ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send, or hold until the turn's transaction commits (see ``turn``)."""
        self.wrote = True
        if not self.host.turn.hold(self, data):
            self.send_held(data)

    def write_parts(self, parts: list[frames.Part], large: bool) -> None:
        """``write`` for output in pieces (``large``: with views of large bodies)."""
        self.wrote = True
        if not self.host.turn.hold_parts(self, parts, large):
            self.send_parts(parts)

    def send_held(self, data: bytes) -> None:
        self.send_parts((data,))

    def send_parts(self, parts: Sequence[frames.Part]) -> None:
        """Send pieces: small ones joined, large ones (bodies' chunks) as they are, so a
        large message is copied once, into the transport's buffer, not joined first."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        small: list[frames.Part] = []
        for part in parts:
            if len(part) < frames.LARGE_PART:
                small.append(part)
                continue
            if small:
                transport.write(b"".join(small))
                small = []
            transport.write(part)
        if small:
            transport.write(small[0] if len(small) == 1 else b"".join(small))
        if self._close_after_send:
            transport.close()

    def _close_transport(self) -> None:
        self.state = max(self.state, State.CLOSING)
        if self in self.host.turn.held:
            self._close_after_send = True  # once what this turn said has been sent
        elif self.transport is not None:
            self.transport.close()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(self.loop.call_later(delay, callback))

    def alarm_changed(self, on: bool) -> None:
        """The disk alarm went on or off (``alarm``)."""
        if self.state != State.OPEN:
            return
        if on and self.capability("connection.blocked"):
            self.told_blocked = True
            self.write(frames.method_frame(C.Connection.Blocked(alarm.REASON), 0))
        elif not on:
            if self.told_blocked:
                self.told_blocked = False
                self.write(frames.method_frame(C.Connection.Unblocked(), 0))
            if self.published_blocked:
                self.published_blocked = False
                self.last_read = self.loop.time()  # not read meanwhile: no missed heartbeat
                if self.transport is not None:
                    self.transport.resume_reading()

    def _heartbeat(self) -> None:
        if self.state == State.CLOSED:
            return
        if self.published_blocked:
            self.last_read = self.loop.time()  # held by the alarm, not silent
        if self.loop.time() - self.last_read > 2 * self.heartbeat:
            log.warning("closing %s: missed heartbeats from client, timeout: %ds", self.name,
                        self.heartbeat)
            self.release()
            if self.transport is not None:
                self.transport.abort()
            return
        if not self.wrote:
            self.write(frames.HEARTBEAT_FRAME)
        self.wrote = False
        self._later(self.heartbeat / 2, self._heartbeat)


def _address(pair: Any) -> str:
    host, port = pair[0], pair[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _short(text: str) -> str:
    """A reply text that fits its AMQP short string (255 bytes)."""
    data = text.encode("utf-8")
    return text if len(data) <= 255 else data[:255].decode("utf-8", "ignore")


HANDSHAKE: dict[State, tuple[type[base.Frame], Callable[[AMQPConnection, Any], None]]] = {
    State.START: (C.Connection.StartOk, AMQPConnection._start_ok),
    State.TUNE: (C.Connection.TuneOk, AMQPConnection._tune_ok),
    State.OPENING: (C.Connection.Open, AMQPConnection._open),
}

CONNECTION_HANDLERS: dict[type, Callable[[AMQPConnection, Any], None]] = {
    C.Connection.Close: AMQPConnection._close,
    C.Connection.UpdateSecret: AMQPConnection._update_secret,
}
