"""The Backend protocol: one documented interface for the local broker and RabbitMQ.

Every command of the CLI and the shell talks to a broker only through this interface, so
the same command behaves the same on both. Each method's promise is written here once;
``local.py`` and ``rabbitmq.py`` implement it. Errors are ``errors.AmqError``s carrying
RabbitMQ's reply codes and texts; a failed operation leaves the backend usable (a closed
channel is reopened).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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
from ..amqp.routing import Route


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
        confirmation. ``sync=False`` (bulk sends) may leave returns still to come:
        ``flush_publishes`` then collects them."""

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes], *, confirm: bool = False,
                       sync: bool = True, mandatory: bool = True) -> PublishResult:
        """``publish`` for many bodies sharing a routing key and properties (bulk sends)."""

    def flush_publishes(self) -> PublishResult:
        """Wait until every return and nack of earlier ``sync=False`` publishes is in;
        those (``unroutable``, ``nacked``), counted since the last flush."""

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0, priority: int = 0) -> Subscription:
        """``basic.qos`` then ``basic.consume``. A ``window`` (not 0) also limits the
        channel's unacknowledged deliveries from the start (``basic.qos`` global, set
        before the consume: the lower limit applies); ``set_window`` changes it.
        ``priority``: the consumer's ``x-priority`` (higher ones are served first while
        they have room)."""

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> Route:
        """Where a message would go (bindings matched per exchange, queues reached),
        without publishing it."""

    def list_queues(self) -> list[Queue]:
        """Every queue with its exact ready, unacknowledged and consumer counts."""

    def queue_names(self) -> list[str]:
        """The queues' names only (completion): cheaper than ``list_queues``, and it touches
        no queue (no ``x-expires`` lease is renewed)."""

    def list_exchanges(self) -> list[Exchange]: ...

    def list_bindings(self) -> list[Binding]: ...

    def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
