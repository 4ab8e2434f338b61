"""Handing ready messages to consumers, across connections and processes: one per server.

Consumers register here by queue. ``wake()`` asks for a delivery pass at the end of the
loop turn (``turn.Turn``), inside the turn's transaction; passes are coalesced, so a
burst of publishes, acks and requeues in one turn costs one pass. A pass reads, in one
query, which consumed queues still exist and which have ready messages, then feeds the
consumers of each ready queue in turn (round robin, one message at a time when several
compete, as RabbitMQ does; in batches for a lone consumer), within each consumer's
prefetch and while its socket keeps up. A pass hands out at most ``PASS_BUDGET`` messages
and ``PASS_BYTES`` of bodies (or one message), then yields to the sockets: what a pass
hands out waits in memory for the commit, and a connection whose socket is behind is
skipped, so large messages never pile up.

Commits by this server wake a pass directly. Commits by other processes (``amq send``)
are noticed by the one watcher of the server, which polls the store's ``data_version``
every ``POLL_INTERVAL`` seconds (a few microseconds a poll), and which also sweeps the
store each second: connections of dead processes, TTLs and x-expires (``Broker.sweep``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from ..broker.engine import Broker
    from .turn import Turn

log = logging.getLogger("amq.server")

POLL_INTERVAL = 0.01  # seconds between checks for other processes' commits
SWEEP_INTERVAL = 1.0
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
    __slots__ = ("feeder", "priority", "queue", "tag")

    def __init__(self, feeder: Feeder, tag: str, queue: str, priority: int = 0) -> None:
        self.feeder, self.tag, self.queue, self.priority = feeder, tag, queue, priority


class Dispatcher:
    def __init__(self, broker: Broker, turn: Turn) -> None:
        self.broker = broker
        self.store = broker.store
        self.turn = turn
        turn.on_pass = self._pass
        self.queues: dict[str, list[Consumer]] = {}
        self._watcher: asyncio.Task[None] | None = None

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
        budget = Budget()
        for name in names:
            consumers = self.queues.get(name)
            if not consumers:
                continue
            if name not in ready:
                for consumer in list(consumers):
                    consumer.feeder.queue_gone(consumer.tag)
            elif ready[name]:
                self._feed(consumers, budget)
                if budget.spent:
                    self.wake()  # more to do: after the sockets had a turn
                    return

    def _feed(self, consumers: list[Consumer], budget: Budget) -> None:
        """Feed a queue's consumers, highest ``x-priority`` first (RabbitMQ's consumer
        priorities), until the queue runs dry, all are full or the budget is spent."""
        for level in sorted({c.priority for c in consumers}, reverse=True):
            group = [c for c in consumers if c.priority == level]
            dry = self._round_robin(consumers, group, budget)
            if dry or budget.spent:
                break

    @staticmethod
    def _round_robin(consumers: list[Consumer], group: list[Consumer],
                     budget: Budget) -> bool:
        """Round robin over ``group`` within ``budget``: whether the queue ran dry. Who was
        served moves to the end of ``consumers``, the queue's list, for the next pass."""
        idle = 0
        while group and not budget.spent and idle < len(group):
            consumer = group.pop(0)
            most = 1 if group else min(BATCH, budget.messages)
            fed = consumer.feeder.feed(consumer.tag, most, budget.size)
            if consumer in consumers:  # still consuming: to the back of the line
                group.append(consumer)
                consumers.remove(consumer)
                consumers.append(consumer)
            budget.take(fed)
            if fed.dry:
                return True
            idle = 0 if fed.messages else idle + 1
        return False

    def _ready(self, names: Sequence[str]) -> dict[str, bool]:
        """Of these queues, those that exist, each with whether it has ready messages."""
        return self.broker.ready_queues(names)

    # --- the watcher ----------------------------------------------------------------

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self) -> None:
        seen = self.store.version()[0]
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                now = self.store.version()[0]
                if now != seen:
                    seen = now
                    self.wake()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_INTERVAL
                    self.broker.sweep()  # may requeue, expire or dead-letter
                    self.wake()
            except Exception as err:  # a store hiccup must not end the watcher
                log.exception("checking the store for changes failed")
                self.turn.fail(err)
                await asyncio.sleep(SWEEP_INTERVAL)
