"""``Backend.move_ready`` where the broker cannot move messages itself (RabbitMQ): a
consumer with a prefetch of the count takes them, ``publish_each`` publishes them
(mandatory, confirmed), the routed ones are acknowledged, and the cancel puts the others
back (flagged redelivered, as RabbitMQ requeues). A loss between the confirms and the acks
leaves those in both queues: at least once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..amqp.model import Message, PublishOutcome

if TYPE_CHECKING:
    from ..amqp.model import Delivery
    from .base import Backend

FIRST = 2.0  # seconds to wait for the first delivery of a queue that said it had some
MORE = 0.05  # and for each further one
MAX_PREFETCH = 65535  # basic.qos takes a short


def consumer_move(backend: Backend, queue: str, most: int, exchange: str,
                  routing_key: str | None) -> list[PublishOutcome]:
    """``move_ready`` through ``basic.consume`` on ``backend``, publishing on it too."""
    ready = backend.declare_queue(queue, passive=True).message_count
    if exchange:
        backend.declare_exchange(exchange, passive=True)  # 404 before anything is taken
    want = min(most, ready, MAX_PREFETCH)
    if want <= 0:
        return []
    sub = backend.consume(queue, prefetch=want)
    try:
        batch: list[Delivery] = []
        while len(batch) < want:
            more = sub.fetch(want - len(batch), MORE if batch else FIRST)
            if not more:
                break
            batch += more
        if not batch:
            return []
        outcomes = backend.publish_each(exchange, [
            Message(d.body, d.properties, routing_key if routing_key is not None
                    else d.routing_key) for d in batch])
        for d, outcome in zip(batch, outcomes, strict=True):
            if outcome is PublishOutcome.ROUTED:
                sub.ack(d.delivery_tag)
        return outcomes
    finally:
        sub.cancel()  # what was not acknowledged goes back
