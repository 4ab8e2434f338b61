"""The Backend over the built-in local broker (``broker/``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from ..amqp.codec import shown
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
)
from ..broker.engine import Broker
from ..config import default_store_path

if TYPE_CHECKING:
    from ..amqp.routing import Route  # loaded when a route is asked for, not at start


def _result(outcomes: list[PublishOutcome], mandatory: bool = True) -> PublishResult:
    """The tally of a publish; without ``mandatory`` nothing is told of unroutable ones
    (RabbitMQ returns them only to a mandatory publish)."""
    unroutable = outcomes.count(PublishOutcome.UNROUTABLE) if mandatory else 0
    return PublishResult(len(outcomes), unroutable, outcomes.count(PublishOutcome.REJECTED))


class LocalSubscription:
    """A consumer of the local broker: a row of the store's registry, which other
    processes hand messages to, and a doorbell it sleeps on until they do."""

    def __init__(self, backend: LocalBackend, queue: str, prefetch: int, no_ack: bool,
                 exclusive: bool, window: int = 0, priority: int = 0) -> None:
        self.backend = backend
        backend.channels += 1
        self.channel = backend.connection.channel(backend.channels)
        self.channel.pause_shared = True
        self.channel.qos(window, global_=True)
        self.channel.qos(prefetch)
        self.bell = backend.broker.new_bell()
        try:
            self.tag = self.channel.consume(queue, no_ack=no_ack, exclusive=exclusive,
                                            priority=priority, bell=self.bell.name)
        except BaseException:
            self.bell.close()
            raise
        self.queue = queue
        self._watch: int | None = None

    def watch(self, fd: int) -> bool:
        self._watch = fd
        return True

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        broker = self.backend.broker
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            deliveries = self.channel.deliver(self.tag, most)
            if deliveries:
                return deliveries
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            if self._watch in broker.wait([self.bell], left, self._watch):
                return []  # the watched descriptor has news (a reader gone): tell the caller

    def set_window(self, most: int) -> None:
        self.channel.qos(most, global_=True)

    def keep_alive(self) -> None:
        self.backend.broker.timers()  # no heartbeats: the store's timers, if it is the sweeper

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        # The store hears of it with the next fetch (or the cancel): one transaction fewer
        # per batch. A crash before then redelivers; it cannot lose a message.
        self.channel.ack(delivery_tag, multiple, lazy=True)

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.channel.nack(delivery_tag, multiple, requeue)

    def cancel(self) -> None:
        try:
            self.channel.close()
        finally:
            self.bell.close()


class LocalBackend:
    """One connection to the local broker in the store file at ``path``."""

    def __init__(self, path: str | None) -> None:
        self.broker = Broker(path)
        # A store this open created, outside the default place: worth a word (a typo?).
        self.created_store = path if self.broker.store.created and \
            path != default_store_path() else None
        self.connection = self.broker.connect()
        self.channels = 1  # channel 1 serves the rest; each subscription gets its own
        self.display_url = f"local:{path}" if path else "local (in memory)"

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareOk:
        return self.connection.declare_queue(
            name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            passive=passive, arguments=arguments)

    def ensure_queue(self, name: str) -> None:
        self.connection.ensure_queue(name)

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        self.connection.declare_exchange(
            name, type, durable=durable, auto_delete=auto_delete, internal=internal,
            passive=passive, arguments=arguments)

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        return self.connection.delete_queue(name, if_unused=if_unused, if_empty=if_empty)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        self.connection.delete_exchange(name, if_unused=if_unused)

    def purge_queue(self, name: str) -> int:
        return self.connection.purge_queue(name)

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None:
        self.connection.bind(source, destination, routing_key, arguments, destination_type)

    def unbind(self, source: str, destination: str, routing_key: str = "",
               arguments: dict[str, Any] | None = None,
               destination_type: DestinationType = DestinationType.QUEUE) -> None:
        self.connection.unbind(source, destination, routing_key, arguments, destination_type)

    def publish(self, exchange: str, messages: Sequence[Message], *,
                confirm: bool = False, sync: bool = True,
                mandatory: bool = True) -> PublishResult:
        for m in messages:
            if not isinstance(m.routing_key, str):  # bytes that are not UTF-8 (JSON input)
                raise errors.UsageError(
                    f"routing key '{shown(m.routing_key)}' is not valid UTF-8: the local "
                    "broker takes UTF-8 routing keys only (RabbitMQ takes any bytes)")
        return _result(self.connection.publish(exchange, messages), mandatory)

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes], *, confirm: bool = False,
                       sync: bool = True, mandatory: bool = True) -> PublishResult:
        return _result(self.connection.publish_bodies(exchange, routing_key, properties, bodies),
                       mandatory)

    def flush_publishes(self) -> PublishResult:
        return PublishResult()  # each publish is one committed transaction: nothing waits

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0,
                priority: int = 0) -> LocalSubscription:
        return LocalSubscription(self, queue, prefetch, no_ack, exclusive, window, priority)

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> Route:
        return self.connection.route(exchange, routing_key, headers)

    def list_queues(self) -> list[Queue]:
        return self.connection.list_queues()

    def queue_names(self) -> list[str]:
        return [q.name for q in self.connection.list_queues()]

    def list_exchanges(self) -> list[Exchange]:
        return self.connection.list_exchanges()

    def list_bindings(self) -> list[Binding]:
        return self.connection.list_bindings()

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.broker.close()
