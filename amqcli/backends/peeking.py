"""``peek`` where the broker has no method for it (RabbitMQ): a consumer with a prefetch of
the count holds the messages while they are shown, and every one goes back to the queue at
the end (``basic.nack`` with requeue, then the cancel), flagged redelivered."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from .. import errors
from ..amqp.model import Delivery

if TYPE_CHECKING:
    from .base import Backend

IDLE = 1.0  # seconds without a delivery after which a peek ends early (others took them)
BATCH = 1000  # deliveries handed out at once
MAX_PREFETCH = 65535  # basic.qos takes a short: past it, no limit


def consumer_peek(backend: Backend, queue: str, most: int | None, force: bool,
                  delivery_limited: Callable[[str], bool]) -> Generator[list[Delivery], None, None]:
    """The Backend's ``peek`` through ``basic.consume``; ``delivery_limited(queue)`` says
    whether a return would count towards a delivery limit (refused unless ``force``)."""
    ready = backend.declare_queue(queue, passive=True).message_count
    want = ready if most is None else min(most, ready)
    if not want:
        return
    if not force and _limited(delivery_limited, queue):
        raise errors.Refused(
            f"queue '{queue}' is a quorum queue with a delivery limit: on RabbitMQ a peek "
            "returns each message it shows, which counts as a delivery and can "
            "dead-letter (or drop) it", hint="--force to peek anyway")
    sub = backend.consume(queue, prefetch=want if want <= MAX_PREFETCH else 0)
    seen = 0
    try:
        while seen < want:
            batch = sub.fetch(min(BATCH, want - seen), IDLE)
            if not batch:
                return
            batch = batch[:want - seen]
            seen += len(batch)
            yield [d._replace(delivery_tag=0, received_at=None) for d in batch]
    finally:
        try:
            sub.nack(0, multiple=True, requeue=True)
        except errors.AmqError:
            pass  # the cancel (or the connection's close) requeues them too
        sub.cancel()


def _limited(delivery_limited: Callable[[str], bool], queue: str) -> bool:
    try:
        return delivery_limited(queue)
    except errors.AmqError as err:
        raise errors.Refused(
            f"cannot tell whether queue '{queue}' counts returns towards a delivery limit "
            f"({err})", hint="--force to peek anyway") from None
