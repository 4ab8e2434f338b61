"""The engine's claims for a consumer are bounded in bytes as well as in count: a batch
holds at most ``max_bytes`` of bodies, or one message however large, so a prefetch of
250 large messages never sits in memory at once (amqcli.broker.channel)."""

from __future__ import annotations

import pytest

from amqcli import errors
from amqcli.amqp.model import EMPTY_PROPERTIES
from amqcli.broker.channel import BATCH_BYTES
from amqcli.broker.engine import Broker

KiB = 1024


@pytest.fixture
def connection(tmp_path):  # type: ignore[no-untyped-def]
    broker = Broker(str(tmp_path / "amq.db"))
    conn = broker.connect()
    yield conn
    conn.close()
    broker.close()


def _fill(conn, sizes: list[int]) -> None:  # type: ignore[no-untyped-def]
    conn.declare_queue("q")
    bodies = [(i.to_bytes(2, "big") * (n // 2 + 1))[:n] for i, n in enumerate(sizes)]
    conn.publish_bodies("", "q", EMPTY_PROPERTIES, bodies)


def test_a_claim_stops_at_max_bytes(connection) -> None:  # type: ignore[no-untyped-def]
    _fill(connection, [10 * KiB] * 10)
    ch = connection.channel(2)
    tag = ch.consume("q")
    first = ch.claim(tag, 250, max_bytes=35 * KiB)
    assert [d.body[:2] for d in first.deliveries] == [i.to_bytes(2, "big") for i in range(3)]
    assert first.cut
    rest = ch.claim(tag, 250, max_bytes=1024 * KiB)
    assert len(rest.deliveries) == 7 and not rest.cut
    assert [d.delivery_tag for d in first.deliveries + rest.deliveries] == list(range(1, 11))


def test_one_message_larger_than_max_bytes_still_comes(connection) -> None:  # type: ignore[no-untyped-def]
    _fill(connection, [64 * KiB, 8 * KiB])
    ch = connection.channel(2)
    tag = ch.consume("q")
    claims = [ch.claim(tag, 250, max_bytes=16 * KiB) for _ in range(3)]
    assert [len(c.deliveries) for c in claims] == [1, 1, 0]
    assert [c.cut for c in claims] == [True, False, False]
    assert len(claims[0].deliveries[0].body) == 64 * KiB


def test_the_default_bound_and_the_count_bound(connection) -> None:  # type: ignore[no-untyped-def]
    size = BATCH_BYTES // 4 + 1  # four of them are one byte too many
    _fill(connection, [size] * 5 + [2] * 3)
    ch = connection.channel(2)
    tag = ch.consume("q")
    assert len(ch.deliver(tag, 250)) == 3  # by bytes
    assert len(ch.deliver(tag, 4)) == 4  # by count
    assert len(ch.deliver(tag, 250)) == 1
    ch.ack(0, multiple=True)
    assert ch.deliver(tag, 250) == []


def test_expired_messages_at_the_head_are_skipped_not_counted(connection) -> None:  # type: ignore[no-untyped-def]
    connection.declare_queue("q", arguments={"x-dead-letter-exchange": "amq.fanout"})
    connection.declare_queue("dead")
    connection.bind("amq.fanout", "dead")
    gone = EMPTY_PROPERTIES._replace(expiration="0")
    connection.publish_bodies("", "q", gone, [b"a" * 1000] * 3)
    connection.publish_bodies("", "q", EMPTY_PROPERTIES, [b"b" * 1000] * 2)
    ch = connection.channel(2)
    tag = ch.consume("q")
    got = ch.claim(tag, 250, max_bytes=1500)
    assert [d.body[:1] for d in got.deliveries] == [b"b"] and got.cut
    dead = ch.consume("dead")
    assert [d.body[:1] for d in ch.deliver(dead, 250)] == [b"a"] * 3


def test_publishing_more_than_the_max_message_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broker = Broker(str(tmp_path / "amq.db"), max_message_size=100)
    conn = broker.connect()
    conn.declare_queue("q")
    with pytest.raises(errors.PreconditionFailed,
                       match=r"message size 101 is larger than configured max size 100$"):
        conn.publish_bodies("", "q", EMPTY_PROPERTIES, [b"x", b"y" * 100, b"z" * 101, b"w"])
    ch = conn.channel(2)
    tag = ch.consume("q")
    assert [d.body for d in ch.deliver(tag, 10)] == [b"x", b"y" * 100]  # those before stand
    conn.close()
    broker.close()
