"""Background subscriptions of the shell: ``subscribe QUEUE`` consumes in a thread, on a
connection of its own (the session's connection stays free for commands), prints each
message above the prompt and then acknowledges it.

Stopping one (``unsubscribe``, leaving the shell, switching broker) cancels its consumer
and closes its connection: whatever it had not acknowledged goes back to the queue.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import errors
from ..amqp.model import Delivery
from ..config import BrokerURL

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..backends.base import Subscription as Consumer
    from ..backends.reconnect import Consume, Resilient

PREFETCH = 50
POLL_SECONDS = 0.2  # how soon a stop request is noticed
READY_TIMEOUT = 30.0  # a broker that takes longer to start a consumer is reported


@dataclass(frozen=True, slots=True)
class Source:
    """What to consume: a queue, or an exchange through a fresh exclusive queue."""

    queue: str | None = None
    exchange: str | None = None
    keys: tuple[str, ...] = ("",)
    declare: bool = True
    reconnect: bool = True  # on RabbitMQ, reconnect when the connection drops

    @property
    def name(self) -> str:
        return self.queue if self.queue is not None else f"exchange {self.exchange}"


@dataclass(eq=False)
class Subscription:
    """One background consumer."""

    id: int
    source: Source
    url: BrokerURL
    show: Callable[[Subscription, Delivery], None]
    note: Callable[[str], None]
    queue: str = ""  # the queue consumed (server-named with an exchange source)
    received: int = 0
    error: errors.AmqError | None = None
    _ready: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Start consuming; raises the broker's error when it cannot."""
        self._thread = threading.Thread(target=self._run, name=f"amq-sub-{self.id}",
                                        daemon=True)
        self._thread.start()
        try:
            ready = self._ready.wait(READY_TIMEOUT)
        except BaseException:  # Ctrl+C while waiting: no orphan consumer left behind
            self.request_stop()
            raise
        if not ready:
            self.stop(0)
            raise errors.BrokerUnreachable(f"the broker did not start the consumer on "
                                           f"'{self.source.name}' in time")
        if self.error is not None:
            raise self.error

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and \
            not self._stop.is_set()

    def _run(self) -> None:
        consumer: Resilient | None = None
        try:
            consumer = self._open()
        except errors.AmqError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - a bug: one line, never a traceback
            self.error = errors.AmqError(f"internal error: {type(err).__name__}: {err}")
        self._ready.set()
        if consumer is None:
            return  # _open closed what it had opened
        try:
            self._consume(consumer)
        except errors.AmqError as err:
            self.note(f"subscription {self.id} ({self.source.name}) ended: {err}")
        except Exception as err:  # noqa: BLE001
            self.note(f"subscription {self.id} ({self.source.name}) ended: internal error: "
                      f"{type(err).__name__}: {err}")
        finally:
            self._stop.set()
            _close(consumer.backend, consumer)

    def _open(self) -> Resilient:
        """The consumer, on a connection of its own that is opened again if lost (on
        RabbitMQ, with heartbeats that notice a dead peer)."""
        from ..backends import open_backend
        from ..backends.reconnect import Resilient, long_running
        url = long_running(self.url)
        backend = open_backend(url)
        try:
            consumer = Resilient(backend, lambda: open_backend(url), self._prepare,
                                 self._say, reconnect=self.source.reconnect)
        except BaseException:
            _close(backend, None)
            raise
        self.queue = consumer.queue
        return consumer

    def _prepare(self, backend: Backend, again: bool) -> Consume:
        from ..backends.reconnect import Consume
        queue = _prepare(backend, self.source)
        if again and self.source.exchange is not None:
            self._say(f"amq: subscribed to '{self.source.exchange}' again through a new "
                      f"queue '{queue}': messages published while disconnected were not "
                      "seen")
        return Consume(queue, PREFETCH)

    def _say(self, text: str) -> None:
        self.note(f"subscription {self.id} ({self.source.name}): {text.removeprefix('amq: ')}")

    def _consume(self, consumer: Resilient) -> None:
        while not self._stop.is_set():
            for delivery in consumer.fetch(PREFETCH, POLL_SECONDS):
                if self._stop.is_set():
                    return  # the rest goes back to the queue with the cancel
                self.received += 1
                self.show(self, delivery)
                consumer.ack(delivery.delivery_tag)
            self.queue = consumer.queue  # a new one after a reconnect, with an exchange


def _prepare(backend: Backend, source: Source) -> str:
    """Declare what the source needs (as ``amq receive`` does); the queue to consume."""
    if source.exchange is not None:
        backend.declare_exchange(source.exchange, passive=True)
        queue = backend.declare_queue("", exclusive=True).queue
        for key in source.keys:
            backend.bind(source.exchange, queue, key)
        return queue
    assert source.queue is not None
    if source.declare:
        backend.ensure_queue(source.queue)
    return source.queue


def _close(backend: Backend | None, consumer: Consumer | None) -> None:
    """Cancel the consumer (its unacknowledged messages go back) and close the connection."""
    if consumer is not None:
        _quietly(consumer.cancel)
    if backend is not None:
        _quietly(backend.close)


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # closing anyway
        action()


class Subscriptions:
    """The session's subscriptions, numbered from 1."""

    def __init__(self, show: Callable[[Subscription, Delivery], None],
                 note: Callable[[str], None]) -> None:
        self.show = show
        self.note = note
        self._all: list[Subscription] = []
        self._next_id = 1

    def start(self, url: BrokerURL, source: Source) -> Subscription:
        sub = Subscription(self._next_id, source, url, self.show, self.note)
        sub.start()
        self._next_id += 1
        self._all.append(sub)
        return sub

    def active(self) -> list[Subscription]:
        self._all = [s for s in self._all if s.running]
        return list(self._all)

    def find(self, name_or_id: str) -> list[Subscription]:
        """The subscriptions with that id, queue or exchange name."""
        return [s for s in self.active()
                if name_or_id in (str(s.id), s.queue, s.source.queue, s.source.exchange)]

    def stop(self, subs: list[Subscription]) -> None:
        for sub in subs:
            sub.request_stop()  # all at once, then wait for each
        for sub in subs:
            sub.stop()
        self._all = [s for s in self._all if s not in subs]

    def stop_all(self) -> None:
        self.stop(list(self._all))
