"""Large messages do not pile up in the server: a consumer with no prefetch limit whose
socket is not read holds only what one delivery pass (``dispatch.PASS_BYTES``) and the
sockets' buffers take, not the whole queue; once it reads, it gets everything, in order."""

from __future__ import annotations

import json
import time

import pika
from pamqp import body, commands

from .rawclient import RawClient
from .servers import Served

MiB = 1024 * 1024
COUNT = 120


def _unacked(served: Served, queue: str) -> int:
    rows = json.loads(served.amq("list", "queues", "--format", "json").stdout)
    return next(r["unacked"] for r in rows if r["name"] == queue)


def _settled(served: Served, queue: str) -> int:
    """The queue's unacked count once it has stopped changing for a second."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        now = _unacked(served, queue)
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.2)
    return last


def test_a_consumer_that_does_not_read_holds_a_bounded_batch(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("big")
    for i in range(COUNT):
        ch.basic_publish("", "big", i.to_bytes(4, "big") * (MiB // 4))
    conn.close()

    client = RawClient(served.host, served.port, timeout=30)
    try:
        client.handshake()
        client.open_channel(1)
        client.send(commands.Basic.Consume(queue="big", consumer_tag="c"), 1)
        held = _settled(served, "big")
        # one pass (16 MiB + one message) and the kernel's socket buffers, not 120 MiB
        assert 0 < held <= 48, held
        tags, firsts, size = [], [], 0
        while len(tags) < COUNT or size < COUNT * MiB:
            _channel, value = client.read_method(timeout=30)
            if isinstance(value, commands.Basic.Deliver):
                tags.append(value.delivery_tag)
                firsts.append(None)
                client.send(commands.Basic.Ack(value.delivery_tag), 1)
            elif isinstance(value, body.ContentBody):
                if firsts[-1] is None:
                    firsts[-1] = int.from_bytes(value.value[:4], "big")
                size += len(value.value)
        assert tags == list(range(1, COUNT + 1))
        assert firsts == list(range(COUNT)) and size == COUNT * MiB
    finally:
        client.close()
    assert served.amq("purge", "big").stdout.strip() == b"0"
