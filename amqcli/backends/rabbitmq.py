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
import random
import re
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

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
    PublishOutcome,
    PublishResult,
    Queue,
    QueueStats,
    VHostInfo,
)
from ..amqp.names import check_name
from ..config import BrokerURL
from . import pika_shim

if TYPE_CHECKING:
    from ..amqp.definitions import Step
    from ..amqp.routing import Route
    from .management import ManagementAPI

T = TypeVar("T")

pika_shim.install()  # floats, exact decimals and clear errors in pika's field tables

CONNECT_TIMEOUT = 10.0
_FRAME = struct.Struct(">BHI")  # frame type, channel, payload size
_HEADER_FRAME = struct.Struct(">BHIHxxQ")  # + content class, weight, body size
_FRAME_END = b"\xce"
_BODY_AFTER_HEADER = struct.Struct(">cBHI")  # a header frame's end, a body frame's head


def _broker_error(err: Exception) -> errors.AmqError:
    """The AmqError for a pika exception."""
    if isinstance(err, (pex.ChannelClosedByBroker, pex.ConnectionClosedByBroker)):
        return errors.from_reply(err.reply_code, err.reply_text)
    if isinstance(err, pex.ProbableAuthenticationError | pex.AuthenticationError):
        return errors.LoginRefused("login refused: check the user name and password")
    if isinstance(err, pex.ProbableAccessDeniedError):
        return errors.NotAllowed("access to the vhost refused (does it exist, may the user "
                                 "use it?)")
    if isinstance(err, pex.StreamLostError):
        return errors.ConnectionLost(f"the connection to RabbitMQ was lost ({_lost_why(err)})")
    if isinstance(err, pex.AMQPConnectionError | pex.ConnectionWrongStateError
                  | pex.ChannelWrongStateError):
        return errors.ConnectionLost(f"the connection to RabbitMQ was lost ({err!r})")
    return errors.BrokerError(str(err))


def _lost_why(err: Exception) -> str:
    """What pika's StreamLostError wraps, in a few words: ``connection reset by peer``."""
    text = str(err.args[0] if err.args else err)
    inner = re.search(r"\(\d+, '([^']+)'\)", text)
    if inner:
        return inner.group(1).lower()
    return text.removeprefix("Stream connection lost: ") or type(err).__name__


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


def _returned_positions(messages: Sequence[Message],
                        returned: Sequence[tuple[str, bytes, Properties]]) -> list[int]:
    """Which of the messages published came back, given the returns in the order they
    came (RabbitMQ's: the publish order): each return is the first message not matched yet
    with its content, routing key, body and properties (identical messages are
    interchangeable). Properties that came back decoded otherwise than they went out
    (a header's type) are matched by routing key and body alone; a return matching
    nothing makes every message count as returned: left where it was, never lost."""
    for key in (lambda m: (m.routing_key, m.body, m.properties),
                lambda m: (m.routing_key, m.body, None)):
        found: list[int] = []
        i = 0
        for routing_key, body, props in returned:
            wanted = key(Message(body, props, routing_key))
            while i < len(messages) and key(messages[i]) != wanted:
                i += 1
            if i == len(messages):
                break
            found.append(i)
            i += 1
        else:
            return found
    return list(range(len(messages))) if returned else []


def _groups(messages: Sequence[Message]) -> list[tuple[str, Properties, list[bytes]]]:
    """Runs of messages with the same routing key and properties object: each run is
    framed with its method and properties encoded once."""
    groups: list[tuple[str, Properties, list[bytes]]] = []
    for m in messages:
        if groups and groups[-1][0] == m.routing_key and groups[-1][1] is m.properties:
            groups[-1][2].append(m.body)
        else:
            groups.append((m.routing_key, m.properties, [m.body]))
    return groups


class _Window(NamedTuple):
    """A window ``begin_each`` published: its delivery tags on the confirming channel."""

    first_tag: int
    last_tag: int
    messages: Sequence[Message]


_OFFSET_ENTRY = b"\x0fx-stream-offsetl"  # the header's name and type in a field table
_INT64 = struct.Struct(">q")


class RabbitSubscription:
    """A consumer: deliveries buffered by pika's callback, handed out by ``fetch``."""

    def __init__(self, backend: RabbitMQBackend, queue: str, prefetch: int, no_ack: bool,
                 exclusive: bool, window: int = 0, priority: int = 0,
                 arguments: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.queue = queue
        self.channel: BlockingChannel = backend.call(lambda: backend.connection.channel())
        self.buffer: list[Delivery] = []
        self.cancelled = False
        self.channel.add_on_cancel_callback(self._on_cancel)
        self._properties: dict[bytes, Properties] = {}  # decoded, by their encoding
        from ..amqp.streams import OFFSET_HEADER  # here: amq send need not load streams
        self._offset_header = OFFSET_HEADER
        self._deliveries = pika_shim.Deliveries(self.channel, self._on_delivery)
        self._deliveries.install()
        self.channel.basic_qos(prefetch_count=prefetch)
        if window:  # after the consumer's qos: RabbitMQ 3.10 drops a global limit set before
            self.set_window(window)
        args = dict(arguments or {})
        if priority:
            args["x-priority"] = priority
        self.tag = backend.call(lambda: self.channel.basic_consume(
            queue, self._on_message, auto_ack=no_ack, exclusive=exclusive,
            arguments=_arguments(args)))

    def _on_message(self, _ch: BlockingChannel, method: pika.spec.Basic.Deliver,
                    props: pika.BasicProperties, body: bytes) -> None:
        """pika's callback: unused while ``pika_shim.Deliveries`` takes the deliveries."""
        self.buffer.append(Delivery(method.delivery_tag, body, to_properties(props),
                                    method.exchange, method.routing_key,
                                    bool(method.redelivered), self.queue, time.time()))

    def _on_delivery(self, tag: int, redelivered: bool, exchange: Any, routing_key: Any,
                     encoded: bytes, body: bytes) -> None:
        """A delivery from ``pika_shim.Deliveries``: its properties decoded once per
        distinct encoding. A stream's deliveries differ by their ``x-stream-offset``
        header alone: the entry is cut out of the key, and the offset put back into the
        headers of a copy (the encoding the key came from was checked to hold it there)."""
        key: Any = encoded
        at = encoded.find(_OFFSET_ENTRY, 2)
        offset = None
        if at > 0:
            end = at + len(_OFFSET_ENTRY) + 8
            offset = _INT64.unpack_from(encoded, end - 8)[0] if end <= len(encoded) else None
            if offset is not None:
                key = (at, encoded[:at] + encoded[end:])
        props = self._properties.get(key)
        if props is None:
            decoded = pika.BasicProperties()
            decoded.decode(encoded)
            props = to_properties(decoded)
            if offset is not None and \
                    (props.headers or {}).get(self._offset_header) != offset:
                key, offset = encoded, None  # those bytes were not the offset's entry
            if len(self._properties) >= 64:  # bulk traffic repeats a few; others change
                self._properties.clear()
            self._properties[key] = props
        elif offset is not None:
            props = props._replace(headers={**(props.headers or {}),
                                            self._offset_header: offset})
        self.buffer.append(Delivery(tag, body, props, exchange, routing_key, redelivered,
                                    self.queue, time.time()))

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
            if not self.channel.is_open:  # closed by the broker, the connection still open
                raise self._closed()
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return []
            self.backend.call(partial(conn.process_data_events, time_limit=min(left, 1.0)))
        batch, self.buffer = self.buffer[:most], self.buffer[most:]
        return batch

    def _closed(self) -> errors.AmqError:
        """The error the broker closed this consumer's channel with (a consumer timeout:
        406, with RabbitMQ's text), for a command to end with rather than wait forever."""
        reason = pika_shim.closing_reason(self.channel)
        if isinstance(reason, Exception) and not isinstance(reason, pex.ChannelClosedByClient):
            return _broker_error(reason)
        return errors.ConnectionLost(f"the broker closed the channel of the consumer of "
                                     f"'{self.queue}'")

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
        self._deliveries.remove()
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
        self.hosts = list(url.hosts or (url.url,))
        if url.shuffle:
            random.shuffle(self.hosts)
        self.host_url = self.hosts[0]  # the host connected to (its URL, password included)
        self._next_host = 0  # where the next _connect() starts
        self.connection = self._connect()
        self._channel: BlockingChannel | None = None
        self._confirming = False
        self._returned = 0
        self._nacked = 0
        self._pending_confirms = 0
        self._published = 0  # delivery tags used on the confirming channel
        self._refused: set[int] = set()  # tags nacked, not yet handed back by _publish
        self._confirmed_up_to = 0  # every publish up to this tag is confirmed
        self._confirmed_early: set[int] = set()  # tags above it confirmed alone
        self._unsynced = False  # publishes written since the last round trip
        self._publishing: BlockingChannel | None = None  # the channel they went on
        # publish_each's returned messages (routing key, body, properties), else None
        self._kept: list[tuple[str, bytes, Properties]] | None = None
        self._ahead: deque[_Window] = deque()  # begin_each's windows, not yet ended
        self._ended: deque[list[PublishOutcome]] = deque()  # outcomes of windows settled
        # with an earlier one (a return or a nack), not yet handed out by end_each

    # --- connection -----------------------------------------------------------------

    def _parameters(self, host_url: str) -> pika.URLParameters:
        try:
            params = pika.URLParameters(host_url)
        except (ValueError, TypeError) as err:
            raise errors.UsageError(f"bad broker URL {self.display_url}: {err}") from None
        query = host_url.partition("?")[2]
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
        """A connection to the first host that answers, starting with ``_next_host`` (the
        first of the URL's at first; after a connection, the one after it, so that a
        reconnect fails over to the next host). A refused login or vhost is the same on
        every node of a cluster: it ends the search at once."""
        count = len(self.hosts)
        failures: list[errors.BrokerUnreachable] = []
        for i in range(count):
            index = (self._next_host + i) % count
            try:
                connection = self._connect_to(self.hosts[index])
            except errors.BrokerUnreachable as err:
                failures.append(err)
                continue
            self.host_url = self.hosts[index]
            self._next_host = (index + 1) % count
            return connection
        if count == 1:
            raise failures[0]
        raise errors.BrokerUnreachable(
            f"cannot reach any of the {count} hosts of {self.display_url}: "
            + "; ".join(str(f) for f in failures), hint=failures[-1].hint)

    @property
    def host(self) -> str:
        """``host:port`` of the host connected to."""
        params = self._parameters(self.host_url)
        return f"{params.host}:{params.port}"

    def reconnect(self) -> None:
        """Drop what is left of the connection and connect again, to the next host of a
        multi-host URL first. Channels, consumers and unconfirmed publishes of the old
        connection are gone (RabbitMQ requeued what it had delivered)."""
        self.close()
        self._channel = None
        self._publishing = None
        self._confirming = False
        self._unsynced = False
        self._pending_confirms = 0
        self._forget_windows()
        self.connection = self._connect()

    def _connect_to(self, host_url: str) -> pika.BlockingConnection:
        try:
            params = self._parameters(host_url)
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
            # pika keeps the broker's reply in its text: "(530) 'NOT_ALLOWED - vhost x not
            # found'" or "... - access to vhost 'x' refused for user 'u'"
            said = re.search(r"\(530\) ['\"]NOT_ALLOWED - (.*?)['\"]\)?$", str(err))
            if said:
                return errors.NotAllowed(f"{said.group(1)} (RabbitMQ at {where})")
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
        return self._parameters(self.host_url).virtual_host

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

    def _on_return(self, _ch: BlockingChannel, method: pika.spec.Basic.Return,
                   props: pika.BasicProperties, body: bytes) -> None:
        self._returned += 1
        if self._kept is not None:
            self._kept.append((method.routing_key, body, to_properties(props)))

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        """Count what a basic.ack/nack settles. RabbitMQ confirms out of order (an
        unroutable message at once, a routed one when its queues have it), so a tag
        confirmed alone above the run confirmed so far is kept aside: a later ``multiple``
        covers only the tags not confirmed yet."""
        method = frame.method
        tag, early = method.delivery_tag, self._confirmed_early
        if isinstance(method, pika.spec.Basic.Nack):  # which ones, for a resend
            first = self._confirmed_up_to + 1 if method.multiple else tag
            self._refused.update(t for t in range(first, tag + 1) if t not in early)
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
        self._refused = set()
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
        return self._publish(exchange, _groups(messages), confirm, sync, mandatory)

    def publish_each(self, exchange: str,
                     messages: Sequence[Message]) -> list[PublishOutcome]:
        kept: list[tuple[str, bytes, Properties]] = []
        self._kept = kept
        try:
            result = self.publish(exchange, messages, confirm=True, sync=True)
        finally:
            self._kept = None
        outcomes = [PublishOutcome.ROUTED] * len(messages)
        for i in result.refused:
            outcomes[i] = PublishOutcome.REJECTED
        for i in _returned_positions(messages, kept):
            outcomes[i] = PublishOutcome.UNROUTABLE
        return outcomes

    def begin_each(self, exchange: str, messages: Sequence[Message]) -> None:
        check_name("exchange", exchange)
        try:
            if self._ahead:  # their confirms come on that channel, or its closing reason
                self._raise_if_closed(self._publishing)
            ch = self._publishing = self.channel
            self._select_confirms()
            if self._kept is None:
                self._kept = []
            first_tag = self._published + 1
            for routing_key, props, bodies in _groups(messages):
                self._pending_confirms += len(bodies)
                self._published += len(bodies)
                self._write_publishes(ch, exchange, routing_key, props, bodies)
            self._wait_until(lambda: True)  # the socket took them: the broker has them now
        except pex.AMQPError as err:
            self._channel = None
            self._forget_windows()
            raise _broker_error(err) from None
        except errors.AmqError:
            self._forget_windows()
            raise
        self._unsynced = True
        self._ahead.append(_Window(first_tag, self._published, messages))

    def end_each(self) -> list[PublishOutcome]:
        if self._ended:
            return self._ended.popleft()
        window = self._ahead[0]
        self._confirmed_through(window.last_tag)
        if self._kept or any(window.first_tag <= t <= window.last_tag for t in self._refused):
            return self._settle_windows()
        self._ahead.popleft()
        if not self._ahead:
            self._kept = None
        return [PublishOutcome.ROUTED] * len(window.messages)

    def _take_returns(self) -> None:
        """Hand the returns that arrived to ``_on_return``: pika keeps a channel's
        callbacks for its event dispatch. Once every publish is confirmed, every return
        has arrived (each comes before its message's confirm), so a round trip to collect
        them (``flush_publishes``) is not needed."""
        self.call(lambda: self.connection.process_data_events(time_limit=0))
        if self._pending_confirms <= 0:
            self._unsynced = False

    def _confirmed_through(self, tag: int) -> None:
        """Wait until every publish up to ``tag`` is confirmed; on an error (a loss, the
        channel closed), forget the windows begun."""
        ch = self._publishing
        try:
            self._wait_until(lambda: self._confirmed_up_to >= tag or ch is None
                             or not ch.is_open)
            self._raise_if_closed(ch)
            self._take_returns()
        except errors.AmqError:
            self._forget_windows()
            raise

    def _settle_windows(self) -> list[PublishOutcome]:
        """A return or a nack among the windows begun: every one of them waited for and
        settled as one ``publish_each`` (the returns, which carry no delivery tag, matched
        in order over all their messages); the first window's outcomes, the others' kept
        for ``end_each``."""
        windows = list(self._ahead)
        first, last = windows[0].first_tag, windows[-1].last_tag
        self._confirmed_through(last)
        messages = [m for w in windows for m in w.messages]
        outcomes = [PublishOutcome.ROUTED] * len(messages)
        refused = {t for t in self._refused if first <= t <= last}
        for tag in refused:
            outcomes[tag - first] = PublishOutcome.REJECTED
        assert self._kept is not None
        for i in _returned_positions(messages, self._kept):
            outcomes[i] = PublishOutcome.UNROUTABLE
        self._refused -= refused
        self._returned = self._nacked = 0
        self._forget_windows()
        at = 0
        for w in windows:
            self._ended.append(outcomes[at:at + len(w.messages)])
            at += len(w.messages)
        return self._ended.popleft()

    def _forget_windows(self) -> None:
        self._ahead.clear()
        self._ended.clear()
        self._kept = None

    def move_ready(self, queue: str, most: int, exchange: str,
                   routing_key: str | None) -> list[PublishOutcome]:
        from .moving import consumer_move
        return consumer_move(self, queue, most, exchange, routing_key)

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
        first_tag = self._published + 1  # the delivery tag of this call's first message
        total = 0
        try:
            for routing_key, props, bodies in groups:
                if confirm:  # counted first: a write that fails may have sent some
                    self._pending_confirms += len(bodies)
                    self._published += len(bodies)
                self._write_publishes(ch, exchange, routing_key, props, bodies, mandatory)
                total += len(bodies)
            self._unsynced = True
            if confirm:  # returns come before the confirms of the same messages
                self._wait_until(lambda: self._pending_confirms <= 0 or not ch.is_open)
                self._raise_if_closed(ch)
                self._take_returns()  # they came before the confirms: no round trip
            else:
                self._wait_until(lambda: True)  # until the socket took everything
        except pex.AMQPError as err:
            self._channel = None
            raise self._failed(_broker_error(err), confirm, first_tag, groups) from None
        except errors.AmqError as err:
            raise self._failed(err, confirm, first_tag, groups) from None
        if sync or confirm:
            result = self.flush_publishes()
            refused: tuple[int, ...] = ()
            if confirm and self._refused:
                refused = tuple(i for i in range(total) if first_tag + i in self._refused)
                self._refused.clear()
            return PublishResult(total, result.unroutable, result.nacked, refused)
        return PublishResult(total, 0, 0)

    def _failed(self, err: errors.AmqError, confirm: bool, first_tag: int,
                groups: Sequence[tuple[str, Properties, Sequence[bytes]]]) -> errors.AmqError:
        """The error a publish ends with: with ``confirm``, a lost connection says which
        messages to publish again."""
        from .reconnect import is_loss  # here: a send that goes well need not load it
        return self._unconfirmed(err, first_tag, groups) if confirm and is_loss(err) else err

    def _unconfirmed(self, err: errors.AmqError, first_tag: int,
                     groups: Sequence[tuple[str, Properties, Sequence[bytes]]]
                     ) -> errors.ConnectionLost:
        """The connection went under a confirmed publish: which of its messages (their
        positions in the call, in order) the broker had not confirmed, for a resend."""
        count = sum(len(bodies) for _key, _props, bodies in groups)
        up_to, early, refused = self._confirmed_up_to, self._confirmed_early, self._refused
        unconfirmed = [i for i in range(count) if first_tag + i in refused
                       or (first_tag + i > up_to and first_tag + i not in early)]
        self._nacked -= len(refused)  # sent again, not refused in the end
        refused.clear()
        lost = errors.ConnectionLost(str(err), unconfirmed=unconfirmed)
        self._pending_confirms = 0
        return lost

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
        a bulk send. What comes before a body that fits one frame depends only on its size:
        made once per size (lines of a file have a few), it halves the framing's time.
        Byte for byte what pika's ``basic_publish`` writes.
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
        body_head = _BODY_AFTER_HEADER.pack
        header_size = 12 + len(encoded)
        max_body = pika_shim.body_frame_size(conn)
        out: list[bytes] = []
        add = out.extend
        leads: dict[int, bytes] = {}  # by body size: the frames before a body's bytes
        for body in bodies:
            size = len(body)
            lead = leads.get(size)
            if lead is None and 0 < size <= max_body:
                # one body frame: its head is packed with the header frame's end
                lead = leads[size] = b"".join((method, header(2, number, header_size, 60, size),
                                               encoded, body_head(_FRAME_END, 3, number, size)))
            if lead is not None:
                add((lead, body, _FRAME_END))
            else:
                add((method, header(2, number, header_size, 60, size), encoded, _FRAME_END))
                for start in range(0, size, max_body):
                    chunk = body[start:start + max_body]
                    add((head(3, number, len(chunk)), chunk, _FRAME_END))
            if len(out) > 20_000:
                pika_shim.write_frames(conn, b"".join(out))
                out.clear()
        if out:
            pika_shim.write_frames(conn, b"".join(out))

    # --- consuming --------------------------------------------------------------------

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0, priority: int = 0,
                arguments: dict[str, Any] | None = None) -> RabbitSubscription:
        check_name("queue", queue)
        return RabbitSubscription(self, queue, prefetch, no_ack, exclusive, window, priority,
                                  arguments)

    def peek(self, queue: str, most: int | None, *, force: bool = False
             ) -> Generator[list[Delivery], None, None]:
        from .peeking import consumer_peek
        check_name("queue", queue)
        return consumer_peek(self, queue, most, force,
                             lambda q: self._management().delivery_limited(q))

    # --- listing ----------------------------------------------------------------------

    def _management(self) -> ManagementAPI:
        from .management import ManagementAPI
        return ManagementAPI.for_url(self.url, self.host_url)

    def list_queues(self) -> list[Queue]:
        """The management API's queues, with exact counts asked of each queue itself (the
        API's lag by seconds), except for queues with an ``x-expires`` lease: a passive
        declare renews the lease, so a listing would keep an unused queue alive, and
        except for streams, of which a declare-ok counts neither messages nor consumers.
        Their counts are the API's."""
        out = []
        for q, leased in self._management().queue_rows():
            if not leased and q.arguments.get("x-queue-type") != "stream":
                try:
                    ok = self.declare_queue(q.name, passive=True)
                    q = q._replace(messages=ok.message_count, consumers=ok.consumer_count)
                except (errors.NotFound, errors.ResourceLocked):
                    if not q.exclusive:
                        continue  # gone meanwhile
            out.append(q)
        return out

    def queue_stats(self) -> list[QueueStats]:
        return self._management().queue_stats()

    def queue_names(self) -> list[str]:
        return [q.name for q in self._management().queues()]

    def list_vhosts(self) -> list[VHostInfo]:
        return self._management().vhosts()

    def add_vhost(self, name: str, description: str = "", tags: Sequence[str] = (),
                  grant: bool = True) -> bool:
        return self._management().add_vhost(check_name("vhost", name), description, tags,
                                            grant)

    def delete_vhost(self, name: str) -> None:
        self._management().delete_vhost(name)

    def queue_type(self, name: str) -> str | None:
        try:
            found = self._management().get("queues", name)
        except errors.NotFound:
            return None
        except errors.AmqError:  # no management API, or a user it refuses: ask over AMQP
            return self._probe_queue_type(name)
        kind = found.get("type") if isinstance(found, dict) else None
        return str(kind) if kind else None

    def _probe_queue_type(self, name: str) -> str | None:
        """A queue's type without the management API: a consume with ``x-stream-offset``
        on a channel of its own, cancelled at once. A stream takes it (it keeps what is
        read, so nothing is taken); the others refuse it naming their type (406 ``...
        of queue type rabbit_quorum_queue``); an exclusive queue of another connection
        (405) is classic."""
        check_name("queue", name)

        def probe() -> str | None:
            channel = self.connection.channel()
            try:
                channel.basic_qos(prefetch_count=1)
                tag = channel.basic_consume(name, lambda *_: None,
                                            arguments={"x-stream-offset": "next"})
                channel.basic_cancel(tag)
                return "stream"
            except pex.ChannelClosedByBroker as err:
                if err.reply_code == 405:
                    return "classic"
                text = str(err.reply_text)
                return next((kind for kind in ("classic", "quorum")
                             if f"queue type rabbit_{kind}_queue" in text), None)
            finally:
                if channel.is_open:
                    try:
                        channel.close()
                    except (pex.AMQPError, OSError):
                        pass

        # on a channel of its own: call's other mappings, not its reset of self._channel
        return self.call(probe)

    def stream_end(self, name: str) -> int | None:
        return None  # RabbitMQ 3.10's management API reports no offsets of a stream

    def list_exchanges(self) -> list[Exchange]:
        return self._management().exchanges()

    def policy_arguments(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self._management().policy_arguments()

    def tracing(self) -> bool | None:
        try:
            return bool(self._management().get("vhosts").get("tracing"))
        except errors.AmqError:
            return None  # no management API: cannot tell

    def trace_hint(self) -> str:
        return f"turn it on with `rabbitmqctl trace_on -p {self._vhost()}`"

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

    def import_definitions(self, steps: Sequence[Step]) -> None:
        from ..amqp.definitions import check_existing, create
        check_existing(self, steps)
        create(self, steps)

    def alive(self) -> bool:
        try:
            self.connection.process_data_events(time_limit=0)
        except (pex.AMQPError, OSError):
            return False
        return bool(self.connection.is_open)

    def status(self) -> dict[str, Any]:
        """The host connected to, what the broker said of itself when the connection
        opened, and from that host's management API the node answering and the cluster's
        nodes (where the API is not reachable, the reason instead)."""
        props = pika_shim.server_properties(self.connection)

        def text(key: str) -> Any:
            value = props.get(key)
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        out: dict[str, Any] = {
            "broker": "rabbitmq", "url": self.display_url, "connected_to": self.host,
            "product": text("product"), "version": text("version"),
            "cluster_name": text("cluster_name"), "node": None}
        api = self._management()
        try:
            overview = api.overview()
            nodes = api.nodes()
        except errors.AmqError as err:
            out["management"] = f"not reachable: {err}"
            return out
        theirs = overview.get("cluster_name")
        names = {n.get("name") for n in nodes}
        # RabbitMQ names a cluster after a node unless told otherwise (each node after
        # itself, in 3.x): a name that is neither the API's cluster's nor one of its nodes
        # is another broker's (the port derived from the host: nodes sharing a host)
        if out["cluster_name"] and theirs and out["cluster_name"] != theirs and \
                out["cluster_name"] not in names:
            out["management"] = (f"{api.base} is the API of another cluster ({theirs}): give "
                                 "this one's with AMQ_MANAGEMENT_URL")
            return out
        out["node"] = overview.get("node")
        out["cluster_name"] = theirs or out["cluster_name"]
        out["erlang_version"] = overview.get("erlang_version")
        out["nodes"] = [{"name": n.get("name"), "running": bool(n.get("running"))}
                        for n in nodes]
        out["management"] = api.base
        return out

    def close(self) -> None:
        try:
            if self.connection.is_open:
                self.connection.close()
        except (pex.AMQPError, OSError):
            pass
