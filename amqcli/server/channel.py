"""One AMQP channel of a served connection, over one engine ``Channel``.

Methods are dispatched through ``HANDLERS`` (pamqp method class -> handler); each handler
makes one engine call and writes the reply. Engine errors are ``BrokerError``s carrying
the reply code, so they reach the client as ``channel.close`` or ``connection.close``
without translation (``connection.py`` does that). What RabbitMQ's channel does beyond the
engine lives here: content assembly (``basic.publish``, header, bodies), the
last-declared-queue shortcut (``""``), mandatory returns, publisher confirms,
transactions, consumer cancel notifications, turning deliveries into frames, and the
time each delivery that needs an ack was handed out (for ``acktimeout``).

Published messages are not routed one by one: the connection gathers those that arrive
together and publishes each run (same channel, same exchange) in one engine call.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

from .. import errors
from ..amqp.model import Delivery, DestinationType, Message, Properties, PublishOutcome
from ..amqp.names import server_name
from ..broker.publishing import check_size, parse_expiration
from . import frames, replyto
from .dispatch import NOTHING, Consumer, Fed
from .permissions import Access, Grants

if TYPE_CHECKING:
    from .connection import AMQPConnection

log = logging.getLogger("amq.server")


# Methods that need not wait for the messages published before them to be routed.
_UNORDERED = frozenset((C.Basic.Publish, C.Basic.Ack))


class Pending:
    """A completed ``basic.publish`` waiting for the engine."""

    __slots__ = ("channel", "mandatory", "message", "seq")

    def __init__(self, channel: ServerChannel, message: Message, mandatory: bool,
                 seq: int) -> None:
        self.channel, self.message, self.mandatory, self.seq = channel, message, mandatory, seq


class _Content:
    """A message being received: its ``basic.publish``, then header, then bodies."""

    __slots__ = ("method", "parts", "properties", "received", "size")

    def __init__(self, method: C.Basic.Publish) -> None:
        self.method = method
        self.properties: Properties | None = None
        self.size = 0
        self.parts: list[bytes] = []
        self.received = 0


class _Tx:
    """A transaction's publishes and settlements, applied at ``tx.commit``."""

    def __init__(self) -> None:
        self.publishes: list[Pending] = []
        self.settles: list[tuple[str, list[int], bool]] = []  # (ack|nack, tags, requeue)
        self.tags: set[int] = set()  # settled in this transaction, still unacked


class ServerChannel:
    def __init__(self, connection: AMQPConnection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.engine = connection.engine.channel(number)
        self.closing = False  # channel.close sent, waiting for close-ok
        self.content: _Content | None = None
        self.last_queue: str | None = None
        self.confirm = False
        self.published = 0  # confirm sequence numbers
        self.tx: _Tx | None = None
        self.consumers: dict[str, Consumer] = {}
        self.encoder = frames.DeliverEncoder(number)
        self.acks_pending = False  # lazy acks the store has not heard of yet
        self.full = False  # a consumer ran out of prefetch room: acks should wake dispatch
        self.reply_to: tuple[str, str] | None = None  # direct reply-to: (consumer tag, name)
        # When deliveries that need an ack went out: (last delivery tag of a claim, time),
        # oldest first; an entry covers the tags after the one before it.
        self.sent: deque[tuple[int, float]] = deque()

    # --- frames ---------------------------------------------------------------------

    def handle(self, frame: frames.Frame) -> None:
        """One frame for this channel (raises BrokerError for the connection to report)."""
        if self.content is not None:
            self._content_frame(frame)
        elif frame.type != frames.FRAME_METHOD:
            raise errors.UnexpectedFrame("expected method frame, got non method frame instead")
        else:
            method = frames.decode_method(frame.payload)
            handler = HANDLERS.get(type(method))
            self.connection.context = method
            if handler is None:
                raise errors.CommandInvalid("unimplemented method")
            if type(method) not in _UNORDERED:
                self.connection.flush()  # what was published before this method stands
            handler(self, method)

    def handle_closing(self, frame: frames.Frame) -> None:
        """After this side sent channel.close: everything but close and close-ok is dropped."""
        if frame.type != frames.FRAME_METHOD:
            return
        try:
            method = frames.decode_method(frame.payload)
        except (errors.BrokerError, frames.UnknownMethod):
            return
        if isinstance(method, C.Channel.Close):
            self.send(C.Channel.CloseOk())
        if isinstance(method, (C.Channel.Close, C.Channel.CloseOk)):
            self.connection.forget_channel(self)

    def send(self, method: base.Frame) -> None:
        self.connection.write(frames.method_frame(method, self.number))

    # --- content ----------------------------------------------------------------------

    def _content_frame(self, frame: frames.Frame) -> None:
        content = self.content
        assert content is not None
        self.connection.context = content.method
        if content.properties is None:
            if frame.type != frames.FRAME_HEADER:
                raise errors.UnexpectedFrame("expected content header for class 60, got non "
                                             "content header frame instead")
            class_id, size, props = frames.decode_header(frame.payload)
            if class_id != 60:
                raise errors.UnexpectedFrame(
                    f"expected content header for class 60, got one for class {class_id} "
                    "instead")
            check_size(size, self.connection.host.broker.max_message_size)
            content.properties, content.size = props, size
        elif frame.type != frames.FRAME_BODY:
            raise errors.UnexpectedFrame(
                "expected content body, got non content body frame instead")
        else:
            content.parts.append(frame.payload)
            content.received += len(frame.payload)
            if content.received > content.size:
                raise errors.UnexpectedFrame(
                    f"content body of {content.received} bytes exceeds the body size "
                    f"{content.size} in its content header")
        if content.received == content.size:
            self.content = None
            self._published(content)

    def _published(self, content: _Content) -> None:
        method, props = content.method, content.properties
        assert props is not None
        parse_expiration(props.expiration)  # 406 for a bad one, before anything is routed
        if props.user_id is not None and props.user_id != self.connection.user and \
                not self.connection.server.users.impersonates(self.connection.user):
            raise errors.PreconditionFailed(
                f"user_id property set to '{props.user_id}' but authenticated user was "
                f"'{self.connection.user}'")
        if props.reply_to == replyto.PSEUDO_QUEUE:
            if self.reply_to is None:
                raise errors.PreconditionFailed("fast reply consumer does not exist")
            props = props._replace(reply_to=self.reply_to[1])
        body = content.parts[0] if len(content.parts) == 1 else b"".join(content.parts)
        seq = 0
        if self.confirm:
            self.published += 1
            seq = self.published
        pending = Pending(self, Message(body, props, method.routing_key, method.exchange),
                          method.mandatory, seq)
        if self.tx is not None:
            self.tx.publishes.append(pending)
        else:
            self.connection.pending.append(pending)

    def routed(self, run: list[Pending], outcomes: list[PublishOutcome]) -> None:
        """What became of a run of this channel's publishes: returns, then confirms."""
        confirms: list[tuple[int, bool]] = []
        for pending, outcome in zip(run, outcomes, strict=True):
            if outcome is PublishOutcome.UNROUTABLE and pending.mandatory:
                m = pending.message
                self.send(frames.build(C.Basic.Return, 312, "NO_ROUTE", m.exchange,
                                       m.routing_key))
                self.connection.write(frames.content_frames(
                    self.number, frames.encode_properties(m.properties), m.body,
                    self.connection.frame_max))
            if pending.seq:
                confirms.append((pending.seq, outcome is not PublishOutcome.REJECTED))
        self._confirm(confirms)

    def _confirm(self, confirms: list[tuple[int, bool]]) -> None:
        """Acks and nacks, in order, a run of acks as one ``multiple`` ack."""
        run: list[int] = []
        for seq, ok in confirms:
            if ok:
                run.append(seq)
                continue
            self._ack_run(run)
            run = []
            self.send(C.Basic.Nack(seq, False, False))
        self._ack_run(run)

    def _ack_run(self, run: list[int]) -> None:
        if run:
            self.send(C.Basic.Ack(run[-1], len(run) > 1))

    # --- deliveries -------------------------------------------------------------------

    def feed(self, tag: str, most: int, max_bytes: int) -> Fed:
        """The dispatcher's call: deliver up to ``most`` messages to consumer ``tag``, with
        bodies of at most ``max_bytes`` (or one message)."""
        conn = self.connection
        if self.closing or conn.paused or tag not in self.consumers:
            return NOTHING
        room = self.engine.capacity(tag)
        if room is not None:
            if room <= 0:
                self.full = True
                return NOTHING
            most = min(most, room)
        try:
            deliveries, cut = self.engine.claim(tag, most, max_bytes)
        except errors.ConsumerCancelled:
            self.queue_gone(tag)
            return NOTHING
        except errors.BrokerError as err:
            conn.fail(self, err)
            return NOTHING
        except Exception as err:  # noqa: BLE001 - the store failed: this connection cannot go on
            conn.internal_error(err)
            return NOTHING
        if room is not None and len(deliveries) >= room:
            self.full = True
        size = 0
        if deliveries:
            self.acks_pending = False  # the claim wrote the lazy acks
            size = self._write_deliveries(tag, deliveries)
            self.handed_out(deliveries[-1].delivery_tag)
        return Fed(len(deliveries), size, len(deliveries) < most and not cut)

    def _write_deliveries(self, tag: str, deliveries: list[Delivery]) -> int:
        """Write a claim's frames, large bodies as views (see ``frames.content_parts``);
        the bytes of the bodies."""
        out: list[frames.Part] = []
        props: dict[int, bytes] = {}  # deliveries of one claim share Properties objects
        frame_max, number, encode = self.connection.frame_max, self.number, self.encoder.frame
        size = largest = 0
        for d in deliveries:
            encoded = props.get(id(d.properties))
            if encoded is None:
                encoded = props[id(d.properties)] = frames.encode_properties(d.properties)
            out.append(encode(tag, d.delivery_tag, d.redelivered, d.exchange, d.routing_key))
            out += frames.content_parts(number, encoded, d.body, frame_max)
            n = len(d.body)
            size += n
            largest = max(largest, n)
        self.connection.write_parts(out, largest >= frames.LARGE_PART)
        return size

    def deliver_direct(self, tag: str, message: Message) -> None:
        """A direct reply-to message for this channel's reply consumer (no-ack)."""
        delivery_tag = self.engine.reserve_tag()  # the channel's tags count these too
        self.connection.write(
            self.encoder.frame(tag, delivery_tag, False, message.exchange, message.routing_key)
            + frames.content_frames(self.number, frames.encode_properties(message.properties),
                                    message.body, self.connection.frame_max))

    # --- the consumer timeout ---------------------------------------------------------

    def handed_out(self, last_tag: int) -> None:
        """Deliveries up to ``last_tag`` went out now: if they need an ack, time them."""
        if last_tag in self.engine.unacked:  # no-ack deliveries are never held
            self.sent.append((last_tag, time.monotonic()))
            self.connection.server.ack_timeout.watch(self)

    def oldest_unacked(self) -> float | None:
        """When the oldest delivery the channel holds unacknowledged went out (None: it
        holds none). Acks settled in an open transaction count as done, as in RabbitMQ."""
        if self.closing or self.engine.closed:
            return None
        unacked, sent = self.engine.unacked, self.sent
        if not unacked:
            sent.clear()
            return None
        oldest = next(iter(unacked))  # tags rise, so the first held is the oldest
        while sent and sent[0][0] < oldest:
            sent.popleft()
        if self.tx is not None and self.tx.tags:
            settled = self.tx.tags
            first = next((t for t in unacked if t not in settled), None)
            return None if first is None else \
                next((at for last, at in sent if last >= first), None)
        return sent[0][1] if sent else None

    def queue_gone(self, tag: str) -> None:
        """The broker cancels a consumer whose queue was deleted, telling the client if it
        said it understands ``basic.cancel`` from the server."""
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            return
        self.connection.host.dispatcher.remove(consumer)
        if tag in self.engine.consumers:
            self.engine.cancel(tag)
        if self.connection.capability("consumer_cancel_notify"):
            self.send(C.Basic.Cancel(tag, True))

    # --- closing ----------------------------------------------------------------------

    def release(self) -> None:
        """Cancel this channel's consumers and requeue what it held (idempotent)."""
        dispatcher = self.connection.host.dispatcher
        for consumer in self.consumers.values():
            dispatcher.remove(consumer)
        self.consumers.clear()
        if self.reply_to is not None:
            self.connection.server.reply_to.forget(self.reply_to[1])
            self.reply_to = None
        self.content = None
        self.tx = None
        self.sent.clear()
        if not self.engine.closed:
            self.engine.close()
            dispatcher.wake()

    def flush_acks(self) -> bool:
        """Write the lazy acks of a read to the store, at once; whether a consumer of the
        channel may have room again."""
        full, self.full = self.full, False
        if self.acks_pending and not self.engine.closed:
            self.acks_pending = False
            self.engine.flush()
        return full

    # --- names and permissions --------------------------------------------------------

    @property
    def grants(self) -> Grants:
        grants = self.connection.grants
        assert grants is not None  # set by connection.open, before any channel opens
        return grants

    def queue_name(self, name: str) -> str:
        """``""`` is the queue last declared on this channel (RabbitMQ's shortcut)."""
        if name:
            return name
        if self.last_queue is None:
            raise errors.NotFound("no previously declared queue")
        return self.last_queue


# --- handlers: one per method, in the order of the spec -----------------------------------

def channel_open(ch: ServerChannel, m: C.Channel.Open) -> None:
    raise errors.ChannelError("second 'channel.open' seen")


def channel_flow(ch: ServerChannel, m: C.Channel.Flow) -> None:
    if not m.active:
        raise errors.AMQPNotImplemented("active=false")
    ch.send(C.Channel.FlowOk(True))


def channel_close(ch: ServerChannel, m: C.Channel.Close) -> None:
    ch.release()
    ch.send(C.Channel.CloseOk())
    ch.connection.forget_channel(ch)


def exchange_declare(ch: ServerChannel, m: C.Exchange.Declare) -> None:
    if not m.passive:
        ch.grants.check(Access.CONFIGURE, "exchange", m.exchange)
        alternate = (m.arguments or {}).get("alternate-exchange")
        if isinstance(alternate, str):
            ch.grants.check(Access.READ, "exchange", m.exchange)
            ch.grants.check(Access.WRITE, "exchange", alternate)
    ch.connection.engine.declare_exchange(
        m.exchange, m.exchange_type, durable=m.durable, auto_delete=m.auto_delete,
        internal=m.internal, passive=m.passive, arguments=m.arguments)
    if not m.nowait:
        ch.send(C.Exchange.DeclareOk())


def exchange_delete(ch: ServerChannel, m: C.Exchange.Delete) -> None:
    ch.grants.check(Access.CONFIGURE, "exchange", m.exchange)
    ch.connection.engine.delete_exchange(m.exchange, if_unused=m.if_unused)
    if not m.nowait:
        ch.send(C.Exchange.DeleteOk())


def _binding(ch: ServerChannel, source: str, kind: str, destination: str) -> None:
    """Binding and unbinding need write on the destination, then read on the source."""
    ch.grants.check(Access.WRITE, kind, destination)
    ch.grants.check(Access.READ, "exchange", source)


def exchange_bind(ch: ServerChannel, m: C.Exchange.Bind) -> None:
    _binding(ch, m.source, "exchange", m.destination)
    ch.connection.engine.bind(m.source, m.destination, m.routing_key, m.arguments,
                              DestinationType.EXCHANGE)
    if not m.nowait:
        ch.send(C.Exchange.BindOk())


def exchange_unbind(ch: ServerChannel, m: C.Exchange.Unbind) -> None:
    _binding(ch, m.source, "exchange", m.destination)
    ch.connection.engine.unbind(m.source, m.destination, m.routing_key, m.arguments,
                                DestinationType.EXCHANGE)
    if not m.nowait:
        ch.send(C.Exchange.UnbindOk())


def queue_declare(ch: ServerChannel, m: C.Queue.Declare) -> None:
    name = ch.queue_name(m.queue) if m.passive else m.queue
    if m.passive and name == replyto.PSEUDO_QUEUE:  # it always exists, as in RabbitMQ
        if not m.nowait:
            ch.send(frames.build(C.Queue.DeclareOk, name, 0, 0))
        return
    if not m.passive:
        # A server-named queue is checked under a name of the same form (its random part
        # cannot matter to an expression), as RabbitMQ checks the name it generated.
        checked = name or server_name("amq.gen-")
        ch.grants.check(Access.CONFIGURE, "queue", checked)
        dlx = (m.arguments or {}).get("x-dead-letter-exchange")
        if isinstance(dlx, str):
            ch.grants.check(Access.READ, "queue", checked)
            ch.grants.check(Access.WRITE, "exchange", dlx)
    ok = ch.connection.engine.declare_queue(
        name, durable=m.durable, exclusive=m.exclusive, auto_delete=m.auto_delete,
        passive=m.passive, arguments=m.arguments)
    ch.last_queue = ok.queue
    if not m.nowait:
        ch.send(frames.build(C.Queue.DeclareOk, ok.queue, ok.message_count,
                             ok.consumer_count))


def queue_bind(ch: ServerChannel, m: C.Queue.Bind) -> None:
    queue = ch.queue_name(m.queue)
    _binding(ch, m.exchange, "queue", queue)
    ch.connection.engine.bind(m.exchange, queue, m.routing_key, m.arguments)
    if not m.nowait:
        ch.send(C.Queue.BindOk())


def queue_unbind(ch: ServerChannel, m: C.Queue.Unbind) -> None:
    queue = ch.queue_name(m.queue)
    _binding(ch, m.exchange, "queue", queue)
    ch.connection.engine.unbind(m.exchange, queue, m.routing_key, m.arguments)
    ch.send(C.Queue.UnbindOk())


def queue_purge(ch: ServerChannel, m: C.Queue.Purge) -> None:
    queue = ch.queue_name(m.queue)
    ch.grants.check(Access.READ, "queue", queue)
    count = ch.connection.engine.purge_queue(queue)
    if not m.nowait:
        ch.send(C.Queue.PurgeOk(count))


def queue_delete(ch: ServerChannel, m: C.Queue.Delete) -> None:
    queue = ch.queue_name(m.queue)
    ch.grants.check(Access.CONFIGURE, "queue", queue)
    count = ch.connection.engine.delete_queue(queue, if_unused=m.if_unused,
                                              if_empty=m.if_empty)
    ch.connection.host.dispatcher.wake()  # its consumers, here or elsewhere, are cancelled
    if not m.nowait:
        ch.send(C.Queue.DeleteOk(count))


def basic_qos(ch: ServerChannel, m: C.Basic.Qos) -> None:
    if m.prefetch_size:
        raise errors.AMQPNotImplemented(f"prefetch_size!=0 ({m.prefetch_size})")
    ch.engine.qos(m.prefetch_count, m.global_)
    ch.send(C.Basic.QosOk())
    ch.connection.host.dispatcher.wake()


def basic_consume(ch: ServerChannel, m: C.Basic.Consume) -> None:
    queue = ch.queue_name(m.queue)
    if queue == replyto.PSEUDO_QUEUE:
        _consume_replies(ch, m)
        return
    ch.grants.check(Access.READ, "queue", queue)
    priority = (m.arguments or {}).get("x-priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise errors.PreconditionFailed(
            f"invalid arg 'x-priority' for queue '{queue}' in vhost '/': "
            f"{{unacceptable_type,{type(priority).__name__}}}")
    tag = ch.engine.consume(queue, m.consumer_tag, no_ack=m.no_ack, exclusive=m.exclusive,
                            priority=priority, bell=ch.connection.host.dispatcher.bell.name,
                            arguments=m.arguments)
    if not m.nowait:
        ch.send(frames.build(C.Basic.ConsumeOk, tag))
    consumer = ch.consumers[tag] = Consumer(ch, tag, queue, priority,
                                            ch.engine.consumers[tag].id)
    ch.connection.host.dispatcher.add(consumer)


def _consume_replies(ch: ServerChannel, m: C.Basic.Consume) -> None:
    if not m.no_ack:
        raise errors.PreconditionFailed("reply consumer cannot acknowledge")
    if ch.reply_to is not None:
        raise errors.PreconditionFailed("reply consumer already set")
    tag = m.consumer_tag or server_name("amq.ctag-")
    ch.reply_to = (tag, ch.connection.server.reply_to.register(ch, tag))
    if not m.nowait:
        ch.send(frames.build(C.Basic.ConsumeOk, tag))


def basic_cancel(ch: ServerChannel, m: C.Basic.Cancel) -> None:
    tag = m.consumer_tag or ""
    if ch.reply_to is not None and ch.reply_to[0] == tag:
        ch.connection.server.reply_to.forget(ch.reply_to[1])
        ch.reply_to = None
    consumer = ch.consumers.pop(tag, None)
    if consumer is not None:
        ch.connection.host.dispatcher.remove(consumer)
        ch.engine.cancel(tag)
    if not m.nowait:
        ch.send(frames.build(C.Basic.CancelOk, m.consumer_tag))


def basic_publish(ch: ServerChannel, m: C.Basic.Publish) -> None:
    if m.immediate:
        raise errors.AMQPNotImplemented("immediate=true")
    ch.grants.check(Access.WRITE, "exchange", m.exchange)
    if ch.connection.server.alarm.on:
        ch.connection.published_blocked = True  # read no further once this turn is done
    ch.content = _Content(m)


def basic_get(ch: ServerChannel, m: C.Basic.Get) -> None:
    queue = ch.queue_name(m.queue)
    ch.grants.check(Access.READ, "queue", queue)
    delivery, left = ch.engine.get(queue, no_ack=m.no_ack)
    if delivery is None:
        ch.send(C.Basic.GetEmpty())
        return
    ch.send(frames.build(C.Basic.GetOk, delivery.delivery_tag, delivery.redelivered,
                         delivery.exchange, delivery.routing_key, left))
    ch.connection.write_parts(frames.content_parts(
        ch.number, frames.encode_properties(delivery.properties), delivery.body,
        ch.connection.frame_max), len(delivery.body) >= frames.LARGE_PART)
    ch.handed_out(delivery.delivery_tag)  # timed like a consumer's, as in RabbitMQ


def _settle(ch: ServerChannel, kind: str, tag: int, multiple: bool, requeue: bool) -> None:
    if ch.tx is not None:
        _tx_settle(ch, ch.tx, kind, tag, multiple, requeue)
    elif kind == "ack":
        ch.engine.ack(tag, multiple, lazy=True)
        ch.acks_pending = True
        ch.connection.acked.add(ch)
    else:
        ch.engine.nack(tag, multiple, requeue)
        ch.connection.host.dispatcher.wake()


def _tx_settle(ch: ServerChannel, tx: _Tx, kind: str, tag: int, multiple: bool,
               requeue: bool) -> None:
    """Check a settlement now (406 for an unknown tag), apply it at commit."""
    outstanding = [t for t in ch.engine.unacked if t not in tx.tags]
    if multiple:
        tags = [t for t in outstanding if tag == 0 or t <= tag]
    else:
        tags = [tag] if tag in outstanding else []
    if not tags and not (multiple and tag == 0):
        raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
    tx.tags.update(tags)
    tx.settles.append((kind, tags, requeue))


def basic_ack(ch: ServerChannel, m: C.Basic.Ack) -> None:
    _settle(ch, "ack", m.delivery_tag or 0, m.multiple, False)


def basic_nack(ch: ServerChannel, m: C.Basic.Nack) -> None:
    _settle(ch, "nack", m.delivery_tag or 0, m.multiple, m.requeue)


def basic_reject(ch: ServerChannel, m: C.Basic.Reject) -> None:
    _settle(ch, "nack", m.delivery_tag or 0, False, m.requeue)


def basic_recover(ch: ServerChannel, m: C.Basic.Recover) -> None:
    ch.engine.recover(m.requeue)
    ch.connection.host.dispatcher.wake()
    if isinstance(m, C.Basic.Recover):
        ch.send(C.Basic.RecoverOk())


def confirm_select(ch: ServerChannel, m: C.Confirm.Select) -> None:
    if ch.tx is not None:
        raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
    ch.confirm = True
    if not m.nowait:
        ch.send(C.Confirm.SelectOk())


def tx_select(ch: ServerChannel, m: C.Tx.Select) -> None:
    if ch.confirm:
        raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
    if ch.tx is None:
        ch.tx = _Tx()
    ch.send(C.Tx.SelectOk())


def tx_commit(ch: ServerChannel, m: C.Tx.Commit) -> None:
    if ch.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    tx, ch.tx = ch.tx, _Tx()
    ch.connection.pending.extend(tx.publishes)
    ch.connection.flush()
    if ch.closing:  # a publish failed: the channel is closed, nothing more is applied
        return
    for kind, tags, requeue in tx.settles:
        for tag in tags:
            if kind == "ack":
                ch.engine.ack(tag)
            else:
                ch.engine.nack(tag, False, requeue)
    ch.connection.host.dispatcher.wake()
    ch.send(C.Tx.CommitOk())


def tx_rollback(ch: ServerChannel, m: C.Tx.Rollback) -> None:
    if ch.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    ch.tx = _Tx()  # settled deliveries stay unacked, as in RabbitMQ
    ch.send(C.Tx.RollbackOk())


HANDLERS: dict[type, Callable[[ServerChannel, Any], None]] = {
    C.Channel.Open: channel_open,
    C.Channel.Flow: channel_flow,
    C.Channel.Close: channel_close,
    C.Exchange.Declare: exchange_declare,
    C.Exchange.Delete: exchange_delete,
    C.Exchange.Bind: exchange_bind,
    C.Exchange.Unbind: exchange_unbind,
    C.Queue.Declare: queue_declare,
    C.Queue.Bind: queue_bind,
    C.Queue.Unbind: queue_unbind,
    C.Queue.Purge: queue_purge,
    C.Queue.Delete: queue_delete,
    C.Basic.Qos: basic_qos,
    C.Basic.Consume: basic_consume,
    C.Basic.Cancel: basic_cancel,
    C.Basic.Publish: basic_publish,
    C.Basic.Get: basic_get,
    C.Basic.Ack: basic_ack,
    C.Basic.Nack: basic_nack,
    C.Basic.Reject: basic_reject,
    C.Basic.Recover: basic_recover,
    C.Basic.RecoverAsync: basic_recover,
    C.Confirm.Select: confirm_select,
    C.Tx.Select: tx_select,
    C.Tx.Commit: tx_commit,
    C.Tx.Rollback: tx_rollback,
}
