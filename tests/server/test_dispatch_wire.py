"""Dispatch as AMQP clients see it, on ``amq broker serve`` and on RabbitMQ alike: a
channel-wide prefetch (``basic.qos`` with ``global``) shared by the channel's consumers,
consumer priorities and a single active consumer across connections."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pika

from .servers import Target, unique


def _collect(conn: Any, seconds: float = 1.0) -> None:
    conn.process_data_events(time_limit=seconds)


def test_a_global_prefetch_is_shared_by_the_consumers_of_a_channel(broker: Target) -> None:
    conn = pika.BlockingConnection(broker.params())
    try:
        ch = conn.channel()
        q1, q2 = unique("gq1"), unique("gq2")
        for q in (q1, q2):
            ch.queue_declare(q, auto_delete=True)
            for i in range(5):
                ch.basic_publish("", q, str(i).encode())
        ch.basic_qos(prefetch_count=3, global_qos=True)
        got: Counter[str] = Counter()
        tags: list[int] = []

        def on_message(_ch: Any, method: Any, _props: Any, _body: bytes) -> None:
            got[method.routing_key] += 1
            tags.append(method.delivery_tag)

        ch.basic_consume(q1, on_message)
        ch.basic_consume(q2, on_message)
        _collect(conn)
        assert sum(got.values()) == 3, got  # three in all, not three each
        ch.basic_ack(tags[-1], multiple=True)
        _collect(conn)
        assert sum(got.values()) == 6, got
        ch.basic_ack(tags[-1], multiple=True)
        _collect(conn)
        assert sum(got.values()) == 9
        ch.basic_ack(tags[-1], multiple=True)
        _collect(conn)
        assert got == {q1: 5, q2: 5}
    finally:
        conn.close()


def test_consumer_priorities_across_connections(broker: Target) -> None:
    q = unique("prio")
    conns = [pika.BlockingConnection(broker.params()) for _ in range(3)]
    try:
        setup = conns[0].channel()
        setup.queue_declare(q, auto_delete=True)
        got: Counter[str] = Counter()
        chans = []
        for conn, (who, priority) in zip(conns[1:], [("low", 0), ("high", 5)], strict=True):
            ch = conn.channel()
            ch.basic_qos(prefetch_count=4)
            ch.basic_consume(q, lambda _c, _m, _p, _b, who=who: got.update([who]),
                             arguments={"x-priority": priority})
            chans.append(ch)
        for i in range(6):
            setup.basic_publish("", q, str(i).encode())
        for _ in range(3):
            for conn in conns[1:]:
                _collect(conn, 0.3)
        assert got == {"high": 4, "low": 2}  # the high one while it has room, then the low
    finally:
        for conn in conns:
            conn.close()


def test_single_active_consumer_across_connections(broker: Target) -> None:
    q = unique("sac")
    owner = pika.BlockingConnection(broker.params())
    first = pika.BlockingConnection(broker.params())
    second = pika.BlockingConnection(broker.params())
    try:
        setup = owner.channel()
        setup.queue_declare(q, arguments={"x-single-active-consumer": True})
        got: dict[str, list[bytes]] = {"first": [], "second": []}
        a, b = first.channel(), second.channel()
        a.basic_consume(q, lambda _c, _m, _p, body: got["first"].append(body))
        _collect(first, 0.3)
        b.basic_consume(q, lambda _c, _m, _p, body: got["second"].append(body))
        _collect(second, 0.3)
        for i in range(4):
            setup.basic_publish("", q, str(i).encode())
        for _ in range(3):
            _collect(first, 0.3)
            _collect(second, 0.3)
        assert got == {"first": [b"0", b"1", b"2", b"3"], "second": []}
        first.close()  # unacked: back to the queue, to the consumer that takes over
        for _ in range(5):
            _collect(second, 0.3)
        assert sorted(got["second"]) == [b"0", b"1", b"2", b"3"]
        setup.queue_delete(q)
    finally:
        for conn in (owner, first, second):
            if conn.is_open:
                conn.close()
