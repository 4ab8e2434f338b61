"""Handing ready messages to consumers, across connections and processes: one per server.

Consumers register here by queue. ``wake()`` asks for a delivery pass at the end of the
loop turn (``turn.Turn``), inside the turn's transaction; passes are coalesced, so a burst
of publishes, acks and requeues in one turn costs one pass. A pass reads, in one query, which consumed queues still exist and which
have ready messages, then feeds the consumers of each ready queue in turn (round robin,
one message at a time when several compete, as RabbitMQ does; in batches for a lone
consumer), within each consumer's prefetch and while its socket keeps up. A pass hands
out at most ``PASS_BUDGET`` messages and then yields to the sockets.

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
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..broker.engine import Broker
    from .turn import Turn

log = logging.getLogger("amq.server")

POLL_INTERVAL = 0.01  # seconds between checks for other processes' commits
SWEEP_INTERVAL = 1.0
PASS_BUDGET = 2000  # messages handed out per pass before the sockets get a turn
BATCH = 256  # messages claimed at once for a consumer that has a queue to itself


class Feeder(Protocol):
    """What a consumer's channel offers the dispatcher."""

    def feed(self, tag: str, most: int) -> tuple[int, bool]:
        """Deliver up to ``most`` messages to consumer ``tag``: (how many, whether the
        queue ran out: fewer than asked although the consumer had room)."""

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
        budget = PASS_BUDGET
        for name in names:
            consumers = self.queues.get(name)
            if not consumers:
                continue
            if name not in ready:
                for consumer in list(consumers):
                    consumer.feeder.queue_gone(consumer.tag)
            elif ready[name]:
                budget -= self._feed(consumers, budget)
                if budget <= 0:
                    self.wake()  # more to do: after the sockets had a turn
                    return

    def _feed(self, consumers: list[Consumer], budget: int) -> int:
        """Feed a queue's consumers, highest ``x-priority`` first (RabbitMQ's consumer
        priorities), until the queue runs dry, all are full or the budget is spent."""
        sent = 0
        for level in sorted({c.priority for c in consumers}, reverse=True):
            group = [c for c in consumers if c.priority == level]
            count, dry = self._round_robin(consumers, group, budget - sent)
            sent += count
            if dry or sent >= budget:
                break
        return sent

    @staticmethod
    def _round_robin(consumers: list[Consumer], group: list[Consumer],
                     budget: int) -> tuple[int, bool]:
        """Round robin over ``group``: (messages sent, whether the queue ran dry). Who was
        served moves to the end of ``consumers``, the queue's list, for the next pass."""
        sent, idle = 0, 0
        while group and sent < budget and idle < len(group):
            consumer = group.pop(0)
            most = 1 if group else min(BATCH, budget - sent)
            count, dry = consumer.feeder.feed(consumer.tag, most)
            if consumer in consumers:  # still consuming: to the back of the line
                group.append(consumer)
                consumers.remove(consumer)
                consumers.append(consumer)
            sent += count
            if dry:
                return sent, True
            idle = 0 if count else idle + 1
        return sent, False

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
