"""Handing ready messages to this server's consumers: one per server.

Which consumer gets a message is the store's decision (``broker/dispatch.py``): every
consumer, of this server or of any other process, is a row of its registry, and the
transaction that makes messages ready hands them to consumers with room, in turn. This
dispatcher writes what was handed to this server's consumers to their sockets.

Consumers register here by queue. ``wake()`` asks for a delivery pass at the end of the
loop turn (``turn.Turn``), inside the turn's transaction; passes are coalesced, so a
burst of publishes, acks and requeues in one turn costs one pass. A pass reads, in one
query, which consumed queues still exist and which have messages ready or handed to a
consumer, then feeds the consumers of each such queue in turn, within each consumer's
prefetch and while its socket keeps up. A pass hands out at most ``PASS_BUDGET`` messages
and ``PASS_BYTES`` of bodies (or one message), then yields to the sockets: what a pass
hands out waits in memory for the commit, and a connection whose socket is behind is
skipped, so large messages never pile up.

Commits by this server wake a pass directly (they do not ring its own doorbell: a
pass more, in a transaction of its own, per message). Commits by other processes that
hand messages to this server's consumers (``amq send``) ring the server's doorbell
(``broker/doorbell.py``), which the event loop watches: no polling. The store's timers
(TTL, x-expires, dead processes) run here when this server is the store's sweeper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from ..broker.engine import Broker
    from .turn import Turn

log = logging.getLogger("amq.server")

PASS_BUDGET = 2000  # messages handed out per pass before the sockets get a turn
PASS_BYTES = 16 * 1024 * 1024  # bodies handed out per pass, at most (or one message)
BATCH = 256  # messages claimed at once for a consumer that has a queue to itself


class Fed(NamedTuple):
    """What one ``feed`` delivered."""

    messages: int
    size: int  # bytes of bodies
    dry: bool  # the queue ran out: fewer than asked although the consumer had room


NOTHING = Fed(0, 0, False)


class Budget:
    """What a pass may still hand out."""

    __slots__ = ("messages", "size")

    def __init__(self, messages: int = PASS_BUDGET, size: int = PASS_BYTES) -> None:
        self.messages, self.size = messages, size

    @property
    def spent(self) -> bool:
        return self.messages <= 0 or self.size <= 0

    def take(self, fed: Fed) -> None:
        self.messages -= fed.messages
        self.size -= fed.size


class Feeder(Protocol):
    """What a consumer's channel offers the dispatcher."""

    def feed(self, tag: str, most: int, max_bytes: int) -> Fed:
        """Deliver up to ``most`` messages, of at most ``max_bytes`` (or one message), to
        consumer ``tag``."""

    def queue_gone(self, tag: str) -> None:
        """The consumer's queue was deleted: cancel the consumer."""


class Consumer:
    __slots__ = ("feeder", "priority", "queue", "rid", "tag")

    def __init__(self, feeder: Feeder, tag: str, queue: str, priority: int = 0,
                 rid: int = 0) -> None:
        self.feeder, self.tag, self.queue, self.priority = feeder, tag, queue, priority
        self.rid = rid  # its row in the store's registry


class Dispatcher:
    def __init__(self, broker: Broker, turn: Turn) -> None:
        self.broker = broker
        self.store = broker.store
        self.turn = turn
        turn.on_pass = self._pass
        self.queues: dict[str, list[Consumer]] = {}
        self.bell = broker.new_bell()  # rung when other processes hand us messages
        self.store.quiet.add(self.bell.name)  # our own commits: see ``_tick``
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- registry -------------------------------------------------------------------

    def add(self, consumer: Consumer) -> None:
        self.queues.setdefault(consumer.queue, []).append(consumer)
        self.wake()

    def remove(self, consumer: Consumer) -> None:
        consumers = self.queues.get(consumer.queue)
        if consumers and consumer in consumers:
            consumers.remove(consumer)
            if not consumers:
                del self.queues[consumer.queue]

    # --- passes ---------------------------------------------------------------------

    def wake(self) -> None:
        if self.queues:
            self.turn.want_pass()

    def _pass(self) -> None:
        try:
            self._deliver_ready()
        except Exception as err:  # the store failed: this turn is rolled back
            log.exception("delivering to consumers failed")
            self.turn.fail(err)

    def _deliver_ready(self) -> None:
        names = list(self.queues)
        if not names:
            return
        ready = self._ready(names)
        handed: set[int] | None = None  # read when a queue without ready messages needs it
        budget = Budget()
        for name in names:
            consumers = self.queues.get(name)
            if not consumers:
                continue
            if name not in ready:
                for consumer in list(consumers):
                    consumer.feeder.queue_gone(consumer.tag)
                continue
            if ready[name]:
                wanted = consumers
            else:
                if handed is None:
                    handed = self.broker.handed(self.bell.name)
                wanted = [c for c in consumers if c.rid in handed]
            if wanted:
                self._feed(consumers, wanted, budget)
                if budget.spent:
                    self.wake()  # more to do: after the sockets had a turn
                    return

    @staticmethod
    def _feed(consumers: list[Consumer], wanted: list[Consumer], budget: Budget) -> None:
        """Feed a queue's consumers what the store handed each (``broker/dispatch.py``
        chose who gets what: priorities, round robin, prefetch) until the budget is spent.
        Who was fed moves to the end of the line, so a spent budget shortchanges nobody
        twice in a row."""
        for consumer in list(wanted):
            fed = consumer.feeder.feed(consumer.tag, min(BATCH, budget.messages), budget.size)
            if fed.messages and consumer in consumers:
                consumers.remove(consumer)
                consumers.append(consumer)
            budget.take(fed)
            if budget.spent:
                return

    def _ready(self, names: Sequence[str]) -> dict[str, bool]:
        """Of these queues, those that exist, each with whether it has ready messages."""
        return self.broker.ready_queues(names)

    # --- the doorbell and the timers -------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.bell.fileno() >= 0:
            self._loop.add_reader(self.bell.fileno(), self._rung)
        self._tick()

    def stop(self) -> None:
        if self._loop is not None and self.bell.fileno() >= 0:
            self._loop.remove_reader(self.bell.fileno())
        if self._timer is not None:
            self._timer.cancel()
        self.bell.close()
        if self.broker.sweeper is not None:
            self.broker.sweeper.close()
            self.broker.sweeper = None

    def _rung(self) -> None:
        self.bell.drain()
        self.wake()

    def _tick(self) -> None:
        """The store's timers, if this server is its sweeper; the sweeper's own bell is
        watched too (a deadline moved); without doorbells, a poll for other commits."""
        assert self._loop is not None
        try:
            if self.store.gone_rung:
                self.broker.sweep()
            had = self.broker.sweeper
            left = self.broker.timers()  # may requeue, expire or dead-letter
            if self.store.quiet_rung:  # for our consumers (a turn's own commit wakes its pass)
                self.store.quiet_rung = False
                self.wake()
            if self.broker.sweeper is not None and had is None and \
                    self.broker.sweeper.fileno() >= 0:
                self._loop.add_reader(self.broker.sweeper.fileno(), self._sweeper_rung)
            if self.bell.fileno() < 0:  # no doorbells here: look for others' commits
                self.wake()
                left = min(left, 0.02)
        except Exception as err:  # a store hiccup must not end the timers
            log.exception("running the store's timers failed")
            self.turn.fail(err)
            left = 1.0
        self._timer = self._loop.call_later(max(0.005, left), self._tick)

    def _sweeper_rung(self) -> None:
        sweeper = self.broker.sweeper
        if sweeper is not None:
            sweeper.drain()
        self.broker._next_deadline = 0.0  # look for the new deadline now
        if self._timer is not None:
            self._timer.cancel()
        self._tick()
