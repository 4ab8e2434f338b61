"""The connection: ``alive`` while open, and the reconnecting consumer (``Resilient``) is
the plain one while nothing is lost, on both brokers."""

from __future__ import annotations

from amqcli.amqp.model import Properties
from amqcli.backends.reconnect import Consume, Resilient

from .conftest import drain, ready


def test_an_open_connection_is_alive(backend):
    assert backend.alive()
    backend.declare_queue("")  # used, and still there
    assert backend.alive()


def test_a_resilient_consumer_is_the_plain_one_while_nothing_is_lost(backend, connect, name):
    q = name()
    hooks = []

    def subscribe(b, again):
        hooks.append(again)
        b.ensure_queue(q)
        return Consume(q, prefetch=5)

    sub = Resilient(backend, connect, subscribe, lambda text: hooks.append(text))
    assert sub.queue == q and hooks == [False]
    connect().publish_bodies("", q, Properties(), [b"%d" % i for i in range(8)], confirm=True)
    first = drain(sub, 5)
    assert [d.body for d in first] == [b"0", b"1", b"2", b"3", b"4"]  # the prefetch
    assert all(sub.holds(d.delivery_tag) for d in first)
    sub.ack(first[-1].delivery_tag, multiple=True)
    rest = drain(sub)
    assert [d.body for d in rest] == [b"5", b"6", b"7"]
    sub.nack(0, multiple=True, requeue=True)  # everything outstanding goes back
    sub.cancel()
    assert ready(backend, q) == 3 and sub.generation == 0 and hooks == [False]
