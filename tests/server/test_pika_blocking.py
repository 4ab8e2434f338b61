"""pika's BlockingConnection against ``amq broker serve``: the everyday flows."""

from __future__ import annotations

import decimal

import pika
import pika.exceptions
import pytest

from .servers import Served


def test_publish_then_get(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("hello")
    ch.basic_publish("", "hello", b"Hello World!",
                     pika.BasicProperties(content_type="text/plain", headers={"n": 1}))
    method, props, body = ch.basic_get("hello", auto_ack=True)
    assert body == b"Hello World!"
    assert props.content_type == "text/plain" and props.headers == {"n": 1}
    assert method.message_count == 0 and method.routing_key == "hello"
    assert ch.basic_get("hello") == (None, None, None)
    conn.close()


def test_consume_prefetch_and_ack(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("work")
    for i in range(50):
        ch.basic_publish("", "work", str(i).encode())
    ch.basic_qos(prefetch_count=5)
    got = []
    for method, _props, body in ch.consume("work", inactivity_timeout=2):
        if method is None:
            break
        got.append(int(body))
        ch.basic_ack(method.delivery_tag)
        if len(got) == 50:
            break
    ch.cancel()
    assert got == list(range(50))
    assert ch.queue_declare("work", passive=True).method.message_count == 0
    conn.close()


def test_confirms_returns_and_nack_requeue(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("c")
    ch.basic_publish("", "c", b"one", mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", "nowhere", b"lost", mandatory=True)
    method, _p, body = ch.basic_get("c")
    assert body == b"one" and not method.redelivered
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _p, body = ch.basic_get("c")
    assert body == b"one" and method.redelivered
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert ch.basic_get("c") == (None, None, None)
    conn.close()


def test_channel_error_keeps_connection(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("missing", passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == "NOT_FOUND - no queue 'missing' in vhost '/'"
    ch2 = conn.channel()
    ch2.queue_declare("there")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch2.basic_publish("no-such-exchange", "k", b"x")
        ch2.queue_declare("there", passive=True)  # the error arrives by then
    assert info.value.reply_code == 404
    assert conn.is_open
    conn.close()


def test_exclusive_queue_locked_and_deleted_with_connection(served: Served) -> None:
    owner = pika.BlockingConnection(served.params())
    name = owner.channel().queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-")
    other = pika.BlockingConnection(served.params())
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.channel().queue_declare(name, passive=True)
    assert info.value.reply_code == 405
    owner.close()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.channel().queue_declare(name, passive=True)
    assert info.value.reply_code == 404
    other.close()


def test_transactions(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("tx")
    ch.tx_select()
    ch.basic_publish("", "tx", b"rolled back")
    ch.tx_rollback()
    ch.basic_publish("", "tx", b"committed")
    assert ch.queue_declare("tx", passive=True).method.message_count == 0
    ch.tx_commit()
    assert ch.queue_declare("tx", passive=True).method.message_count == 1
    method, _p, body = ch.basic_get("tx")
    assert body == b"committed"
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()  # the ack is undone: the message stays unacked
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    assert ch.queue_declare("tx", passive=True).method.message_count == 0
    conn.close()


def test_command_line_and_server_share_the_store(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("shared")
    served.amq("send", "shared", "from the command line")
    got = []
    for method, _props, body in ch.consume("shared", inactivity_timeout=5):
        assert method is not None, "the message from amq send never arrived"
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        break
    ch.cancel()
    assert got == [b"from the command line"]
    ch.basic_publish("", "shared", b"from pika")
    out = served.amq("receive", "shared", "--count", "1", "--timeout", "5").stdout
    assert out == b"from pika\n"
    conn.close()


def test_consumer_cancelled_when_queue_deleted(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("doomed")
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("doomed", lambda *a: None)
    served.amq("delete", "queue", "doomed")
    deadline = 50
    while not cancelled and deadline:
        conn.process_data_events(0.1)
        deadline -= 1
    assert cancelled == [tag]
    conn.close()


def test_engine_features_over_the_wire(served: Served) -> None:
    """Arguments, headers and x-death tables survive the trip through the codec."""
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.exchange_declare("src", "topic")
    ch.exchange_declare("hdr", "headers")
    ch.exchange_bind("hdr", "src", "#")  # exchange to exchange
    ch.queue_declare("pdf", arguments={"x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": "dead",
                                       "x-max-priority": 5})
    ch.queue_declare("dead")
    ch.queue_bind("pdf", "hdr", arguments={"x-match": "all", "format": "pdf"})
    ch.basic_publish("src", "any.key", b"doc", pika.BasicProperties(
        headers={"format": "pdf", "pages": 12, "ratio": decimal.Decimal("0.25")}, priority=3))
    method, props, body = ch.basic_get("pdf")
    assert body == b"doc" and props.priority == 3
    assert props.headers == {"format": "pdf", "pages": 12, "ratio": decimal.Decimal("0.25")}
    ch.basic_reject(method.delivery_tag, requeue=False)  # dead-lettered
    method, props, body = ch.basic_get("dead", auto_ack=True)
    assert body == b"doc"
    death = props.headers["x-death"][0]
    assert (death["queue"], death["reason"], death["count"]) == ("pdf", "rejected", 1)
    assert death["routing-keys"] == ["any.key"] and death["exchange"] == "src"
    ch.exchange_unbind("hdr", "src", "#")
    ch.basic_publish("src", "any.key", b"lost", pika.BasicProperties(headers={"format": "pdf"}))
    assert ch.queue_declare("pdf", passive=True).method.message_count == 0
    conn.close()


def test_consumer_priorities(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    setup = conn.channel()
    setup.queue_declare("prio")
    got: dict[str, list[bytes]] = {"high": [], "low": []}
    high, low = conn.channel(), conn.channel()
    high.basic_qos(prefetch_count=2)
    high.basic_consume("prio", lambda _c, _m, _p, body: got["high"].append(body),
                       arguments={"x-priority": 10})
    low.basic_consume("prio", lambda _c, _m, _p, body: got["low"].append(body))
    for i in range(5):
        setup.basic_publish("", "prio", str(i).encode())
    while len(got["high"]) + len(got["low"]) < 5:
        conn.process_data_events(0.1)
    assert got == {"high": [b"0", b"1"], "low": [b"2", b"3", b"4"]}
    conn.close()


@pytest.mark.parametrize("size", [0, 1, 131064, 131065, 3 * 131064 + 7, 1 << 20])
def test_bodies_of_any_size(served: Served, size: int) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("sizes")
    payload = bytes(range(256)) * (size // 256) + b"\xce" * (size % 256)
    ch.basic_publish("", "sizes", payload)
    _method, _props, body = ch.basic_get("sizes", auto_ack=True)
    assert body == payload
    conn.close()
