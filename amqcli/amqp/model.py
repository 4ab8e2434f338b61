"""The AMQP 0-9-1 model as plain values: exchanges, queues, bindings, messages.

These are what the engine, both backends, the CLI and (later) the server exchange. They
carry no behaviour beyond small conveniences and never reach into a store or a socket.
They are ``NamedTuple``s rather than dataclasses: immutable and typed alike, but several
times cheaper to define and to build, which every ``amq`` start and every message pays.
The ``{}`` defaults are shared: never mutate a value's dict in place. No ``from __future__
import annotations`` here: ``NamedTuple`` would make a ``ForwardRef`` of every string
annotation, which costs each start-up ~3 ms.
"""

from enum import IntEnum, StrEnum
from typing import Any, NamedTuple


class ExchangeType(StrEnum):
    DIRECT = "direct"
    FANOUT = "fanout"
    TOPIC = "topic"
    HEADERS = "headers"


class DestinationType(StrEnum):
    QUEUE = "queue"
    EXCHANGE = "exchange"


class PublishOutcome(IntEnum):
    """What became of one published message."""

    ROUTED = 0  # in every queue it was routed to
    UNROUTABLE = 1  # reached no queue: dropped (returned to a mandatory publisher)
    REJECTED = 2  # a reject-publish queue refused it: a nack to a confirming publisher


DEFAULT_EXCHANGE = ""
PREDECLARED_EXCHANGES: dict[str, ExchangeType] = {
    "": ExchangeType.DIRECT,
    "amq.direct": ExchangeType.DIRECT,
    "amq.fanout": ExchangeType.FANOUT,
    "amq.topic": ExchangeType.TOPIC,
    "amq.headers": ExchangeType.HEADERS,
    "amq.match": ExchangeType.HEADERS,
}

# The basic-class content properties, in wire order.
PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
    "user_id", "app_id", "cluster_id",
)


class Properties(NamedTuple):
    """AMQP basic properties. ``None`` means "not set"; ``timestamp`` is epoch seconds."""

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The properties that are set, by name."""
        return {k: v for k, v in zip(self._fields, self, strict=True) if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Properties":
        return cls(**{k: v for k, v in values.items() if v is not None})

    @property
    def persistent(self) -> bool:
        return self.delivery_mode == 2


EMPTY_PROPERTIES = Properties()


class Message(NamedTuple):
    """A message on its way to an exchange."""

    body: bytes
    properties: Properties = EMPTY_PROPERTIES
    routing_key: str = ""
    exchange: str = DEFAULT_EXCHANGE


class Delivery(NamedTuple):
    """A message handed to a consumer (``basic.deliver`` or ``basic.get-ok``)."""

    delivery_tag: int
    body: bytes
    properties: Properties
    exchange: str
    routing_key: str
    redelivered: bool
    queue: str = ""
    received_at: float | None = None  # epoch seconds it reached this process (a consumer's)


class Exchange(NamedTuple):
    name: str
    type: ExchangeType
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = {}


class Queue(NamedTuple):
    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = {}
    messages: int = 0  # ready (a stream's: the messages its log keeps)
    unacked: int = 0
    consumers: int = 0
    bytes: int | None = None  # a stream's bodies kept, where the broker reports them
    first_offset: int | None = None  # a stream's oldest and newest offsets, likewise
    last_offset: int | None = None

    @property
    def type(self) -> str:
        """``classic``, ``quorum`` or ``stream``."""
        return str(self.arguments.get("x-queue-type") or "classic")


class QueueStats(NamedTuple):
    """A queue with its traffic (``amq top``): counters since the queue was made, and on
    a broker that computes them (RabbitMQ), its own rates per second."""

    queue: Queue
    published: int | None = None  # messages enqueued into it, in all
    delivered: int | None = None  # messages delivered from it (consumers and basic.get)
    publish_rate: float | None = None
    deliver_rate: float | None = None


class VHostInfo(NamedTuple):
    """A virtual host as ``amq vhost list`` shows it."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()


class Binding(NamedTuple):
    source: str
    destination: str
    destination_type: DestinationType = DestinationType.QUEUE
    routing_key: str = ""
    arguments: dict[str, Any] = {}


class DeclareOk(NamedTuple):
    """``queue.declare-ok``: the queue's name and its counts."""

    queue: str
    message_count: int
    consumer_count: int


class PublishResult(NamedTuple):
    """What became of published messages."""

    published: int = 0
    unroutable: int = 0  # dropped: reached no queue (returned, when mandatory)
    nacked: int = 0  # refused by a queue (reject-publish) or by the broker
    # with confirm, on RabbitMQ: the positions (in the publish call) of those nacked
    refused: tuple[int, ...] = ()
