"""Reading a stream from the command line (``receive`` and ``peek``): ``--offset``,
``--to-end``, what a stream refuses (in RabbitMQ 3.10's words), and where a read resumes
after a reconnect: after the last offset it received, not from ``--offset`` again.

``--to-end`` stops at the end of the stream as it was when the read started: the local
broker says where that is (``Backend.stream_end``); RabbitMQ 3.10 does not (its
management API reports no offsets of a stream), so there the read ends once no message
has come for ``RABBITMQ_IDLE`` seconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.streams import OFFSET_HEADER, Offset, parse_offset
from ..backends.wrapped import Wrapped

if TYPE_CHECKING:
    from collections.abc import Generator

    from ..amqp.model import Delivery
    from ..backends.base import Backend, Subscription

RABBITMQ_IDLE = 1.0  # seconds without a delivery that end a read --to-end on RabbitMQ
LOCAL_IDLE = 0.2  # the same locally, where the end offset is known: only an empty read


class StreamPlan(NamedTuple):
    """``--offset`` (None: ``next``, as RabbitMQ reads a stream without one), ``--to-end``."""

    offset: Offset | None
    to_end: bool


def plan_stream(offset: str | None, to_end: bool, now: float | None = None) -> StreamPlan | None:
    """The flags as a plan (None without either); UsageError for a bad ``--offset``."""
    if offset is None and not to_end:
        return None
    parsed = None if offset is None else parse_offset(offset, time.time() if now is None
                                                      else now)
    return StreamPlan(parsed, to_end)


def nack_refused(queue: str, hint: str) -> errors.BrokerError:
    """RabbitMQ 3.10's answer to a nack or reject on a stream, said before consuming (its
    vhost left out: the command does not know it)."""
    return errors.AMQPNotImplemented(
        f"basic.nack and basic.reject not supported by stream queues queue '{queue}'",
        hint=hint)


class Reading:
    """One read of a queue that may be a stream, shared by the command's subscribe hook
    (which consumes from ``arguments()``) and the ``Until`` wrapped around its
    subscription (which notes the last offset received and stops at the end)."""

    def __init__(self, plan: StreamPlan | None) -> None:
        self.plan = plan
        self.last: int | None = None  # the last offset received
        self.stop_at: int | None = None  # --to-end: the end, where known
        self.stream = False

    def check(self, backend: Backend, queue: str, *, requeue: bool = False,
              reject: bool = False, window: bool = False) -> None:
        """Look up whether ``queue`` is a stream when it matters (stream flags, flags a
        stream refuses, a channel-wide ``window``, which a stream refuses) and refuse
        what cannot apply; the end for ``--to-end``."""
        if self.plan is None and not (requeue or reject or window):
            return
        kind = backend.queue_type(queue)
        self.stream = kind == "stream"
        if not self.stream:
            if self.plan is not None and kind is not None:
                raise errors.UsageError(f"--offset and --to-end read a stream: queue "
                                        f"'{queue}' is a {kind} queue")
            return
        if requeue:
            raise nack_refused(queue, "a stream keeps what is read: read it again "
                                      "(--offset) instead of --requeue")
        if reject:
            raise nack_refused(queue, "a stream keeps every message: --on-failure cannot "
                                      "reject one")
        if self.plan is not None and self.plan.to_end and self.last is None:
            self.stop_at = backend.stream_end(queue)

    def arguments(self) -> dict[str, Any] | None:
        """The consume's ``x-stream-offset``: after the last offset received, else where
        ``--offset`` says (None: none, ``next``)."""
        if self.last is not None:
            return {OFFSET_HEADER: self.last + 1}
        if self.plan is None or self.plan.offset is None:
            return None
        return {OFFSET_HEADER: self.plan.offset.argument()}

    def idle(self, timeout: float | None) -> float | None:
        """The idle timeout of the read: ``--to-end`` caps it."""
        if self.plan is None or not self.plan.to_end:
            return timeout
        idle = LOCAL_IDLE if self.stop_at is not None else RABBITMQ_IDLE
        return idle if timeout is None else min(idle, timeout)


def offset_of(d: Delivery) -> int | None:
    value = (d.properties.headers or {}).get(OFFSET_HEADER)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Until(Wrapped):
    """A ``Subscription`` of a stream read: notes the last offset received (to resume
    there after a reconnect) and, with a known end (``--to-end``), hands out nothing
    past it."""

    def __init__(self, sub: Subscription, reading: Reading) -> None:
        super().__init__(sub)
        self.reading = reading
        self.done = False

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        if self.done:
            if timeout:
                time.sleep(min(timeout, LOCAL_IDLE))
            return []
        batch = self.sub.fetch(most, timeout)
        stop = self.reading.stop_at
        if stop is not None:
            kept = [d for d in batch if (offset_of(d) or 0) < stop]
            if len(kept) < len(batch) or (batch and offset_of(batch[-1]) == stop - 1):
                self.done = True
            batch = kept
        if batch:
            last = offset_of(batch[-1])
            if last is not None:
                self.reading.last = last
        return batch


PEEK_BATCH = 1000  # deliveries a peek of a stream takes at once (its prefetch)


def peek_stream(backend: Backend, queue: str, offset: Offset | None,
                most: int | None) -> Generator[list[Delivery], None, None]:
    """``peek`` of a stream: a read from ``offset`` (default ``first``) to the end as it
    was when the peek started, at most ``most`` messages (None: all). Nothing changes:
    reading a stream removes nothing."""
    reading = Reading(StreamPlan(offset or Offset("first"), True))
    reading.check(backend, queue)
    prefetch = PEEK_BATCH if most is None else min(most, PEEK_BATCH)
    sub = Until(backend.consume(queue, prefetch=prefetch, arguments=reading.arguments()),
                reading)
    seen = 0
    try:
        while most is None or seen < most:
            batch = sub.fetch(prefetch if most is None else min(prefetch, most - seen),
                              reading.idle(None))
            if not batch:
                return
            sub.ack(batch[-1].delivery_tag, multiple=True)  # room for the next batch
            seen += len(batch)
            yield [d._replace(delivery_tag=0, received_at=None) for d in batch]
    finally:
        sub.cancel()
