"""Acks that the server writes with a later turn (``turn.Turn.defer_acks``): they reach the
store within moments while the consumer stays connected, a full consumer gets its next
message at once, and a server killed before writing them redelivers those messages: at
least once, nothing lost."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pika

from .servers import Served, start_server


def _counts(served: Served, queue: str) -> tuple[int, int]:
    rows = json.loads(served.amq("list", "queues", "--format", "json").stdout)
    row = next(r for r in rows if r["name"] == queue)
    return row["messages"], row["unacked"]


def _take(ch, queue: str, count: int) -> list[tuple[int, bytes, bool]]:  # type: ignore[no-untyped-def]
    got: list[tuple[int, bytes, bool]] = []
    for method, _props, body in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, f"only {len(got)} of {count} deliveries"
        got.append((method.delivery_tag, body, method.redelivered))
        if len(got) == count:
            break
    return got


def test_acks_reach_the_store_while_the_consumer_stays(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("acked")
    for i in range(10):
        ch.basic_publish("", "acked", f"m{i}".encode())
    ch.basic_qos(prefetch_count=100)  # never full: its acks are deferred
    for tag, _body, _redelivered in _take(ch, "acked", 10):
        ch.basic_ack(tag)
    conn.process_data_events(0.05)
    deadline = time.monotonic() + 10
    while _counts(served, "acked") != (0, 0):
        assert time.monotonic() < deadline, _counts(served, "acked")
        conn.process_data_events(0.1)
    assert conn.is_open  # the close did not write them: the turn did
    conn.close()


def test_a_full_consumer_gets_the_next_message_at_once(served: Served) -> None:
    """prefetch 1: each ack makes room, which is news for the dispatch (no wait)."""
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("work")
    for i in range(50):
        ch.basic_publish("", "work", f"t{i}".encode())
    ch.basic_qos(prefetch_count=1)
    bodies = []
    started = time.monotonic()
    for method, _props, body in ch.consume("work", inactivity_timeout=10):
        assert method is not None
        bodies.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(bodies) == 50:
            break
    assert bodies == [f"t{i}".encode() for i in range(50)]
    assert time.monotonic() - started < 20  # not a timer's wait per message
    conn.close()


def test_acks_not_yet_written_when_the_server_dies_are_redelivered(tmp_path: Path) -> None:
    store = str(tmp_path / "amq.db")
    server = start_server(store, tmp_path / "server.log")
    conn = pika.BlockingConnection(server.params())
    ch = conn.channel()
    ch.queue_declare("q", durable=True)
    for i in range(20):
        ch.basic_publish("", "q", f"m{i}".encode())
    ch.basic_qos(prefetch_count=100)
    got = _take(ch, "q", 20)
    for tag, _body, _redelivered in got[:10]:
        ch.basic_ack(tag)
    conn.process_data_events(0)  # the acks are on their way
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    again = start_server(store, tmp_path / "again.log")
    try:
        conn2 = pika.BlockingConnection(again.params())
        ch2 = conn2.channel()
        deadline = time.monotonic() + 15
        while (left := ch2.queue_declare("q", passive=True).method.message_count) < 10:
            assert time.monotonic() < deadline, f"{left} back"  # the dead server is swept
            time.sleep(0.1)
        time.sleep(0.5)
        left = ch2.queue_declare("q", passive=True).method.message_count
        assert 10 <= left <= 20  # the unacked ten are back; acked ones may be too
        back = _take(ch2, "q", left)
        bodies = [body for _tag, body, _r in back]
        assert set(bodies) >= {f"m{i}".encode() for i in range(10, 20)}
        assert all(redelivered for _tag, _body, redelivered in back)
        conn2.close()
    finally:
        again.stop()
