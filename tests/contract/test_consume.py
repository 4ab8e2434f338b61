"""Consuming: fetch within the prefetch, ack and nack (multiple, requeue), cancel and close
requeue what was not acknowledged, a consumer cancelled by the broker."""

from __future__ import annotations

import pytest

from amqcli import errors
from amqcli.amqp.model import Properties

from .conftest import consumers, drain, ready

P = Properties()


def filled(backend, name, n):
    q = name()
    backend.declare_queue(q)
    backend.publish_bodies("", q, P, [str(i).encode() for i in range(n)], confirm=True)
    return q


def test_fetch_waits_for_a_later_message_and_times_out_empty(backend, connect, name):
    q = name()
    backend.declare_queue(q)
    sub = backend.consume(q)
    assert sub.queue == q
    assert sub.fetch(10, 0.2) == []
    connect().publish_bodies("", q, P, [b"later"], confirm=True)
    [d] = sub.fetch(10, 10)
    assert (d.body, d.exchange, d.routing_key, d.redelivered, d.queue) == \
        (b"later", "", q, False, q)


def test_fetch_gives_at_most_most_and_the_prefetch(backend, name):
    q = filled(backend, name, 6)
    sub = backend.consume(q, prefetch=2)
    got = drain(sub)
    assert [d.body for d in got] == [b"0", b"1"]  # the prefetch holds the rest back
    sub.ack(got[-1].delivery_tag, multiple=True)
    got = drain(sub)
    assert [d.body for d in got] == [b"2", b"3"]
    everything = drain(backend.consume(q, prefetch=0), 1)  # most=1 on an unlimited one
    assert [d.body for d in everything] == [b"4"]


def test_ack_takes_and_multiple_covers_everything_up_to_the_tag(backend, connect, name):
    q = filled(backend, name, 5)
    sub = backend.consume(q)
    got = drain(sub, 5)
    assert [d.body for d in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert len({d.delivery_tag for d in got}) == 5
    sub.ack(got[2].delivery_tag, multiple=True)  # 0, 1, 2
    sub.ack(got[4].delivery_tag)  # 4 alone
    backend.close()  # 3 was not acknowledged: it goes back
    other = connect()
    [back] = drain(other.consume(q))
    assert (back.body, back.redelivered) == (b"3", True)


def test_nack_requeues_flagged_redelivered_in_place_or_drops(backend, name):
    q = filled(backend, name, 4)
    sub = backend.consume(q)
    got = drain(sub, 4)
    sub.nack(got[1].delivery_tag, multiple=True, requeue=True)  # 0 and 1 back
    sub.nack(got[2].delivery_tag, requeue=False)  # 2 dropped (no dead-letter exchange)
    sub.ack(got[3].delivery_tag)
    again = drain(sub)
    assert [(d.body, d.redelivered) for d in again] == [(b"0", True), (b"1", True)]
    sub.ack(again[-1].delivery_tag, multiple=True)
    sub.cancel()
    assert ready(backend, q) == 0


def test_nack_without_requeue_dead_letters(backend, name):
    dlx, dead = name("dlx"), name("dead")
    backend.declare_exchange(dlx, "fanout")
    backend.declare_queue(dead)
    backend.bind(dlx, dead)
    q = name()
    backend.declare_queue(q, arguments={"x-dead-letter-exchange": dlx})
    backend.publish_bodies("", q, P, [b"m"], confirm=True)
    sub = backend.consume(q)
    [d] = sub.fetch(1, 10)
    sub.nack(d.delivery_tag, requeue=False)
    [dl] = drain(backend.consume(dead))
    assert dl.body == b"m"
    assert dl.properties.headers["x-death"][0]["reason"] == "rejected"


def test_no_ack_deliveries_are_taken_at_once(backend, connect, name):
    q = filled(backend, name, 3)
    sub = backend.consume(q, no_ack=True)
    assert [d.body for d in drain(sub, 3)] == [b"0", b"1", b"2"]
    backend.close()  # nothing to requeue: they were settled when delivered
    assert ready(connect(), q) == 0


def test_cancel_requeues_what_was_not_acknowledged(backend, name):
    q = filled(backend, name, 3)
    sub = backend.consume(q)
    got = drain(sub, 3)
    sub.ack(got[0].delivery_tag)
    sub.cancel()
    assert consumers(backend, q) == 0
    again = drain(backend.consume(q), 3)
    assert [(d.body, d.redelivered) for d in again] == [(b"1", True), (b"2", True)]


def test_close_requeues_what_was_not_acknowledged(backend, connect, name):
    q = filled(backend, name, 3)
    first, second = backend.consume(q, prefetch=1), backend.consume(q, prefetch=1)
    held = first.fetch(1, 10) + second.fetch(1, 10)
    assert sorted(d.body for d in held) == [b"0", b"1"]
    backend.close()
    other = connect()
    assert consumers(other, q) == 0
    again = drain(other.consume(q), 3)
    assert [(d.body, d.redelivered) for d in again] == [(b"0", True), (b"1", True),
                                                         (b"2", False)]


def test_competing_consumers_share_each_message_once(backend, name):
    q = filled(backend, name, 20)
    subs = [backend.consume(q, prefetch=1) for _ in range(3)]
    seen: list[bytes] = []
    while len(seen) < 20:
        progress = False
        for sub in subs:
            for d in sub.fetch(1, 0.2):
                seen.append(d.body)
                sub.ack(d.delivery_tag)
                progress = True
        assert progress, f"stalled after {len(seen)}"
    assert sorted(seen) == sorted(str(i).encode() for i in range(20))


def test_a_consumer_of_a_deleted_queue_is_cancelled(backend, connect, name):
    q = filled(backend, name, 1)
    sub = backend.consume(q)
    assert len(sub.fetch(1, 10)) == 1
    assert connect().delete_queue(q) == 0  # the one message was unacked: not counted ready
    with pytest.raises(errors.ConsumerCancelled, match=q):
        sub.fetch(1, 10)
    sub.cancel()  # cancelling what the broker cancelled: fine
    backend.declare_queue(q)  # the backend is still usable
    assert ready(backend, q) == 0


def test_consuming_a_missing_queue_is_not_found(backend, name):
    with pytest.raises(errors.NotFound, match="no queue"):
        backend.consume(name()).fetch(1, 0.2)
    q = filled(backend, name, 1)
    assert [d.body for d in drain(backend.consume(q))] == [b"0"]


def test_an_exclusive_consumer_keeps_others_out(backend, name):
    q = filled(backend, name, 1)
    backend.consume(q, exclusive=True)
    with pytest.raises(errors.AccessRefused, match="exclusive use"):
        backend.consume(q).fetch(1, 0.2)
