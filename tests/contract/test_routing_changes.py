"""Routing follows topology changes at once, whoever makes them: a publisher that has
routed a key before (the local broker keeps what it learnt, per process) sees bindings
added, removed, and gone with their queue or exchange, from its own connection or
another; topic exchanges with many bindings route as they would with few."""

from __future__ import annotations

from amqcli.amqp.model import DestinationType, Message, Properties

from .conftest import drain, ready

P = Properties()
E = DestinationType.EXCHANGE


def unroutable(backend, exchange: str, key: str, headers=None) -> int:
    props = Properties(headers=headers) if headers else P
    return backend.publish_bodies(exchange, key, props, [b"m"]).unroutable


def test_changes_by_another_connection_reach_a_publisher(backend, connect, name):
    x, q1, q2 = name("x"), name("q1"), name("q2")
    other = connect()
    other.declare_exchange(x, "topic")
    other.declare_queue(q1)
    other.bind(x, q1, "a.#")
    assert unroutable(backend, x, "a.b") == 0  # learnt: a.b goes to q1
    other.declare_queue(q2)
    other.bind(x, q2, "*.b")
    assert unroutable(backend, x, "a.b") == 0  # now q1 and q2
    other.unbind(x, q1, "a.#")
    assert unroutable(backend, x, "a.b") == 0  # q2 alone
    other.delete_queue(q2)
    assert unroutable(backend, x, "a.b") == 1
    assert ready(backend, q1) == 2
    other.declare_queue(q2)
    assert unroutable(backend, x, "a.b") == 1  # a queue of that name: not bound again
    other.delete_exchange(x)
    other.declare_exchange(x, "direct")
    other.bind(x, q2, "a.b")
    other.bind(x, q1, "a.*")  # direct: no wildcards
    assert unroutable(backend, x, "a.b") == 0
    assert (ready(backend, q1), ready(backend, q2)) == (2, 1)


def test_exchange_to_exchange_changes_reach_a_publisher(backend, connect, name):
    up, mid, down, q, r = name("up"), name("mid"), name("down"), name("q"), name("r")
    other = connect()
    backend.declare_exchange(up, "topic")
    backend.declare_exchange(mid, "direct")
    backend.declare_exchange(down, "fanout")
    for queue in (q, r):
        backend.declare_queue(queue)
    backend.bind(up, mid, "k.#", destination_type=E)
    backend.bind(mid, down, "k.1", destination_type=E)
    backend.bind(down, q)
    assert unroutable(backend, up, "k.1") == 0
    other.bind(down, r)
    assert unroutable(backend, up, "k.1") == 0  # q and r
    other.delete_exchange(mid)  # its bindings, both ways, go with it
    assert unroutable(backend, up, "k.1") == 1
    other.declare_exchange(mid, "direct")
    other.bind(up, mid, "k.#", destination_type=E)
    other.bind(mid, r, "k.1")
    assert unroutable(backend, up, "k.1") == 0  # r only: down is no longer reached
    assert (ready(backend, q), ready(backend, r)) == (2, 2)


def test_an_alternate_exchange_declared_later_is_used(backend, connect, name):
    x, ae, q = name("x"), name("ae"), name("q")
    backend.declare_exchange(x, "topic", arguments={"alternate-exchange": ae})
    backend.declare_queue(q)
    assert unroutable(backend, x, "a") == 1  # its alternate exchange does not exist yet
    other = connect()
    other.declare_exchange(ae, "fanout")
    other.bind(ae, q)
    assert unroutable(backend, x, "a") == 0
    other.bind(x, q, "b")
    other.delete_exchange(ae)
    assert unroutable(backend, x, "b") == 0  # its own binding: the AE is not needed
    assert unroutable(backend, x, "a") == 1
    assert ready(backend, q) == 2


def test_keys_in_one_batch_reach_their_queues(backend, name):
    x, queues = name("x"), [name(f"q{i}") for i in range(3)]
    backend.declare_exchange(x, "topic")
    for i, q in enumerate(queues):
        backend.declare_queue(q)
        backend.bind(x, q, f"k.{i}.*")
    backend.bind(x, queues[0], "#.z")
    keys = [f"k.{n % 4}.{'z' if n % 5 == 0 else 'y'}" for n in range(200)]
    result = backend.publish(x, [Message(b"m", P, k, x) for k in keys])
    lost = sum(1 for k in keys if k.startswith("k.3.") and not k.endswith("z"))
    assert result.unroutable == lost
    expected = [sum(1 for k in keys if k.startswith(f"k.{i}.") or (i == 0 and k.endswith("z")))
                for i in range(3)]
    assert [ready(backend, q) for q in queues] == expected


def test_many_topic_bindings_route_as_few_do(backend, name):
    x, queues = name("x"), [name(f"q{i}") for i in range(4)]
    backend.declare_exchange(x, "topic")
    for q in queues:
        backend.declare_queue(q)
    for i in range(300):
        backend.bind(x, queues[i % 4], (f"a.{i}.*", f"#.{i}", f"{i}.#")[i % 3])
    # binding i goes to queue i % 4; a.9.1 matches both #.1 and a.9.*, to queue 1: one copy
    for key, reached in [("a.0.x", [0]), ("a.3.5.6", []), ("q.w.4", [0]), ("5.x", [1]),
                         ("a.9.1", [1]), ("a.6.z", [2]), ("x.7", [3]), ("11.b", [3]),
                         ("7.a", []), ("nothing", [])]:
        before = [ready(backend, q) for q in queues]
        assert unroutable(backend, x, key) == (0 if reached else 1)
        after = [ready(backend, q) for q in queues]
        assert [a - b for a, b in zip(after, before, strict=True)] == \
            [1 if i in reached else 0 for i in range(4)]


def test_a_dead_letter_exchange_follows_binding_changes(backend, name):
    dlx, q, dead1, dead2 = name("dlx"), name("q"), name("dead1"), name("dead2")
    backend.declare_exchange(dlx, "topic")
    for queue in (dead1, dead2):
        backend.declare_queue(queue)
    backend.bind(dlx, dead1, "k.#")
    backend.declare_queue(q, arguments={"x-dead-letter-exchange": dlx})
    backend.publish_bodies("", q, P, [b"1", b"2"], confirm=True)
    sub = backend.consume(q, prefetch=1)
    [first] = sub.fetch(1, 10)
    sub.nack(first.delivery_tag, requeue=False)  # published to q as "q": dead-lettered
    backend.bind(dlx, dead2, q)                    # with that key
    [second] = sub.fetch(1, 10)
    sub.nack(second.delivery_tag, requeue=False)
    sub.cancel()
    assert [d.body for d in drain(backend.consume(dead2))] == [b"2"]
    assert ready(backend, dead1) == 0  # "k.#" never matched the key "q..."
