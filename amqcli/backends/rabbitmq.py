"""The Backend over a real RabbitMQ, through pika. The only module that imports pika.

Each AMQP method maps onto pika's BlockingConnection; a channel closed by the broker
(404, 405, 406, ...) becomes the same ``AmqError`` the local broker raises, and a fresh
channel is opened for the next call. Publishing goes through pika's channel
implementation directly, so a batch is written without a flush per message and, with
``confirm``, many confirms are outstanding at once. Listing uses the management HTTP API
(``management.py``), since AMQP has no method for it.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel

from .. import errors
from ..amqp.model import (
    Binding,
    DeclareOk,
    Delivery,
    DestinationType,
    Exchange,
    Message,
    Properties,
    PublishResult,
    Queue,
)
from ..amqp.names import check_name
from ..amqp.routing import Route
from ..config import BrokerURL
from . import pika_shim

if TYPE_CHECKING:
    from .management import ManagementAPI

T = TypeVar("T")

pika_shim.install()  # floats, exact decimals and clear errors in pika's field tables

CONNECT_TIMEOUT = 10.0
_FRAME = struct.Struct(">BHI")  # frame type, channel, payload size
_HEADER_FRAME = struct.Struct(">BHIHxxQ")  # + content class, weight, body size
_FRAME_END = b"\xce"


def _broker_error(err: Exception) -> errors.AmqError:
    """The AmqError for a pika exception."""
    if isinstance(err, (pex.ChannelClosedByBroker, pex.ConnectionClosedByBroker)):
        return errors.from_reply(err.reply_code, err.reply_text)
    if isinstance(err, pex.ProbableAuthenticationError | pex.AuthenticationError):
        return errors.LoginRefused("login refused: check the user name and password")
    if isinstance(err, pex.ProbableAccessDeniedError):
        return errors.NotAllowed("access to the vhost refused (does it exist, may the user "
                                 "use it?)")
    if isinstance(err, pex.AMQPConnectionError | pex.StreamLostError | pex.ConnectionWrongStateError
                  | pex.ChannelWrongStateError):
        return errors.ConnectionLost(f"the connection to RabbitMQ was lost ({err!r})")
    return errors.BrokerError(str(err))


def to_properties(p: pika.BasicProperties) -> Properties:
    """amq's Properties of pika's; strings that are not UTF-8 stay bytes (pika's choice)."""
    values = {name: getattr(p, name, None) for name in Properties._fields}
    return Properties(**values)


def to_pika(p: Properties) -> pika.BasicProperties:
    return pika.BasicProperties(**p.as_dict())


def encode_properties(p: Properties) -> bytes:
    """The content header's property flags and values, or a UsageError naming the header
    that cannot be encoded."""
    try:
        return b"".join(to_pika(p).encode())
    except pika_shim.FieldError as err:
        raise errors.UsageError(f"cannot send header {err}") from None
    except pex.ShortStringTooLong:
        raise errors.UsageError("a property is longer than 255 bytes, the most AMQP "
                                "allows") from None


def _arguments(arguments: dict[str, Any] | None) -> dict[str, Any] | None:
    """Arguments for pika, checked first: a value pika's encoder refuses would leave the
    channel waiting for a reply to a method that was never sent."""
    if arguments:
        try:
            pika_shim.table_bytes(arguments)
        except pika_shim.FieldError as err:
            raise errors.UsageError(f"cannot send argument {err}") from None
    return arguments or None


class RabbitSubscription:
    """A consumer: deliveries buffered by pika's callback, handed out by ``fetch``."""

    def __init__(self, backend: RabbitMQBackend, queue: str, prefetch: int, no_ack: bool,
                 exclusive: bool, window: int = 0, priority: int = 0) -> None:
        self.backend = backend
        self.queue = queue
        self.channel: BlockingChannel = backend.call(lambda: backend.connection.channel())
        self.buffer: list[Delivery] = []
        self.cancelled = False
        self.channel.add_on_cancel_callback(self._on_cancel)
        self.channel.basic_qos(prefetch_count=prefetch)
        if window:  # after the consumer's qos: RabbitMQ 3.10 drops a global limit set before
            self.set_window(window)
        arguments = {"x-priority": priority} if priority else None
        self.tag = backend.call(lambda: self.channel.basic_consume(
            queue, self._on_message, auto_ack=no_ack, exclusive=exclusive,
            arguments=arguments))

    def _on_message(self, _ch: BlockingChannel, method: pika.spec.Basic.Deliver,
                    props: pika.BasicProperties, body: bytes) -> None:
        self.buffer.append(Delivery(method.delivery_tag, body, to_properties(props),
                                    method.exchange, method.routing_key,
                                    bool(method.redelivered), self.queue))

    def _on_cancel(self, _frame: pika.frame.Method) -> None:
        self.cancelled = True

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self.backend.connection
        self.keep_alive()
        while not self.buffer:
            if self.cancelled:
                raise errors.ConsumerCancelled(
                    f"the broker cancelled the consumer: queue '{self.queue}' was deleted")
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return []
            self.backend.call(partial(conn.process_data_events, time_limit=min(left, 1.0)))
        batch, self.buffer = self.buffer[:most], self.buffer[most:]
        return batch

    def set_window(self, most: int) -> None:
        self.backend.call(lambda: self.channel.basic_qos(prefetch_count=most, global_qos=True))

    def watch(self, fd: int) -> bool:
        return False  # pika's loop cannot also watch it: the caller looks now and then

    def keep_alive(self) -> None:
        conn = self.backend.connection
        self.backend.call(lambda: conn.process_data_events(time_limit=0))

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.backend.call(lambda: self.channel.basic_ack(delivery_tag, multiple))

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.backend.call(lambda: self.channel.basic_nack(delivery_tag, multiple, requeue))

    def cancel(self) -> None:
        """Cancel and close the channel: RabbitMQ requeues what was not acknowledged."""
        self.buffer.clear()
        try:
            if self.channel.is_open:
                if not self.cancelled:
                    self.channel.basic_cancel(self.tag)
                self.channel.close()
        except (pex.AMQPError, OSError):
            pass  # a closed connection requeues everything anyway


class RabbitMQBackend:
    """One connection to a RabbitMQ broker."""

    def __init__(self, url: BrokerURL) -> None:
        pika_shim.install()  # again, if a test gave pika its own codec back
        self.url = url
        self.display_url = url.display
        self.connection = self._connect()
        self._channel: BlockingChannel | None = None
        self._confirming = False
        self._returned = 0
        self._nacked = 0
        self._pending_confirms = 0
        self._confirmed_up_to = 0  # every publish up to this tag is confirmed
        self._confirmed_early: set[int] = set()  # tags above it confirmed alone
        self._unsynced = False  # publishes written since the last round trip
        self._publishing: BlockingChannel | None = None  # the channel they went on

    # --- connection -----------------------------------------------------------------

    def _parameters(self) -> pika.URLParameters:
        try:
            params = pika.URLParameters(self.url.url)
        except (ValueError, TypeError) as err:
            raise errors.UsageError(f"bad broker URL {self.display_url}: {err}") from None
        query = self.url.url.partition("?")[2]
        if "connection_attempts" not in query:
            params.connection_attempts = 1
        if "socket_timeout" not in query:
            params.socket_timeout = CONNECT_TIMEOUT
        if "stack_timeout" not in query:
            params.stack_timeout = CONNECT_TIMEOUT
        if "blocked_connection_timeout" not in query:
            params.blocked_connection_timeout = 60
        params.client_properties = {"connection_name": f"amq[{os.getpid()}]", "product": "amq"}
        if self.url.scheme == "amqps":
            params.ssl_options = self._tls_options(params.host)
        return params

    def _tls_options(self, host: str) -> pika.SSLOptions:
        """TLS from RabbitMQ's URI query parameters: cacertfile, certfile, keyfile, verify,
        server_name_indication (the system's CAs when no cacertfile is given)."""
        tls = self.url.tls
        try:
            context = ssl.create_default_context(cafile=tls.get("cacertfile") or None)
        except (OSError, ssl.SSLError) as err:
            raise errors.UsageError(
                f"cannot load the CA file {tls.get('cacertfile')}: {err}") from None
        if tls.get("verify") == "verify_none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            if tls.get("certfile"):
                context.load_cert_chain(tls["certfile"], tls.get("keyfile") or None)
        except (OSError, ssl.SSLError) as err:
            raise errors.UsageError(
                f"cannot load the client certificate {tls['certfile']}: {err}") from None
        return pika.SSLOptions(context, tls.get("server_name_indication") or host)

    def _connect(self) -> pika.BlockingConnection:
        try:
            params = self._parameters()
        except (OSError, ssl.SSLError) as err:  # a CA file that is missing or not PEM
            raise errors.UsageError(f"TLS settings of {self.display_url}: {err}") from None
        where = f"{params.host}:{params.port}"
        try:
            return pika.BlockingConnection(params)
        except pex.AMQPConnectionError as err:
            raise self._connect_error(err, where) from None
        except ssl.SSLError as err:
            raise errors.BrokerUnreachable(f"TLS failure talking to {where}: {err}") from None
        except OSError as err:
            raise errors.BrokerUnreachable(f"cannot reach RabbitMQ at {where}: {err}") from None

    def _connect_error(self, err: Exception, where: str) -> errors.AmqError:
        if isinstance(err, (pex.ProbableAuthenticationError, pex.AuthenticationError)):
            return errors.LoginRefused(
                f"login refused by RabbitMQ at {where}: check the user name and password")
        if isinstance(err, pex.ProbableAccessDeniedError):
            return errors.NotAllowed(
                f"vhost '{self._vhost()}' not found at {where}, or the user may not use it")
        inner = err.args[0] if err.args else err
        inner = getattr(inner, "exception", None) or (
            inner.args[0] if isinstance(inner, pex.AMQPError) and inner.args else inner)
        text = str(inner) or type(inner).__name__
        if isinstance(inner, ssl.SSLError) or "SSL" in text:
            return errors.BrokerUnreachable(f"TLS failure talking to {where}: {text}")
        if isinstance(inner, (socket.timeout, TimeoutError)) or "timed out" in text.lower():
            return errors.BrokerUnreachable(f"RabbitMQ at {where} did not answer in time")
        return errors.BrokerUnreachable(
            f"cannot reach RabbitMQ at {where}: {text}", hint="is it running? check --url")

    def _vhost(self) -> str:
        return self._parameters().virtual_host

    @property
    def channel(self) -> BlockingChannel:
        """The channel for one-off methods; reopened after the broker closed it."""
        if self._channel is None or not self._channel.is_open:
            self._channel = self.call(lambda: self.connection.channel())
            self._confirming = False
            self._channel.add_on_return_callback(self._on_return)
        return self._channel

    def call(self, fn: Callable[[], T]) -> T:
        """Run a pika call, turning its exceptions into AmqErrors."""
        try:
            return fn()
        except pex.ChannelClosedByBroker as err:
            self._channel = None
            raise _broker_error(err) from None
        except pex.ShortStringTooLong as err:
            raise errors.UsageError(f"a name is longer than 255 bytes: {err}") from None
        except pex.AMQPError as err:
            raise _broker_error(err) from None
        except OSError as err:
            raise errors.ConnectionLost(f"the connection to RabbitMQ was lost: {err}") from None

    # --- topology ---------------------------------------------------------------------

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareOk:
        name = check_name("queue", name)
        ok = self.call(lambda: self.channel.queue_declare(
            name, passive=passive, durable=durable, exclusive=exclusive,
            auto_delete=auto_delete, arguments=_arguments(arguments))).method
        return DeclareOk(ok.queue, ok.message_count, ok.consumer_count)

    def ensure_queue(self, name: str) -> None:
        try:
            self.declare_queue(name, passive=True)
        except errors.NotFound:
            try:
                self.declare_queue(name)
            except errors.PreconditionFailed:
                pass  # declared meanwhile with other flags: use it as it is

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        check_name("exchange", name)
        self.call(lambda: self.channel.exchange_declare(
            name, exchange_type=type, passive=passive, durable=durable,
            auto_delete=auto_delete, internal=internal, arguments=_arguments(arguments)))

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        check_name("queue", name)
        ok = self.call(lambda: self.channel.queue_delete(
            name, if_unused=if_unused, if_empty=if_empty))
        return ok.method.message_count

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        check_name("exchange", name)
        self.call(lambda: self.channel.exchange_delete(name, if_unused=if_unused))

    def purge_queue(self, name: str) -> int:
        check_name("queue", name)
        return self.call(lambda: self.channel.queue_purge(name)).method.message_count

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None:
        self._binding("bind", source, destination, routing_key, arguments, destination_type)

    def unbind(self, source: str, destination: str, routing_key: str = "",
               arguments: dict[str, Any] | None = None,
               destination_type: DestinationType = DestinationType.QUEUE) -> None:
        self._binding("unbind", source, destination, routing_key, arguments, destination_type)

    def _binding(self, verb: str, source: str, destination: str, routing_key: str,
                 arguments: dict[str, Any] | None, destination_type: DestinationType) -> None:
        """queue.bind/unbind or exchange.bind/unbind (pika names them queue_bind, ...)."""
        check_name("exchange", source)
        check_name(destination_type.value, destination)
        method = f"{destination_type.value}_{verb}"
        args = _arguments(arguments)
        self.call(lambda: getattr(self.channel, method)(destination, source, routing_key, args))

    # --- publishing -------------------------------------------------------------------

    def _on_return(self, *_args: Any) -> None:
        self._returned += 1

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        """Count what a basic.ack/nack settles. RabbitMQ confirms out of order (an
        unroutable message at once, a routed one when its queues have it), so a tag
        confirmed alone above the run confirmed so far is kept aside: a later ``multiple``
        covers only the tags not confirmed yet."""
        method = frame.method
        tag, early = method.delivery_tag, self._confirmed_early
        if method.multiple:
            below = {t for t in early if t <= tag}
            covered = max(0, tag - self._confirmed_up_to - len(below))
            early -= below
            self._confirmed_up_to = max(self._confirmed_up_to, tag)
        elif tag > self._confirmed_up_to and tag not in early:
            covered = 1
            early.add(tag)
        else:
            covered = 0
        while self._confirmed_up_to + 1 in early:
            self._confirmed_up_to += 1
            early.remove(self._confirmed_up_to)
        self._pending_confirms -= covered
        if isinstance(method, pika.spec.Basic.Nack):
            self._nacked += covered

    def _select_confirms(self) -> None:
        ch = self.channel
        if self._confirming:
            return
        done: list[bool] = []
        self._confirmed_up_to = 0
        self._confirmed_early = set()
        self._pending_confirms = 0  # a new channel: what an old one left is not coming
        self._published = 0
        pika_shim.select_confirms(ch, self._on_confirm, lambda _frame: done.append(True))
        self._wait_until(lambda: bool(done))
        self._confirming = True

    def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Process I/O until ``condition()`` holds: pika's own wait (the one its blocking
        methods use), which returns as soon as a callback of the channel implementation
        satisfies it."""
        self.call(lambda: pika_shim.wait_until(self.connection, condition))

    def publish(self, exchange: str, messages: Sequence[Message], *,
                confirm: bool = False, sync: bool = True,
                mandatory: bool = True) -> PublishResult:
        groups: list[tuple[str, Properties, list[bytes]]] = []
        for m in messages:
            if groups and groups[-1][0] == m.routing_key and groups[-1][1] is m.properties:
                groups[-1][2].append(m.body)
            else:
                groups.append((m.routing_key, m.properties, [m.body]))
        return self._publish(exchange, groups, confirm, sync, mandatory)

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes], *, confirm: bool = False,
                       sync: bool = True, mandatory: bool = True) -> PublishResult:
        return self._publish(exchange, [(routing_key, properties, bodies)], confirm, sync,
                             mandatory)

    def flush_publishes(self) -> PublishResult:
        """A round trip on the channel: every return for what was published before it has
        arrived when its answer does (and a channel error shows here). What came back."""
        ch = self._publishing  # not self.channel: that would reopen a closed one
        if self._unsynced and ch is not None:
            self._raise_if_closed(ch)
            try:
                self.call(lambda: ch.basic_qos(prefetch_count=0))
                self.call(lambda: self.connection.process_data_events(time_limit=0))
            except pex.AMQPError as err:
                self._channel = None
                raise _broker_error(err) from None
            self._unsynced = False
        result = PublishResult(0, self._returned, self._nacked)
        self._returned = self._nacked = 0
        return result

    def _publish(self, exchange: str, groups: Sequence[tuple[str, Properties, Sequence[bytes]]],
                 confirm: bool, sync: bool, mandatory: bool = True) -> PublishResult:
        """Write the publishes; with ``confirm`` wait for the broker's confirms, else (with
        ``sync=False``) only for the socket to take them, leaving the round trip that
        collects returns to ``flush_publishes``: bulk sends stream without a stall per
        batch."""
        check_name("exchange", exchange)
        ch = self._publishing = self.channel
        if confirm:
            self._select_confirms()
        total = 0
        try:
            for routing_key, props, bodies in groups:
                self._write_publishes(ch, exchange, routing_key, props, bodies, mandatory)
                total += len(bodies)
                if confirm:
                    self._pending_confirms += len(bodies)
            self._unsynced = True
            if confirm:  # returns come before the confirms of the same messages
                self._wait_until(lambda: self._pending_confirms <= 0 or not ch.is_open)
                self._raise_if_closed(ch)
            else:
                self._wait_until(lambda: True)  # until the socket took everything
        except pex.AMQPError as err:
            self._channel = None
            raise _broker_error(err) from None
        if sync or confirm:
            result = self.flush_publishes()
            return PublishResult(total, result.unroutable, result.nacked)
        return PublishResult(total, 0, 0)

    def _raise_if_closed(self, ch: BlockingChannel | None) -> None:
        """A channel the broker closed under a stream of publishes: its reason, as an error."""
        if ch is not None and not ch.is_open:
            self._unsynced = False
            reason = pika_shim.closing_reason(ch)
            self._channel = None
            if isinstance(reason, Exception):
                raise _broker_error(reason)
            raise errors.ConnectionLost("the broker closed the channel")

    def _write_publishes(self, ch: BlockingChannel, exchange: str, routing_key: str,
                         props: Properties, bodies: Sequence[bytes],
                         mandatory: bool = True) -> None:
        """basic.publish (mandatory unless told) of each body, framed here, not by pika.

        The method frame and the properties are the same for every body, so they are
        encoded once, and the frames of many messages go out as one write: pika's
        per-message framing (three frame objects marshalled apiece) is most of the cost of
        a bulk send. Byte for byte what pika's ``basic_publish`` writes.
        """
        self._raise_if_closed(ch)
        conn = self.connection
        number = ch.channel_number
        try:
            method = pika.frame.Method(number, pika.spec.Basic.Publish(
                exchange=exchange, routing_key=routing_key, mandatory=mandatory)).marshal()
        except pex.ShortStringTooLong:
            raise errors.UsageError("the routing key is longer than 255 bytes, the most AMQP "
                                    "allows") from None
        encoded = encode_properties(props)
        header = _HEADER_FRAME.pack
        head = _FRAME.pack
        header_size = 12 + len(encoded)
        max_body = pika_shim.body_frame_size(conn)
        out: list[bytes] = []
        for body in bodies:
            size = len(body)
            out += (method, header(2, number, header_size, 60, size), encoded, _FRAME_END)
            for start in range(0, size, max_body):
                chunk = body[start:start + max_body]
                out += (head(3, number, len(chunk)), chunk, _FRAME_END)
            if len(out) > 20_000:
                pika_shim.write_frames(conn, b"".join(out))
                out.clear()
        if out:
            pika_shim.write_frames(conn, b"".join(out))

    # --- consuming --------------------------------------------------------------------

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0,
                priority: int = 0) -> RabbitSubscription:
        check_name("queue", queue)
        return RabbitSubscription(self, queue, prefetch, no_ack, exclusive, window, priority)

    # --- listing ----------------------------------------------------------------------

    def _management(self) -> ManagementAPI:
        from .management import ManagementAPI
        return ManagementAPI.for_url(self.url)

    def list_queues(self) -> list[Queue]:
        """The management API's queues, with exact counts asked of each queue itself (the
        API's lag by seconds), except for queues with an ``x-expires`` lease: a passive
        declare renews the lease, so a listing would keep an unused queue alive. Their
        counts are the API's."""
        out = []
        for q, leased in self._management().queue_rows():
            if not leased:
                try:
                    ok = self.declare_queue(q.name, passive=True)
                    q = q._replace(messages=ok.message_count, consumers=ok.consumer_count)
                except (errors.NotFound, errors.ResourceLocked):
                    if not q.exclusive:
                        continue  # gone meanwhile
            out.append(q)
        return out

    def queue_names(self) -> list[str]:
        return [q.name for q in self._management().queues()]

    def list_exchanges(self) -> list[Exchange]:
        return self._management().exchanges()

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> Route:
        """The routing explainer on RabbitMQ: the topology the management API reports,
        run through the same matching rules as the local broker."""
        from ..amqp import routing
        api = self._management()
        exchanges = {x.name: x for x in api.exchanges()}
        if exchange not in exchanges:
            raise errors.NotFound(f"no exchange '{exchange}' in vhost '{api.vhost}'")
        bindings: dict[str, list[Binding]] = {}
        for b in api.bindings():
            bindings.setdefault(b.source, []).append(b)
        if exchange == "":
            queues = {q.name for q in api.queues()}
            keys = routing.routing_keys(routing_key, headers)
            found = [k for k in keys if k in queues]
            matched = [Binding("", q, DestinationType.QUEUE, q) for q in found]
            return routing.Route(found, [routing.Hop("", matched)])
        return routing.route(exchange, routing_key, headers, exchanges.get,
                             lambda name: bindings.get(name, []))

    def list_bindings(self) -> list[Binding]:
        return self._management().bindings()

    def close(self) -> None:
        try:
            if self.connection.is_open:
                self.connection.close()
        except (pex.AMQPError, OSError):
            pass
