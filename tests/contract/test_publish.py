"""Publishing: what reached no queue is counted (mandatory) or not, confirms and nacks,
bulk publishes and their flush, and the routing explainer."""

from __future__ import annotations

import pytest

from amqcli import errors
from amqcli.amqp.model import DestinationType, Message, Properties, PublishOutcome, PublishResult

from .conftest import drain, ready

P = Properties()


@pytest.mark.parametrize("confirm", [False, True])
def test_publish_counts_unroutable_messages_when_mandatory(backend, name, confirm):
    x, q = name("x"), name()
    backend.declare_exchange(x, "direct")
    backend.declare_queue(q)
    backend.bind(x, q, "yes")
    # Mixed, so that RabbitMQ confirms out of order (the unroutable at once).
    messages = [Message(b"1", P, "yes"), Message(b"2", P, "no"), Message(b"3", P, "no")] * 5
    assert backend.publish(x, messages, confirm=confirm) == PublishResult(15, 10, 0)
    assert backend.publish(x, messages, confirm=confirm, mandatory=False) \
        == PublishResult(15, 0, 0)  # dropped unreported, as RabbitMQ drops them
    assert ready(backend, q) == 10


@pytest.mark.parametrize("confirm", [False, True])
def test_publish_bodies_share_key_and_properties(backend, name, confirm):
    q = name()
    backend.declare_queue(q)
    props = Properties(content_type="text/plain", headers={"n": 1}, priority=3)
    result = backend.publish_bodies("", q, props, [b"a", b"", b"c" * 200_000], confirm=confirm)
    assert result == PublishResult(3, 0, 0)
    assert backend.publish_bodies("", name("none"), P, [b"x", b"y"], confirm=confirm) \
        == PublishResult(2, 2, 0)
    got = drain(backend.consume(q), 3)
    assert [d.body for d in got] == [b"a", b"", b"c" * 200_000]
    assert {(d.properties.content_type, d.properties.headers["n"], d.properties.priority)
            for d in got} == {("text/plain", 1, 3)}
    assert {(d.exchange, d.routing_key, d.redelivered) for d in got} == {("", q, False)}


def test_bodies_of_repeated_and_mixed_sizes_arrive_whole_and_in_order(backend, name):
    """RabbitMQ's framing is made once per body size: sizes come back after others, after
    an empty body and a body of several frames, and each body arrives as it went."""
    q = name()
    backend.declare_queue(q)
    bodies = [b"ab", b"", b"cd", b"e" * 300_000, b"fg", b"h", b"\xff\n", b"", b"ij", b"k"]
    assert backend.publish_bodies("", q, P, bodies) == PublishResult(len(bodies), 0, 0)
    assert [d.body for d in drain(backend.consume(q), len(bodies))] == bodies


def test_messages_keep_their_properties_and_order(backend, name):
    q = name()
    backend.declare_queue(q)
    first = Properties(correlation_id="c1", reply_to="r", message_id="m1", delivery_mode=2,
                       headers={"s": "text", "b": True, "l": [1, "two"]})
    second = Properties(expiration="60000", type="t", app_id="a", timestamp=1_700_000_000)
    backend.publish("", [Message(b"1", first, q), Message(b"2", second, q),
                         Message(b"3", first, q)], confirm=True)
    got = drain(backend.consume(q), 3)
    assert [(d.body, d.properties) for d in got] == [(b"1", first), (b"2", second),
                                                      (b"3", first)]


def test_properties_equal_in_python_but_not_in_amqp_stay_apart(backend, name):
    """Messages in a row whose properties are separate objects, as JSON lines and a
    client's publishes give them: equal ones are stored together by the local broker, but
    1, 1.0 and True, or the same headers in another order, are different AMQP tables and
    each message keeps its own (types, order)."""
    from decimal import Decimal
    q = name()
    backend.declare_queue(q)
    tables = [{"a": 1}, {"a": 1}, {"a": True}, {"a": 1.0}, {"a": 1, "b": 2}, {"b": 2, "a": 1},
              {"d": Decimal("1.0")}, {"d": Decimal("1.00")}, {"a": 1}]
    sent = [Message(str(i).encode(), Properties(headers=dict(t)), q)
            for i, t in enumerate(tables)]
    assert backend.publish("", sent, confirm=True) == PublishResult(len(sent), 0, 0)
    got = drain(backend.consume(q), len(sent))
    assert [d.body for d in got] == [m.body for m in sent]
    for d, table in zip(got, tables, strict=True):
        headers = d.properties.headers
        assert list(headers) == list(table), (d.body, headers)
        assert [(type(v), str(v)) for v in headers.values()] == \
            [(type(v), str(v)) for v in table.values()], (d.body, headers)


def test_unsynced_publishes_are_counted_by_the_flush(backend, name):
    q = name()
    backend.declare_queue(q)
    assert backend.flush_publishes() == PublishResult(0, 0, 0)  # nothing pending
    told = []  # each unroutable message is told once: by its publish or by the flush
    for _ in range(3):
        told.append(backend.publish_bodies("", name("none"), P, [b"x"] * 10, sync=False))
        told.append(backend.publish_bodies("", q, P, [b"y"] * 10, sync=False))
    told.append(backend.flush_publishes())
    assert sum(r.published for r in told) == 60
    assert sum(r.unroutable for r in told) == 30 and sum(r.nacked for r in told) == 0
    assert backend.flush_publishes() == PublishResult(0, 0, 0)
    assert ready(backend, q) == 30


def test_a_reject_publish_queue_nacks_a_confirming_publisher(backend, name):
    q = name()
    backend.declare_queue(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert backend.publish_bodies("", q, P, [b"1", b"2", b"3"], confirm=True) \
        == PublishResult(3, 0, 2, refused=(1, 2))
    assert [d.body for d in drain(backend.consume(q))] == [b"1"]


def test_publishing_to_a_missing_or_internal_exchange(backend, name):
    with pytest.raises(errors.NotFound, match="no exchange"):
        backend.publish_bodies(name("nox"), "k", P, [b"m"])
    x = name("x")
    backend.declare_exchange(x, "fanout", internal=True)
    with pytest.raises(errors.AccessRefused, match="internal"):
        backend.publish_bodies(x, "k", P, [b"m"], confirm=True)
    q = name()
    backend.declare_queue(q)
    assert backend.publish_bodies("", q, P, [b"m"]) == PublishResult(1, 0, 0)  # usable


def test_an_invalid_expiration_is_precondition_failed(backend, name):
    q = name()
    backend.declare_queue(q)
    with pytest.raises(errors.PreconditionFailed, match="expiration"):
        backend.publish_bodies("", q, Properties(expiration="soon"), [b"m"], confirm=True)
    assert ready(backend, q) == 0


def test_routing_keys_that_are_not_utf8(backend, name):
    q = name()
    backend.declare_queue(q)
    message = Message(b"m", P, b"\xff-key")  # as JSON input may give it
    if backend.caps.bytes_routing_keys:
        assert backend.publish("", [message]).unroutable == 1
    else:
        with pytest.raises(errors.UsageError, match="not valid UTF-8"):
            backend.publish("", [message])


@pytest.mark.management
def test_route_explains_where_a_message_would_go_without_publishing(backend, name):
    up, down, q1, q2 = name("up"), name("down"), name("q1"), name("q2")
    backend.declare_exchange(up, "topic")
    backend.declare_exchange(down, "fanout")
    backend.declare_queue(q1)
    backend.declare_queue(q2)
    backend.bind(up, q1, "a.*")
    backend.bind(up, down, "#", destination_type=DestinationType.EXCHANGE)
    backend.bind(down, q2)
    backend.bind(down, q1)
    route = backend.route(up, "a.b")
    assert sorted(route.queues) == sorted([q1, q2]) and len(route.queues) == 2
    assert route.hops[0].exchange == up
    assert {h.exchange for h in route.hops} == {up, down}
    assert sorted(backend.route(up, "b.c").queues) == sorted([q1, q2])
    backend.unbind(down, q1)
    assert backend.route(up, "b.c").queues == [q2]
    assert backend.route("", q1).queues == [q1]
    assert backend.route("", name("none")).queues == []
    with pytest.raises(errors.NotFound):
        backend.route(name("nox"), "k")
    assert ready(backend, q1) == 0 and ready(backend, q2) == 0  # nothing was published


def test_windows_begun_end_in_order_with_each_outcome(backend, name):
    """``begin_each``/``end_each``: three windows out at once end in order; a return in
    the second and a nack in the third are told of their own messages, and windows begun
    after a settled return are clean again."""
    x, q = name("x"), name()
    backend.declare_exchange(x, "direct")
    backend.declare_queue(q, arguments={"x-max-length": 7, "x-overflow": "reject-publish"})
    backend.bind(x, q, "yes")
    ok, no = Message(b"1", P, "yes"), Message(b"1", P, "no")
    routed, returned = PublishOutcome.ROUTED, PublishOutcome.UNROUTABLE
    backend.begin_each(x, [ok, ok])
    backend.begin_each(x, [ok, no, ok])
    backend.begin_each(x, [ok, ok, ok, ok])  # the last past the queue's 7
    assert backend.end_each() == [routed, routed]
    assert backend.end_each() == [routed, returned, routed]
    assert backend.end_each() == [routed, routed, routed, PublishOutcome.REJECTED]
    backend.purge_queue(q)
    backend.begin_each(x, [ok])
    backend.begin_each(x, [ok])
    assert [backend.end_each(), backend.end_each()] == [[routed], [routed]]
    assert ready(backend, q) == 2
    assert backend.publish(x, [ok, no], confirm=True) == PublishResult(2, 1, 0)
