"""Dispatch among consumers: round robin, consumer priorities, single active consumer and
quorum queues' delivery limit, the same on both brokers (RabbitMQ 3.10 is the reference).

On the local broker each consumer here is a row of the store's registry, on a connection
of its own, as two processes would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from amqcli.amqp.model import Properties
from amqcli.backends.base import Backend

from .conftest import consumers, drain, ready


def _publish(backend: Backend, queue: str, n: int, start: int = 0) -> None:
    backend.publish_bodies("", queue, Properties(), [str(i).encode() for i in
                                                     range(start, start + n)])


def _bodies(deliveries: list[Any]) -> list[int]:
    return [int(d.body) for d in deliveries]


def _take(sub: Any, n: int, timeout: float = 5.0) -> list[Any]:
    """Exactly ``n`` deliveries (fewer only if they do not come within ``timeout``)."""
    got: list[Any] = []
    while len(got) < n:
        batch = sub.fetch(n - len(got), timeout)
        if not batch:
            break
        got += batch
    return got


def _wait_consumers(backend: Backend, queue: str, n: int) -> None:
    import time
    deadline = time.monotonic() + 10
    while consumers(backend, queue) != n:
        assert time.monotonic() < deadline, f"{queue}: never {n} consumers"
        time.sleep(0.05)


def test_round_robin_hands_each_message_to_the_next_consumer_with_room(
        backend: Backend, connect: Callable[[], Backend], name: Callable[[str], str]) -> None:
    q = name("rr")
    backend.declare_queue(q)
    a = connect().consume(q, prefetch=2)
    b = connect().consume(q, prefetch=2)
    _wait_consumers(backend, q, 2)
    _publish(backend, q, 10)
    got_a, got_b = _bodies(_take(a, 2)), _bodies(_take(b, 2))
    assert sorted(got_a + got_b) == [0, 1, 2, 3]
    assert sorted(got_a) in ([0, 2], [1, 3]), (got_a, got_b)  # alternating, not 0,1 / 2,3
    assert ready(backend, q) == 6  # the rest wait for room: prefetch 2 each
    a.cancel()
    b.cancel()


def test_with_prefetch_1_two_consumers_that_keep_up_share_evenly(
        backend: Backend, connect: Callable[[], Backend], name: Callable[[str], str]) -> None:
    q = name("work")
    backend.declare_queue(q)
    subs = [connect().consume(q, prefetch=1), connect().consume(q, prefetch=1)]
    _wait_consumers(backend, q, 2)
    _publish(backend, q, 20)
    counts = [0, 0]
    for _ in range(10):  # each takes its one message, acks it, and so on
        for i, sub in enumerate(subs):
            got = _take(sub, 1)
            assert len(got) == 1
            counts[i] += 1
            sub.ack(got[0].delivery_tag)
    assert counts == [10, 10]
    for sub in subs:
        sub.cancel()


def test_a_higher_priority_consumer_is_served_first_while_it_has_room(
        backend: Backend, connect: Callable[[], Backend], name: Callable[[str], str]) -> None:
    q = name("prio")
    backend.declare_queue(q)
    low = connect().consume(q, prefetch=5)
    high = connect().consume(q, prefetch=5, priority=10)
    _wait_consumers(backend, q, 2)
    _publish(backend, q, 8)
    got_high = _bodies(_take(high, 5))
    got_low = _bodies(_take(low, 3))
    assert got_high == [0, 1, 2, 3, 4]
    assert got_low == [5, 6, 7]
    low.cancel()
    high.cancel()


def test_single_active_consumer_gets_everything_and_the_next_takes_over(
        backend: Backend, connect: Callable[[], Backend], name: Callable[[str], str]) -> None:
    q = name("sac")
    backend.declare_queue(q, arguments={"x-single-active-consumer": True})
    first = connect().consume(q, prefetch=10)
    _wait_consumers(backend, q, 1)
    second = connect().consume(q, prefetch=10)
    _wait_consumers(backend, q, 2)
    _publish(backend, q, 6)
    got = _take(first, 6)
    assert _bodies(got) == [0, 1, 2, 3, 4, 5]
    assert drain(second, timeout=0.5) == []  # not active: nothing, though it has room
    first.ack(got[2].delivery_tag, multiple=True)  # 0..2 done; 3..5 go back on cancel
    first.cancel()
    taken = _take(second, 3)
    assert _bodies(taken) == [3, 4, 5]
    assert all(d.redelivered for d in taken)
    second.cancel()


def _quorum(backend: Backend, q: str, dlq: str | None, limit: int) -> None:
    arguments: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": limit}
    if dlq is not None:
        backend.declare_queue(dlq, durable=True)
        arguments |= {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    backend.declare_queue(q, durable=True, arguments=arguments)


def test_a_quorum_queue_counts_deliveries_and_dead_letters_past_its_limit(
        backend: Backend, name: Callable[[str], str]) -> None:
    q, dlq = name("limited"), name("limited-dlq")
    _quorum(backend, q, dlq, limit=1)
    _publish(backend, q, 1)
    sub = backend.consume(q, prefetch=1)
    first = _take(sub, 1)[0]
    assert not first.redelivered
    assert "x-delivery-count" not in (first.properties.headers or {})
    sub.nack(first.delivery_tag, requeue=True)
    again = _take(sub, 1)[0]
    assert again.redelivered and again.properties.headers["x-delivery-count"] == 1
    sub.nack(again.delivery_tag, requeue=True)  # returned twice: over the limit of 1
    assert drain(sub, timeout=0.5) == []
    sub.cancel()
    dead = backend.consume(dlq, prefetch=1)
    got = _take(dead, 1)
    assert len(got) == 1 and got[0].body == b"0"
    death = got[0].properties.headers["x-death"][0]
    assert death["reason"] == "delivery_limit" and death["queue"] == q
    dead.cancel()


def test_past_the_delivery_limit_without_a_dead_letter_exchange_it_is_dropped(
        backend: Backend, name: Callable[[str], str]) -> None:
    q = name("limited")
    _quorum(backend, q, None, limit=0)
    _publish(backend, q, 1)
    sub = backend.consume(q, prefetch=1)
    sub.nack(_take(sub, 1)[0].delivery_tag, requeue=True)
    assert drain(sub, timeout=0.5) == []
    sub.cancel()
    assert ready(backend, q) == 0


@pytest.mark.parametrize("requeue_by", ["cancel", "close"])
def test_messages_handed_out_and_returned_go_to_the_other_consumer(
        backend: Backend, connect: Callable[[], Backend], name: Callable[[str], str],
        requeue_by: str) -> None:
    q = name("handover")
    backend.declare_queue(q)
    conn = connect()
    leaving = conn.consume(q, prefetch=3)
    _wait_consumers(backend, q, 1)
    _publish(backend, q, 3)
    assert len(_take(leaving, 3)) == 3
    staying = connect().consume(q, prefetch=10)
    _wait_consumers(backend, q, 2)
    if requeue_by == "cancel":
        leaving.cancel()
    else:
        conn.close()
    got = _take(staying, 3)
    assert sorted(_bodies(got)) == [0, 1, 2] and all(d.redelivered for d in got)
    staying.cancel()
