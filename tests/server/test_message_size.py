"""The largest message: 128 MiB by default, as RabbitMQ 3.x (``max_message_size``); one byte
more closes the channel with 406 and RabbitMQ's text, over the wire (pika, against
``amq broker serve`` and RabbitMQ side by side) and through ``amq send`` on both brokers.
``amq broker serve --max-message-size`` changes it."""

from __future__ import annotations

import hashlib

import pika
import pika.exceptions
import pytest

from .servers import Served, Target, start_server, unique

MiB = 1024 * 1024
LIMIT = 128 * MiB


def _refused(size: int, limit: int) -> str:
    return (f"PRECONDITION_FAILED - message size {size} is larger than configured max size "
            f"{limit}")


def test_128_mib_is_accepted_one_byte_more_is_not(broker: Target) -> None:
    queue = unique("big")
    body = bytes(range(256)) * (LIMIT // 256)
    conn = pika.BlockingConnection(broker.params(blocked_connection_timeout=120))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue)
        ch.basic_publish("", queue, body)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_publish("", queue, body + b"!")
        assert refused.value.reply_code == 406
        assert refused.value.reply_text == _refused(LIMIT + 1, LIMIT)
        ch = conn.channel()
        _method, _props, got = ch.basic_get(queue, auto_ack=True)
        assert got is not None and len(got) == LIMIT
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        assert ch.queue_declare(queue, passive=True).method.message_count == 0
        ch.queue_delete(queue)
    finally:
        conn.close()


def test_max_message_size_option(tmp_path) -> None:  # type: ignore[no-untyped-def]
    served = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--max-message-size", "1000")
    try:
        conn = pika.BlockingConnection(served.params())
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("q")
        ch.basic_publish("", "q", b"x" * 1000)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_publish("", "q", b"x" * 1001)
        assert refused.value.reply_code == 406
        assert refused.value.reply_text == _refused(1001, 1000)
        assert conn.channel().queue_declare("q", passive=True).method.message_count == 1
        conn.close()
        # the CLI beside it keeps its own (default) limit: 1001 bytes go
        served.amq("send", "q", input=b"y" * 1001)
        assert served.amq("receive", "q", "--count", "2").stdout == b"x" * 1000 + b"\n" + \
            b"y" * 1001 + b"\n"
    finally:
        assert served.stop() == 0
    assert "Traceback" not in served.log()


@pytest.mark.parametrize("value", ["0", "536870913", "lots"])
def test_max_message_size_out_of_range_is_a_usage_error(served: Served, value: str) -> None:
    proc = served.amq("broker", "serve", "--port", "0", "--max-message-size", value,
                      expect=2)
    assert b"--max-message-size" in proc.stderr and b"Traceback" not in proc.stderr


def test_amq_send_of_more_than_128_mib_is_refused(amq, name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same limit and words through the CLI on both brokers; the queue is untouched."""
    q = name()
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(LIMIT + 1)
    amq("declare", "queue", q)
    r = amq("send", q, "--file", str(big), expect=4)
    assert f"message size {LIMIT + 1} is larger than configured max size {LIMIT}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert amq.queue(q)["messages"] == 0
