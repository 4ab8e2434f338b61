"""Stream queues over AMQP 0-9-1 as RabbitMQ 3.10 serves them, with pika, against ``amq
broker serve`` and RabbitMQ side by side: the declare rules, ``x-stream-offset`` in all its
forms (a timestamp too), the offset header on each delivery, and the errors for
``basic.get``, a consumer without prefetch or with automatic acks, a purge, a nack."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from .servers import Target, unique

STREAM = {"x-queue-type": "stream"}


@pytest.fixture
def stream(broker: Target) -> Iterator[tuple[Target, str]]:
    """A stream holding m0..m4, published in two batches (m0-m2, then m3-m4)."""
    name = unique("stream")
    conn = pika.BlockingConnection(broker.params())
    ch = conn.channel()
    ch.queue_declare(name, durable=True, arguments=STREAM)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", name, f"m{i}".encode())
    time.sleep(1.1)
    for i in range(3, 5):
        ch.basic_publish("", name, f"m{i}".encode(), pika.BasicProperties(headers={"k": i}))
    yield broker, name
    conn.channel().queue_delete(name)
    conn.close()


def _read(target: Target, queue: str, offset: Any, prefetch: int = 10,
          idle: float = 1.0) -> list[tuple[bytes, Any]]:
    """(body, headers) of what a consumer at ``offset`` gets, acking each."""
    conn = pika.BlockingConnection(target.params())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    got: list[tuple[bytes, Any]] = []

    def on_message(chx: Any, method: Any, props: Any, body: bytes) -> None:
        got.append((body, props.headers))
        chx.basic_ack(method.delivery_tag)
    args = None if offset is None else {"x-stream-offset": offset}
    ch.basic_consume(queue, on_message, arguments=args)
    seen, quiet = -1, time.monotonic()
    while time.monotonic() - quiet < idle:
        conn.process_data_events(0.1)
        if len(got) != seen:
            seen, quiet = len(got), time.monotonic()
    conn.close()
    return got


def test_declare_rules(broker: Target) -> None:
    name = unique("stream")
    conn = pika.BlockingConnection(broker.params())
    try:
        for flags, word in (({"durable": True, "auto_delete": True}, "auto-delete"),
                            ({"durable": True, "exclusive": True}, "exclusive-owner"),
                            ({}, "non-durable")):
            ch = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
                ch.queue_declare(name, arguments=STREAM, **flags)
            assert err.value.reply_code == 406
            assert err.value.reply_text == (f"PRECONDITION_FAILED - invalid property "
                                            f"'{word}' for queue '{name}' in vhost '/'")
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
            ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-length": 5})
        assert err.value.reply_text == (f"PRECONDITION_FAILED - invalid arg 'x-max-length' "
                                        f"for queue '{name}' in vhost '/' of queue type "
                                        "rabbit_stream_queue")
        ch = conn.channel()
        ok = ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-age": "7D"})
        assert (ok.method.message_count, ok.method.consumer_count) == (0, 0)
        ch.queue_delete(name)
    finally:
        conn.close()


def test_every_offset_form(stream: tuple[Target, str]) -> None:
    target, name = stream
    every = [f"m{i}".encode() for i in range(5)]
    first = _read(target, name, "first")
    assert [b for b, _h in first] == every
    assert [h["x-stream-offset"] for _b, h in first] == [0, 1, 2, 3, 4]
    assert first[3][1] == {"k": 3, "x-stream-offset": 3}
    assert [b for b, _h in _read(target, name, 3)] == every[3:]
    assert [b for b, _h in _read(target, name, 100)] == []
    assert _read(target, name, "next") == []
    assert [b for b, _h in _read(target, name, None)] == []  # default: next
    last = [b for b, _h in _read(target, name, "last")]
    assert last and last == every[-len(last):]
    assert [b for b, _h in _read(target, name, b"first")] == every
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    assert [b for b, _h in _read(target, name, before)] == every
    assert [b for b, _h in _read(target, name, "first", prefetch=1)] == every


def _error(target: Target, call: Callable[[Any], Any]) -> tuple[int, str]:
    conn = pika.BlockingConnection(target.params())
    ch = conn.channel()
    try:
        call(ch)
        conn.process_data_events(0.5)
        ch.basic_qos(prefetch_count=1)  # a round trip: the error has come by now
    except (pika.exceptions.ChannelClosedByBroker,
            pika.exceptions.ConnectionClosedByBroker) as err:
        return err.args[0], err.args[1]
    finally:
        if conn.is_open:
            conn.close()
    raise AssertionError("no error")


def test_what_a_stream_refuses(stream: tuple[Target, str]) -> None:
    target, name = stream
    where = f"queue '{name}' in vhost '/'"

    def consume(ch: Any, **kwargs: Any) -> None:
        ch.basic_consume(name, lambda *a: None, **kwargs)

    def qos_then(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(ch: Any) -> Any:
            ch.basic_qos(prefetch_count=10)
            return call(ch)
        return run

    def nack(ch: Any) -> None:
        ch.basic_qos(prefetch_count=10)
        got: list[int] = []
        ch.basic_consume(name, lambda c, m, p, b: got.append(m.delivery_tag),
                         arguments={"x-stream-offset": "first"})
        while not got:
            ch.connection.process_data_events(0.1)
        ch.basic_nack(got[0], requeue=True)

    assert _error(target, lambda ch: ch.basic_get(name)) == (
        540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues {where}")
    assert _error(target, consume) == (
        406, f"PRECONDITION_FAILED - consumer prefetch count is not set for '{where}'")
    assert _error(target, qos_then(lambda ch: consume(ch, auto_ack=True))) == (
        540, f"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream "
             f"queues {where}")
    assert _error(target, lambda ch: ch.queue_purge(name)) == (
        540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues {where}")
    assert _error(target, nack) == (
        540, f"NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream "
             f"queues {where}")
