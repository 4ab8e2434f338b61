"""The Backend protocol: one documented interface for the local broker and RabbitMQ.

Every command of the CLI and the shell talks to a broker only through this interface, so
the same command behaves the same on both. Each method's promise is written here once;
``local.py`` and ``rabbitmq.py`` implement it. Errors are ``errors.AmqError``s carrying
RabbitMQ's reply codes and texts; a failed operation leaves the backend usable (a closed
channel is reopened).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

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
from ..amqp.routing import Route

if TYPE_CHECKING:
    from ..amqp.definitions import Step


class Subscription(Protocol):
    """A consumer on one queue (``basic.consume``), acknowledging by delivery tag."""

    queue: str

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        """Wait up to ``timeout`` seconds (None: forever) for messages; return those that
        arrived, at most ``most`` and never more than the prefetch allows, or ``[]`` on
        timeout. ``timeout=0`` does not wait but still services the connection (reads
        what arrived, answers heartbeats). Raises ``ConsumerCancelled`` if the broker
        cancelled the consumer."""

    def watch(self, fd: int) -> bool:
        """Also end a ``fetch``'s wait when ``fd`` reports an error or hang-up (a pipe
        whose reader left), returning ``[]`` early; whether this subscription can (if
        not, the caller looks at ``fd`` itself between short fetches)."""

    def keep_alive(self) -> None:
        """Service the connection without waiting and without taking deliveries (they
        stay buffered): call it at least every second while not fetching, for example
        while waiting for a slow reader of stdout, so heartbeats are answered."""

    def set_window(self, most: int) -> None:
        """Change the channel-wide limit on unacknowledged deliveries (``basic.qos`` with
        global; 0: none, the consumer's prefetch alone applies) for deliveries to come."""

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (with ``multiple``: every one up to it)."""

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Return deliveries to the queue (``requeue``) or drop/dead-letter them."""

    def cancel(self) -> None:
        """Stop consuming; deliveries not acknowledged go back to the queue."""


class Backend(Protocol):
    """A connection to one broker."""

    display_url: str  # the broker's URL with any password masked

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareOk:
        """``queue.declare``; ``name=""`` asks the broker for a name. 406/405 on mismatch."""

    def ensure_queue(self, name: str) -> None:
        """Declare a plain queue unless one of that name exists (whatever its arguments)."""

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        """``exchange.declare``."""

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        """``queue.delete``: the number of ready messages deleted (0 for a missing queue)."""

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """``exchange.delete`` (a missing exchange is fine)."""

    def purge_queue(self, name: str) -> int:
        """``queue.purge``: the number of ready messages removed."""

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None:
        """``queue.bind`` (or ``exchange.bind``): messages flow from source to destination."""

    def unbind(self, source: str, destination: str, routing_key: str = "",
               arguments: dict[str, Any] | None = None,
               destination_type: DestinationType = DestinationType.QUEUE) -> None:
        """``queue.unbind`` (or ``exchange.unbind``); a missing binding is fine."""

    def publish(self, exchange: str, messages: Sequence[Message], *,
                confirm: bool = False, sync: bool = True,
                mandatory: bool = True) -> PublishResult:
        """Publish and count what reached no queue. With ``mandatory`` (the default) the
        broker returns such messages and they are counted as ``unroutable``; without it
        they are dropped unreported, on both brokers (``unroutable`` stays 0), as
        RabbitMQ drops them. ``confirm`` waits for the broker to take responsibility for
        every message (publisher confirms); the local broker's commit is that
        confirmation; the result's ``refused`` then names the messages the broker
        nacked, by position, for a resend. ``sync=False`` (bulk sends) may leave returns
        still to come: ``flush_publishes`` then collects them. With ``confirm``, a lost
        connection raises ``ConnectionLost`` whose ``unconfirmed`` names the messages
        not confirmed (nacked included), by position."""

    def publish_each(self, exchange: str,
                     messages: Sequence[Message]) -> list[PublishOutcome]:
        """Publish with ``mandatory`` and a publisher confirm, wait for every confirm, and
        say what became of each message, in order: ``ROUTED`` (the broker took
        responsibility for it), ``UNROUTABLE`` (returned: it reached no queue) or
        ``REJECTED`` (nacked), for commands that settle each message by its fate (``amq
        move`` acknowledges on the source only what reached the destination). The local
        broker's engine gives each message's outcome itself; on RabbitMQ, returns arrive
        in publish order before the confirms of the same messages, carrying exchange,
        routing key, properties and body: they are matched to the messages in order by
        content (identical messages are interchangeable), and nacks by delivery tag. A
        lost connection raises ``ConnectionLost`` (``unconfirmed`` as for ``publish``).
        Only this method keeps returned messages: ``publish`` stays as cheap as it was."""

    def begin_each(self, exchange: str, messages: Sequence[Message]) -> None:
        """``publish_each`` in two halves, for a caller that overlaps windows (``amq
        move`` publishes the next window while this one's confirms come in): publish
        without waiting for the confirms; ``end_each`` then says what became of each
        message of the oldest window begun and not yet ended. Windows end in the order
        they began; nothing else publishes on the backend meanwhile. A lost connection
        raises ``ConnectionLost`` (from either half) and forgets every window begun: the
        caller publishes again what it still holds (at least once)."""

    def end_each(self) -> list[PublishOutcome]:
        """The outcomes of the oldest window ``begin_each`` published and not yet ended,
        in order, once its confirms are in (``publish_each``'s outcomes). On RabbitMQ a
        window with a return or a nack waits for the windows begun after it, whose
        outcomes come with it: returns carry no delivery tag, so they are matched over
        all of them at once."""

    def move_ready(self, queue: str, most: int, exchange: str,
                   routing_key: str | None) -> list[PublishOutcome]:
        """Move up to ``most`` ready messages from the head of ``queue`` to ``exchange``,
        with ``routing_key`` (None: each message's own), properties and headers kept: each
        published with ``mandatory`` and a publisher confirm, and acknowledged on
        ``queue`` only if it was ``ROUTED``; the others (unroutable, nacked) stay in
        ``queue``. One outcome per message taken, in queue order (``[]``: none was
        ready; it never waits for more). The local broker does it in one store
        transaction: the messages never leave the engine, and whenever the process dies
        each one is in one queue or the other, never lost and never in both. RabbitMQ
        does it the generic way (``moving.py``): a consumer takes them, ``publish_each``,
        then the acks; a loss in between leaves them in both places (at least once).
        404 for a missing queue or exchange, before anything is taken."""

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes], *, confirm: bool = False,
                       sync: bool = True, mandatory: bool = True) -> PublishResult:
        """``publish`` for many bodies sharing a routing key and properties (bulk sends)."""

    def flush_publishes(self) -> PublishResult:
        """Wait until every return and nack of earlier ``sync=False`` publishes is in;
        those (``unroutable``, ``nacked``), counted since the last flush."""

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0, priority: int = 0,
                arguments: dict[str, Any] | None = None) -> Subscription:
        """``basic.qos`` then ``basic.consume``. A ``window`` (not 0) also limits the
        channel's unacknowledged deliveries from the start (``basic.qos`` global, set
        before the consume: the lower limit applies); ``set_window`` changes it.
        ``priority``: the consumer's ``x-priority`` (higher ones are served first while
        they have room). ``arguments``: the consume's other arguments, as RabbitMQ takes
        them: ``x-stream-offset`` (``amqp.streams.Offset.argument``) makes a reader of a
        stream start there (default ``next``); on a stream a prefetch and manual acks
        are required (406, 540 otherwise), each delivery carries its offset in the
        ``x-stream-offset`` header, reading removes nothing, and an ack only gives the
        reader room for more."""

    def peek(self, queue: str, most: int | None, *, force: bool = False
             ) -> Generator[list[Delivery], None, None]:
        """Look at the ready messages of ``queue`` without consuming them, in delivery
        order, in batches: at most ``most`` (None: all) of those it holds when the peek
        starts; never waits for more. The local broker reads them and changes nothing.
        RabbitMQ has no such method: a consumer with a prefetch of that many holds them,
        and they all go back when the iteration ends (flagged redelivered; other
        consumers cannot take them meanwhile). On a quorum queue that counts returns
        (``x-delivery-limit``), where that could dead-letter them, it raises ``Refused``
        unless ``force``. 404 for a missing queue, 405 for another's exclusive one."""

    def tracing(self) -> bool | None:
        """Whether the firehose is on (every publish and delivery copied to
        ``amq.rabbitmq.trace``); None when the broker cannot say."""

    def trace_hint(self) -> str:
        """How to turn the firehose on, in a few words."""

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> Route:
        """Where a message would go (bindings matched per exchange, queues reached),
        without publishing it."""

    def list_queues(self) -> list[Queue]:
        """Every queue with its exact ready, unacknowledged and consumer counts."""

    def queue_stats(self) -> list[QueueStats]:
        """Every queue with its counts and traffic, touching none (no declare, no
        consumer: no ``x-expires`` lease is renewed). The local broker's counters come
        from the store (each publish and claim adds to them), without rates; RabbitMQ's
        counts, counters and rates from the management API, seconds late."""

    def list_vhosts(self) -> list[VHostInfo]:
        """The broker's vhosts (RabbitMQ: through the management API)."""

    def add_vhost(self, name: str, description: str = "", tags: Sequence[str] = (),
                  grant: bool = True) -> bool:
        """Add a vhost; False if it existed (left as it is). ``grant``: on RabbitMQ, the
        URL's user gets every permission in it (the local broker has no users)."""

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost and all it holds (``errors.NotFound`` if there is none)."""

    def queue_names(self) -> list[str]:
        """The queues' names only (completion): cheaper than ``list_queues``, and it touches
        no queue (no ``x-expires`` lease is renewed)."""

    def queue_type(self, name: str) -> str | None:
        """``classic``, ``quorum`` or ``stream``; None when there is no such queue or the
        broker cannot say (RabbitMQ without its management API)."""

    def stream_end(self, name: str) -> int | None:
        """The offset the next message appended to stream ``name`` will get (where a read
        ``--to-end`` stops); None when the broker does not tell (RabbitMQ 3.10's
        management API reports no offsets)."""

    def list_exchanges(self) -> list[Exchange]: ...

    def policy_arguments(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What policies give queues and exchanges, by ``(kind, name)`` (kind ``queue``
        or ``exchange``), as the arguments they stand for (``x-dead-letter-exchange``,
        ``alternate-exchange``, ``x-message-ttl``, ...). The local broker has no
        policies: nothing."""

    def list_bindings(self) -> list[Binding]: ...

    def import_definitions(self, steps: Sequence[Step]) -> None:
        """Create what an import's plan (``amqp.definitions.plan``) says to create, in its
        order, after checking what it found: all or nothing where the broker allows it.
        The local broker does it in one transaction (any error: nothing is created). On
        RabbitMQ, declares are not transactional: passive declares of what the plan found
        there come first (a 404/405 then creates nothing), then the declares, and one
        failing half-way leaves what was declared before it."""

    def alive(self) -> bool:
        """Whether the connection is still there, looked at without waiting (what the
        broker sent meanwhile is read: a close, a dead socket). Always so locally."""

    def status(self) -> dict[str, Any]:
        """What ``amq status`` reports, field by field (JSON values, in the order shown):
        ``broker`` (``local`` or ``rabbitmq``) and ``url`` first; on RabbitMQ the host
        connected to, the node, its version and cluster name; locally the store file,
        its size and the processes that have it open."""

    def reconnect(self) -> None:
        """Connect again after the connection was lost (``errors.ConnectionLost``, or the
        broker closing it): to the next host of a multi-host URL first, then the others.
        What lived on the old connection (channels, consumers, exclusive queues,
        unconfirmed publishes) is gone. ``BrokerUnreachable`` when no host answers. The
        local broker has no connection to lose: nothing to do."""

    def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
