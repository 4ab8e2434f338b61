"""A robust client (aio-pika's ``connect_robust``: it reconnects and restores its channels,
queues and consumers) behind a proxy that cuts the connection again and again ends up with
every message it was sent, against ``amq broker serve`` and RabbitMQ alike.

100 messages of 12 KB are published on a direct connection and consumed through
``tests/faultproxy.py``, which cuts each connection after a few hundred bytes, the
allowance doubling after each cut (so that, as on a network that keeps failing, each
connection gets a little further than the last). At least once: duplicates may come
(a message whose ack was cut off is redelivered), none may be missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
import pytest
from faultproxy import FaultProxy

from .servers import Target, unique

COUNT = 100
SIZE = 12_000


async def _publish(url: str, queue: str) -> None:
    async with await aio_pika.connect(url) as direct:
        channel = await direct.channel(publisher_confirms=True)
        await channel.declare_queue(queue)
        for i in range(COUNT):
            body = i.to_bytes(4, "big") + b"m" * (SIZE - 4)
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def _consume_through(proxy: FaultProxy, url: str, queue: str) -> tuple[set[int], int]:
    """Consume until every message has come; (the messages, how many deliveries)."""
    seen: set[int] = set()
    deliveries = 0
    robust = await aio_pika.connect_robust(proxy.url(url) + "?reconnect_interval=0.1")
    try:
        channel = await robust.channel()
        await channel.set_qos(prefetch_count=10)
        q = await channel.declare_queue(queue)
        everything = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal deliveries
            deliveries += 1
            assert len(message.body) == SIZE
            seen.add(int.from_bytes(message.body[:4], "big"))
            with contextlib.suppress(Exception):  # cut mid-ack: redelivered later, fine
                await message.ack()
            if len(seen) == COUNT:
                everything.set()

        await q.consume(on_message)
        proxy.cut_after(300, direction="down", grow=2)  # from now on
        proxy.cut()
        await asyncio.wait_for(everything.wait(), 50)
    finally:
        proxy.heal()
        await robust.close()
    return seen, deliveries


def test_robust_consumer_behind_a_cutting_proxy_gets_every_message(
        broker: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="aio_pika")  # reconnect noise
    caplog.set_level(logging.CRITICAL, logger="aiormq")
    queue = unique("robust")

    async def main() -> tuple[set[int], int, int]:
        await _publish(broker.url, queue)
        with FaultProxy(broker.host, broker.port) as proxy:
            seen, deliveries = await _consume_through(proxy, broker.url, queue)
            cuts = proxy.stats.cuts
        async with await aio_pika.connect(broker.url) as direct:
            channel = await direct.channel()
            await channel.queue_delete(queue)
        return seen, deliveries, cuts

    seen, deliveries, cuts = asyncio.run(asyncio.wait_for(main(), 90))
    assert seen == set(range(COUNT))
    assert deliveries >= COUNT
    assert cuts >= 5  # the proxy did cut, again and again
