"""Other AMQP clients against ``amq broker serve``: pika's asynchronous SelectConnection,
aio-pika (over aiormq) and kombu (over py-amqp)."""

from __future__ import annotations

import asyncio

import pika

from .servers import Served


def test_pika_select_connection(served: Served) -> None:
    got: list[bytes] = []
    confirmed: list[int] = []
    state: dict[str, object] = {}

    def on_open(conn: pika.SelectConnection) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch: object) -> None:
        state["ch"] = ch
        ch.confirm_delivery(lambda frame: confirmed.append(frame.method.delivery_tag))
        ch.queue_declare("select", callback=on_declared)

    def on_declared(_frame: object) -> None:
        ch = state["ch"]
        for i in range(100):
            ch.basic_publish("", "select", str(i).encode())
        ch.basic_qos(prefetch_count=10,
                     callback=lambda _f: ch.basic_consume("select", on_message))

    def on_message(ch: object, method: object, _props: object, body: bytes) -> None:
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == 100:
            ch.connection.close()

    conn = pika.SelectConnection(served.params(), on_open_callback=on_open)
    conn.ioloop.call_later(30, conn.ioloop.stop)
    conn.add_on_close_callback(lambda *_: conn.ioloop.stop())
    conn.ioloop.start()
    assert got == [str(i).encode() for i in range(100)]
    assert confirmed and max(confirmed) == 100


def test_aio_pika(served: Served) -> None:
    import aio_pika

    async def main() -> tuple[list[bytes], str]:
        connection = await aio_pika.connect_robust(served.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=5)
            exchange = await channel.declare_exchange("aio", aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(exchange, "orders.#")
            for i in range(20):
                await exchange.publish(
                    aio_pika.Message(str(i).encode(), headers={"i": i},
                                     correlation_id=f"c{i}"), routing_key="orders.new")
            await exchange.publish(aio_pika.Message(b"ignored"), routing_key="other")
            got = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        got.append(message.body)
                        last = message.correlation_id
                    if len(got) == 20:
                        break
            return got, last
    got, last = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == [str(i).encode() for i in range(20)] and last == "c19"


def test_aio_pika_rpc_and_get(served: Served) -> None:
    import aio_pika

    async def main() -> tuple[bytes, int]:
        connection = await aio_pika.connect(served.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("aio-get", auto_delete=False)
            await channel.default_exchange.publish(
                aio_pika.Message(b"payload", expiration=60), routing_key="aio-get")
            message = await queue.get(timeout=5)
            await message.ack()
            declared = await channel.declare_queue("aio-get", passive=True)
            return message.body, declared.declaration_result.message_count
    body, left = asyncio.run(asyncio.wait_for(main(), 30))
    assert (body, left) == (b"payload", 0)


def test_kombu(served: Served) -> None:
    import kombu

    with kombu.Connection(f"amqp://guest:guest@{served.host}:{served.port}//") as conn:
        queue = conn.SimpleQueue("kombu-simple")
        for i in range(10):
            queue.put({"n": i})
        got = []
        for _ in range(10):
            message = queue.get(block=True, timeout=5)
            got.append(message.payload["n"])
            message.ack()
        queue.close()
        assert got == list(range(10))

        exchange = kombu.Exchange("kombu-direct", type="direct")
        bound = kombu.Queue("kombu-bound", exchange, routing_key="k")
        received: list[str] = []
        with kombu.Consumer(conn, [bound], callbacks=[
                lambda body, message: (received.append(body), message.ack())]):
            producer = kombu.Producer(conn)
            producer.publish("hello", exchange=exchange, routing_key="k",
                             declare=[bound], serializer="json")
            while not received:
                conn.drain_events(timeout=5)
        assert received == ["hello"]


def test_direct_reply_to(served: Served) -> None:
    """RPC through amq.rabbitmq.reply-to: the reply goes straight to the requester."""
    server_conn = pika.BlockingConnection(served.params())
    responder = server_conn.channel()
    responder.queue_declare("rpc-direct")

    client_conn = pika.BlockingConnection(served.params())
    client = client_conn.channel()
    replies: list[tuple[bytes, str]] = []
    client.basic_consume("amq.rabbitmq.reply-to",
                         lambda _ch, method, props, body: replies.append(
                             (body, props.correlation_id)), auto_ack=True)
    client.basic_publish("", "rpc-direct", b"21",
                         pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                              correlation_id="c1"))
    _method, props, body = responder.basic_get("rpc-direct", auto_ack=True)
    assert props.reply_to.startswith("amq.rabbitmq.reply-to.")
    responder.basic_publish("", props.reply_to, str(int(body) * 2).encode(),
                            pika.BasicProperties(correlation_id=props.correlation_id))
    while not replies:
        client_conn.process_data_events(0.1)
    assert replies == [(b"42", "c1")]
    client_conn.close()
    server_conn.close()
