"""The Backend over the built-in local broker (``broker/``)."""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
    QueueStats,
    VHostInfo,
)
from ..broker import process
from ..broker.engine import Broker
from ..broker.store import Store
from ..broker.vhosts import DEFAULT as DEFAULT_VHOST
from ..broker.vhosts import Registry
from ..config import default_store_path

if TYPE_CHECKING:
    from ..amqp.definitions import Step
    from ..amqp.routing import Route  # loaded when a route is asked for, not at start


def _result(outcomes: list[PublishOutcome], mandatory: bool = True,
            confirm: bool = False) -> PublishResult:
    """The tally of a publish; without ``mandatory`` nothing is told of unroutable ones
    (RabbitMQ returns them only to a mandatory publish); with ``confirm``, which ones were
    refused."""
    unroutable = outcomes.count(PublishOutcome.UNROUTABLE) if mandatory else 0
    rejected = PublishOutcome.REJECTED
    refused = tuple(i for i, o in enumerate(outcomes) if o is rejected) if confirm else ()
    return PublishResult(len(outcomes), unroutable, outcomes.count(rejected), refused)


class LocalSubscription:
    """A consumer of the local broker: a row of the store's registry, which other
    processes hand messages to, and a doorbell it sleeps on until they do."""

    def __init__(self, backend: LocalBackend, queue: str, prefetch: int, no_ack: bool,
                 exclusive: bool, window: int = 0, priority: int = 0,
                 arguments: dict[str, Any] | None = None) -> None:
        self.backend = backend
        backend.channels += 1
        self.channel = backend.connection.channel(backend.channels)
        self.channel.pause_shared = True
        self.channel.qos(window, global_=True)
        self.channel.qos(prefetch)
        self.bell = backend.broker.new_bell()
        try:
            self.tag = self.channel.consume(queue, no_ack=no_ack, exclusive=exclusive,
                                            priority=priority, bell=self.bell.name,
                                            arguments=arguments)
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
    """One connection to the local broker in the store file at ``path``, in vhost ``vhost``
    (``broker/vhosts.py``: another vhost is a store file of its own, which the registry in
    ``path`` names)."""

    def __init__(self, path: str | None, vhost: str = DEFAULT_VHOST) -> None:
        self.vhost = vhost
        self._home: Store | None = None  # the store of '/', holding the registry
        if vhost == DEFAULT_VHOST:
            self.broker = Broker(path)
            home = self.broker.store
        else:
            if path is None:
                raise errors.UsageError("a local broker in memory has the vhost '/' only")
            home = Store(path)
            try:
                self.broker = Registry(home).open(vhost)
            except BaseException:
                home.close()
                raise
            self._home = home
            self.broker.deleted = self._vhost_deleted
        # A store this open created, outside the default place: worth a word (a typo?).
        self.created_store = path if home.created and path != default_store_path() else None
        self.connection = self.broker.connect()
        self.channels = 1  # channel 1 serves the rest; each subscription gets its own
        self._ahead: deque[list[PublishOutcome]] = deque()  # begin_each's, not yet ended
        self.display_url = (f"local:{path}" if path else "local (in memory)") + \
            (f"?vhost={quote(vhost, safe='')}" if vhost != DEFAULT_VHOST else "")

    # --- vhosts (the registry is in the store of vhost '/') ------------------------------

    def _registry(self) -> Registry:
        return Registry(self._home or self.broker.store)

    def _vhost_deleted(self) -> bool:
        found = self._registry().get(self.vhost)
        return found is None or found.id != self.broker.vhost_id

    def list_vhosts(self) -> list[VHostInfo]:
        return [VHostInfo(v.name, v.description, tuple(t for t in v.tags.split(",") if t))
                for v in self._registry().list()]

    def add_vhost(self, name: str, description: str = "", tags: Sequence[str] = (),
                  grant: bool = True) -> bool:
        return self._registry().add(name, description, ",".join(tags))

    def delete_vhost(self, name: str) -> None:
        self._registry().delete(name)

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

    @staticmethod
    def _check_keys(messages: Sequence[Message]) -> None:
        for m in messages:
            if not isinstance(m.routing_key, str):  # bytes that are not UTF-8 (JSON input)
                raise errors.UsageError(
                    f"routing key '{shown(m.routing_key)}' is not valid UTF-8: the local "
                    "broker takes UTF-8 routing keys only (RabbitMQ takes any bytes)")

    def publish(self, exchange: str, messages: Sequence[Message], *,
                confirm: bool = False, sync: bool = True,
                mandatory: bool = True) -> PublishResult:
        self._check_keys(messages)
        return _result(self.connection.publish(exchange, messages), mandatory, confirm)

    def publish_each(self, exchange: str,
                     messages: Sequence[Message]) -> list[PublishOutcome]:
        self._check_keys(messages)
        return self.connection.publish(exchange, messages)  # one commit: the confirm

    def begin_each(self, exchange: str, messages: Sequence[Message]) -> None:
        self._ahead.append(self.publish_each(exchange, messages))  # committed: confirmed

    def end_each(self) -> list[PublishOutcome]:
        return self._ahead.popleft()

    def move_ready(self, queue: str, most: int, exchange: str,
                   routing_key: str | None) -> list[PublishOutcome]:
        if routing_key is not None:
            self._check_keys([Message(b"", routing_key=routing_key)])
        return self.connection.channel(1).move(queue, most, exchange, routing_key)

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes], *, confirm: bool = False,
                       sync: bool = True, mandatory: bool = True) -> PublishResult:
        return _result(self.connection.publish_bodies(exchange, routing_key, properties, bodies),
                       mandatory, confirm)

    def flush_publishes(self) -> PublishResult:
        return PublishResult()  # each publish is one committed transaction: nothing waits

    def consume(self, queue: str, *, prefetch: int = 0, no_ack: bool = False,
                exclusive: bool = False, window: int = 0, priority: int = 0,
                arguments: dict[str, Any] | None = None) -> LocalSubscription:
        kind = LocalSubscription if self.vhost == DEFAULT_VHOST else _VHostSubscription
        return kind(self, queue, prefetch, no_ack, exclusive, window, priority, arguments)

    def peek(self, queue: str, most: int | None, *, force: bool = False
             ) -> Generator[list[Delivery], None, None]:
        return self.connection.channel(1).peek(queue, most)  # a true peek: nothing to force

    def tracing(self) -> bool | None:
        return bool(self.connection.store.read(
            "SELECT 1 FROM meta WHERE key = 'trace' AND value"))

    def trace_hint(self) -> str:
        return "turn it on with `amq broker trace on`"

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> Route:
        return self.connection.route(exchange, routing_key, headers)

    def list_queues(self) -> list[Queue]:
        return self.connection.list_queues()

    def queue_stats(self) -> list[QueueStats]:
        counters = self.connection.queue_counters()
        return [QueueStats(q, *counters.get(q.name, (0, 0)))
                for q in self.connection.list_queues()]

    def queue_names(self) -> list[str]:
        return [q.name for q in self.connection.list_queues()]

    def queue_type(self, name: str) -> str | None:
        return self.connection.queue_type(name)

    def stream_end(self, name: str) -> int | None:
        return self.connection.stream_end(name)

    def list_exchanges(self) -> list[Exchange]:
        return self.connection.list_exchanges()

    def list_bindings(self) -> list[Binding]:
        return self.connection.list_bindings()

    def policy_arguments(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {}  # no policies here

    def import_definitions(self, steps: Sequence[Step]) -> None:
        from ..amqp.definitions import create
        with self.broker.store.transaction():  # the declares join it: all or nothing
            create(self.connection, steps)

    def alive(self) -> bool:
        return True  # a store file, opened by this process: no connection to lose

    def reconnect(self) -> None:
        pass  # the store is the broker: no connection to lose

    def status(self) -> dict[str, Any]:
        path = self.broker.store.path
        files = [path, f"{path}-wal", f"{path}-shm"]
        size = sum(os.path.getsize(f) for f in files if os.path.exists(f))
        registered: dict[int, list[tuple[str, int]]] = {}
        for pid, name, consumers in self.broker.connection_rows():
            registered.setdefault(pid, []).append((name, consumers))
        me = os.getpid()
        pids = sorted((set(process.users_of(set(files))) | set(registered)) - {me})
        queues = self.connection.list_queues()
        return {
            "broker": "local",
            "url": self.display_url,
            "store": path,
            "vhost": self.vhost,
            "size": size,
            "queues": len(queues),
            "messages": sum(q.messages + q.unacked for q in queues),
            "processes": [{
                "pid": pid,
                "command": process.command_line(pid),
                "connections": len(registered.get(pid, [])),
                "consumers": sum(c for _, c in registered.get(pid, [])),
            } for pid in pids],
        }

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.broker.close()
            if self._home is not None:
                self._home.close()


# --- another vhost's texts ----------------------------------------------------------------
# The engine's error texts say vhost '/' (a store file does not know which vhost it is);
# a backend of another vhost says its own, as RabbitMQ does ("no queue 'q' in vhost 'x'").
# Subclasses, so that vhost '/' pays nothing for it.

def _in_vhost(vhost: Callable[[Any], str], fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            out = fn(self, *args, **kwargs)
        except errors.BrokerError as err:
            raise err.in_vhost(vhost(self)) from None
        if isinstance(out, Generator):
            return _generator_in_vhost(out, vhost(self))
        return out
    return method


def _generator_in_vhost(gen: Generator[Any, None, None], vhost: str) -> Iterator[Any]:
    try:
        yield from gen
    except errors.BrokerError as err:
        raise err.in_vhost(vhost) from None


def _speaking_vhost(cls: type, vhost: Callable[[Any], str]) -> type:
    out = type(f"{cls.__name__}InVHost", (cls,), {})
    for name in dir(cls):
        fn = getattr(cls, name)
        if not name.startswith("_") and callable(fn) and not isinstance(fn, type):
            setattr(out, name, _in_vhost(vhost, fn))
    return out


_VHostSubscription = _speaking_vhost(LocalSubscription, lambda sub: sub.backend.vhost)
_VHostBackend = _speaking_vhost(LocalBackend, lambda backend: backend.vhost)


def open_local(path: str | None, vhost: str = DEFAULT_VHOST) -> LocalBackend:
    """The local backend of a vhost (one of another vhost speaks its name in its errors)."""
    if vhost == DEFAULT_VHOST:
        return LocalBackend(path)
    try:
        backend: LocalBackend = _VHostBackend(path, vhost)
    except errors.BrokerError as err:
        raise err.in_vhost(vhost) from None
    return backend
