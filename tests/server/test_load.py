"""200 concurrent connections, each publishing and consuming: every message is delivered
exactly once (aio-pika, one process, real sockets)."""

from __future__ import annotations

import asyncio
from collections import Counter

from .servers import Served

CONNECTIONS = 200
PER_CONNECTION = 20


def test_200_connections_publish_and_consume(served: Served) -> None:
    import aio_pika

    async def client(n: int, received: Counter[str], done: asyncio.Event) -> None:
        connection = await aio_pika.connect(served.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=10)
            shared = await channel.declare_queue("load-shared")
            own = await channel.declare_queue(f"load-{n}", exclusive=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    received[message.body.decode()] += 1
                    if sum(received.values()) == 2 * CONNECTIONS * PER_CONNECTION:
                        done.set()

            await shared.consume(on_message)
            await own.consume(on_message)
            for i in range(PER_CONNECTION):
                await channel.default_exchange.publish(
                    aio_pika.Message(f"shared {n} {i}".encode()), routing_key="load-shared")
                await channel.default_exchange.publish(
                    aio_pika.Message(f"own {n} {i}".encode()), routing_key=f"load-{n}")
            await done.wait()

    async def main() -> Counter[str]:
        received: Counter[str] = Counter()
        done = asyncio.Event()
        await asyncio.wait_for(
            asyncio.gather(*(client(n, received, done) for n in range(CONNECTIONS))), 120)
        return received

    received = asyncio.run(main())
    expected = {f"{kind} {n} {i}" for kind in ("shared", "own") for n in range(CONNECTIONS)
                for i in range(PER_CONNECTION)}
    assert set(received) == expected
    assert set(received.values()) == {1}, "a message was delivered more than once"
    assert served.amq("list", "queues", "--format", "json").returncode == 0
