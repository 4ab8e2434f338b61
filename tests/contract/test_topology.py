"""Declaring, deleting, purging, binding: the Backend's promises about topology."""

from __future__ import annotations

import pytest
from conftest import wait_until

from amqcli import errors
from amqcli.amqp.model import DestinationType, Properties

from .conftest import consumers, ready

P = Properties()


def test_declare_queue_answers_its_name_and_counts(backend, name):
    q = name()
    ok = backend.declare_queue(q)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    backend.publish_bodies("", q, P, [b"a", b"b"])
    # An equal redeclare: fine, and it counts (on RabbitMQ, once the publishes, which took
    # another channel, reached the queue)
    wait_until(lambda: backend.declare_queue(q).message_count == 2, "the count of 2")
    ok = backend.declare_queue(q)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 2, 0)


def test_passive_declare_of_a_missing_queue_is_not_found(backend, name):
    q = name()
    with pytest.raises(errors.NotFound, match=f"no queue '{q}' in vhost "
                                              f"'{backend.caps.vhost}'"):
        backend.declare_queue(q, passive=True)
    backend.declare_queue(q, durable=True)
    backend.publish_bodies("", q, P, [b"m"])
    ok = backend.declare_queue(q, passive=True)  # passive ignores the flags
    assert (ok.queue, ok.message_count) == (q, 1)


def test_inequivalent_redeclare_is_precondition_failed(backend, name):
    q = name()
    backend.declare_queue(q, durable=True)
    with pytest.raises(errors.PreconditionFailed,
                       match=f"inequivalent arg 'durable' for queue '{q}'"):
        backend.declare_queue(q)
    with pytest.raises(errors.PreconditionFailed, match="inequivalent arg 'x-message-ttl'"):
        backend.declare_queue(q, durable=True, arguments={"x-message-ttl": 1000})
    assert ready(backend, q) == 0  # still there, as it was


def test_arguments_are_checked_and_integer_widths_are_equivalent(backend, name):
    q = name()
    backend.declare_queue(q, arguments={"x-max-length": 10, "x-custom": "a"})
    backend.declare_queue(q, arguments={"x-max-length": 10, "x-custom": "other"})
    with pytest.raises(errors.PreconditionFailed, match="invalid arg 'x-max-length'"):
        backend.declare_queue(name(), arguments={"x-max-length": -1})
    with pytest.raises(errors.PreconditionFailed, match="invalid arg 'x-overflow'"):
        backend.declare_queue(name(), arguments={"x-overflow": "sideways"})
    with pytest.raises(errors.PreconditionFailed, match="invalid property 'non-durable'"):
        backend.declare_queue(name(), arguments={"x-queue-type": "quorum"})


def test_server_named_queue(backend, name):
    ok = backend.declare_queue("", exclusive=True)
    assert ok.queue.startswith("amq.gen-") and len(ok.queue) > 10
    assert ready(backend, ok.queue) == 0
    other = backend.declare_queue("", exclusive=True)
    assert other.queue != ok.queue


def test_exclusive_queue_is_locked_to_its_connection_and_goes_with_it(backend, connect, name):
    q = name()
    owner = connect()
    owner.declare_queue(q, exclusive=True)
    for attempt in (lambda: backend.declare_queue(q, passive=True),
                    lambda: backend.purge_queue(q),
                    lambda: backend.delete_queue(q),
                    lambda: backend.bind("amq.fanout", q),
                    lambda: backend.consume(q).fetch(1, 0.1)):
        with pytest.raises(errors.ResourceLocked, match="exclusive"):
            attempt()
    owner.publish_bodies("", q, P, [b"m"])
    assert ready(owner, q) == 1
    owner.close()
    with pytest.raises(errors.NotFound):
        backend.declare_queue(q, passive=True)


def test_reserved_names_are_access_refused(backend, name):
    with pytest.raises(errors.AccessRefused, match=r"reserved prefix 'amq\.\*'"):
        backend.declare_queue("amq.mine")
    with pytest.raises(errors.AccessRefused, match=r"reserved prefix 'amq\.\*'"):
        backend.declare_exchange("amq.mine", "direct")
    with pytest.raises(errors.AccessRefused, match="default exchange"):
        backend.declare_exchange("", "direct", passive=True)
    with pytest.raises(errors.AccessRefused):
        backend.delete_exchange("amq.direct")
    backend.declare_exchange("amq.direct", "direct", durable=True)  # equal: fine
    with pytest.raises(errors.UsageError, match="255"):
        backend.declare_queue("a" * 256)


def test_ensure_queue_declares_once_and_uses_what_exists_as_it_is(backend, name):
    q = name()
    backend.ensure_queue(q)
    assert ready(backend, q) == 0
    durable = name()
    backend.declare_queue(durable, durable=True, arguments={"x-max-length": 5})
    backend.ensure_queue(durable)  # not a 406: the queue is used as it is
    with pytest.raises(errors.PreconditionFailed):
        backend.declare_queue(durable)  # it did not change


def test_declare_exchange_passive_inequivalent_and_unknown_type(backend, name):
    x = name("x")
    with pytest.raises(errors.NotFound, match=f"no exchange '{x}'"):
        backend.declare_exchange(x, "direct", passive=True)
    backend.declare_exchange(x, "topic", durable=True)
    backend.declare_exchange(x, "topic", durable=True)
    backend.declare_exchange(x, "direct", passive=True)  # passive ignores the type
    with pytest.raises(errors.PreconditionFailed, match="inequivalent arg 'type'"):
        backend.declare_exchange(x, "fanout", durable=True)
    with pytest.raises(errors.PreconditionFailed, match="inequivalent arg 'durable'"):
        backend.declare_exchange(x, "topic")


def test_an_unknown_exchange_type_is_refused(backend, name):
    # 406 on the local broker and RabbitMQ 3.11+, a connection-level 503 on RabbitMQ 3.10.
    with pytest.raises(errors.BrokerError, match="unknown exchange type 'sideways'") as err:
        backend.declare_exchange(name("x"), "sideways")
    assert type(err.value) in (errors.PreconditionFailed, errors.CommandInvalid)


def test_stream_queues_on_both_brokers(backend, name):
    q = name("s")
    arguments = {"x-queue-type": "stream"}
    with pytest.raises(errors.PreconditionFailed, match="invalid property 'non-durable'"):
        backend.declare_queue(q, arguments=arguments)
    assert backend.declare_queue(q, durable=True, arguments=arguments).queue == q
    assert backend.queue_type(q) == "stream"
    backend.delete_queue(q)


def test_delete_queue_counts_and_honours_if_empty_and_if_unused(backend, name):
    q = name()
    backend.declare_queue(q)
    backend.publish_bodies("", q, P, [b"1", b"2"])
    with pytest.raises(errors.PreconditionFailed, match="not empty"):
        backend.delete_queue(q, if_empty=True)
    sub = backend.consume(q, prefetch=1)
    with pytest.raises(errors.PreconditionFailed, match="in use"):
        backend.delete_queue(q, if_unused=True)
    sub.cancel()
    assert ready(backend, q) == 2  # refused deletes changed nothing
    assert backend.delete_queue(q) == 2
    assert backend.delete_queue(q) == 0  # missing: fine, as in RabbitMQ
    with pytest.raises(errors.NotFound):
        backend.declare_queue(q, passive=True)


def test_delete_exchange_if_unused_and_missing(backend, name):
    x, q = name("x"), name()
    backend.declare_exchange(x, "fanout")
    backend.declare_queue(q)
    backend.bind(x, q)
    with pytest.raises(errors.PreconditionFailed, match="in use"):
        backend.delete_exchange(x, if_unused=True)
    backend.declare_exchange(x, "fanout", passive=True)  # still there
    backend.delete_exchange(x)
    backend.delete_exchange(x)  # missing: fine
    with pytest.raises(errors.NotFound):
        backend.declare_exchange(x, "fanout", passive=True)


def test_purge_removes_ready_messages_only(backend, name):
    q = name()
    backend.declare_queue(q)
    backend.publish_bodies("", q, P, [b"a", b"b", b"c"], confirm=True)
    sub = backend.consume(q, prefetch=1)
    [held] = sub.fetch(1, 10)
    assert backend.purge_queue(q) == 2
    assert ready(backend, q) == 0
    sub.nack(held.delivery_tag)  # the unacked one stayed, and comes back
    [again] = sub.fetch(1, 10)
    assert (again.body, again.redelivered) == (held.body, True)
    with pytest.raises(errors.NotFound):
        backend.purge_queue(name())


def test_bind_routes_and_unbind_stops_it(backend, name):
    x, q = name("x"), name()
    backend.declare_exchange(x, "direct")
    with pytest.raises(errors.NotFound, match=f"no queue '{q}'"):
        backend.bind(x, q, "k")
    backend.declare_queue(q)
    with pytest.raises(errors.NotFound, match="no exchange"):
        backend.bind(name("nox"), q, "k")
    backend.bind(x, q, "k")
    backend.bind(x, q, "k")  # a duplicate bind: fine
    assert backend.publish_bodies(x, "k", P, [b"m"]).unroutable == 0
    backend.unbind(x, q, "k")
    backend.unbind(x, q, "k")  # a missing binding: fine
    assert backend.publish_bodies(x, "k", P, [b"m"]).unroutable == 1
    assert ready(backend, q) == 1


def test_unbind_of_what_does_not_exist_is_fine(backend, name):
    x, q, nx, nq = name("x"), name(), name("nox"), name("noq")
    backend.declare_exchange(x, "direct")
    backend.declare_queue(q)
    for source, destination, kind in (
            (x, nq, DestinationType.QUEUE), (nx, q, DestinationType.QUEUE),
            (nx, nq, DestinationType.QUEUE), (x, nx, DestinationType.EXCHANGE),
            (nx, x, DestinationType.EXCHANGE), (nx, name("noy"), DestinationType.EXCHANGE)):
        backend.unbind(source, destination, "k", destination_type=kind)
    with pytest.raises(errors.AccessRefused, match="default exchange"):
        backend.unbind("", q, q)
    backend.declare_queue(q, passive=True)  # the channel is usable after all that


def test_exchange_to_exchange_bindings(backend, name):
    up, down, q = name("up"), name("down"), name()
    backend.declare_exchange(up, "topic")
    backend.declare_exchange(down, "fanout")
    backend.declare_queue(q)
    backend.bind(down, q)
    backend.bind(up, down, "a.#", destination_type=DestinationType.EXCHANGE)
    assert backend.publish_bodies(up, "a.b", P, [b"m"]).unroutable == 0
    assert backend.publish_bodies(up, "b", P, [b"m"]).unroutable == 1
    backend.unbind(up, down, "a.#", destination_type=DestinationType.EXCHANGE)
    assert backend.publish_bodies(up, "a.b", P, [b"m"]).unroutable == 1
    assert ready(backend, q) == 1


def test_auto_delete_queue_goes_with_its_last_consumer_only(backend, name):
    q = name()
    backend.declare_queue(q, auto_delete=True)
    assert consumers(backend, q) == 0  # never consumed: it stays
    sub = backend.consume(q)
    assert consumers(backend, q) == 1
    sub.cancel()
    with pytest.raises(errors.NotFound):
        backend.declare_queue(q, passive=True)
