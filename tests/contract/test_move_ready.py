"""``Backend.move_ready``: the head of a queue moved to an exchange, each message
acknowledged only once routed (the local broker in one store transaction, RabbitMQ the
generic way), on both brokers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from amqcli import errors
from amqcli.amqp.model import Message, Properties, PublishOutcome
from amqcli.backends.base import Backend

from .conftest import drain, ready

ROUTED, UNROUTABLE = PublishOutcome.ROUTED, PublishOutcome.UNROUTABLE


def bodies(backend: Backend, queue: str) -> list[bytes]:
    sub = backend.consume(queue)
    try:
        got = drain(sub)
        for d in got:
            sub.ack(d.delivery_tag)
    finally:
        sub.cancel()
    return [d.body for d in got]


def test_moves_the_head_in_order_with_properties(backend: Backend,
                                                 name: Callable[[str], str]) -> None:
    src, dst = name("src"), name("dst")
    backend.declare_queue(src)
    backend.declare_queue(dst)
    props = Properties(headers={"kind": "a"}, message_id="m", delivery_mode=2)
    backend.publish("", [Message(b"%d" % i, props, src) for i in range(10)], confirm=True)
    assert backend.move_ready(src, 4, "", dst) == [ROUTED] * 4
    assert backend.move_ready(src, 100, "", dst) == [ROUTED] * 6
    assert backend.move_ready(src, 100, "", dst) == []
    assert ready(backend, src) == 0
    sub = backend.consume(dst)
    try:
        got = drain(sub)
    finally:
        sub.cancel()
    assert [d.body for d in got] == [b"%d" % i for i in range(10)]
    assert all(d.properties.headers == {"kind": "a"} and d.properties.message_id == "m"
               and d.properties.delivery_mode == 2 and d.routing_key == dst for d in got)


def test_what_is_not_routed_stays(backend: Backend, name: Callable[[str], str]) -> None:
    """Through a headers exchange only some route: those leave, the others stay in order."""
    src, dst, x = name("src"), name("dst"), name("hx")
    backend.declare_queue(src)
    backend.declare_queue(dst)
    backend.declare_exchange(x, "headers")
    backend.bind(x, dst, arguments={"x-match": "all", "ok": "yes"})
    backend.publish("", [Message(b"b%d" % i, Properties(headers={"ok": "yes" if i % 2 else "no"}),
                                 src) for i in range(6)], confirm=True)
    outcomes = backend.move_ready(src, 10, x, None)
    assert outcomes == [UNROUTABLE, ROUTED] * 3
    assert bodies(backend, dst) == [b"b1", b"b3", b"b5"]
    assert bodies(backend, src) == [b"b0", b"b2", b"b4"]


def test_own_routing_key_and_missing_ends(backend: Backend, name: Callable[[str], str]) -> None:
    src, x, dst = name("src"), name("x"), name("dst")
    backend.declare_queue(src)
    backend.declare_queue(dst)
    backend.declare_exchange(x, "direct")
    backend.bind(x, dst, src)  # the messages' own key: they were sent to src
    backend.publish("", [Message(b"1", routing_key=src)], confirm=True)
    with pytest.raises(errors.NotFound):
        backend.move_ready(src, 10, name("nox"), None)
    with pytest.raises(errors.NotFound):
        backend.move_ready(name("nosrc"), 10, x, None)
    assert ready(backend, src) == 1
    assert backend.move_ready(src, 10, x, None) == [ROUTED]
    assert bodies(backend, dst) == [b"1"]
