"""Errors are ``errors.*`` classes carrying RabbitMQ's reply codes, and a channel error
leaves the backend usable: the next call works."""

from __future__ import annotations

import pytest

from amqcli import errors
from amqcli.amqp.model import Properties

from .conftest import ready

P = Properties()


def test_each_channel_error_is_its_class_and_the_backend_carries_on(backend, connect, name):
    q, x, locked = name(), name("x"), name("locked")
    backend.declare_queue(q, durable=True)
    backend.declare_exchange(x, "fanout")
    connect().declare_queue(locked, exclusive=True)
    failures = [
        (errors.NotFound, 404, lambda: backend.declare_queue(name(), passive=True)),
        (errors.PreconditionFailed, 406, lambda: backend.declare_queue(q)),
        (errors.AccessRefused, 403, lambda: backend.bind("", q, q)),
        (errors.ResourceLocked, 405, lambda: backend.purge_queue(locked)),
        (errors.NotFound, 404, lambda: backend.publish_bodies(name("nox"), "k", P, [b"m"])),
        (errors.NotFound, 404, lambda: backend.publish_bodies(name("nox"), "k", P, [b"m"] * 3,
                                                              confirm=True)),
        (errors.PreconditionFailed, 406, lambda: backend.declare_exchange(x, "topic")),
        (errors.NotFound, 404, lambda: backend.bind(x, name())),
    ]
    for cls, code, fail in failures:
        with pytest.raises(cls) as raised:
            fail()
        err = raised.value
        assert (err.reply_code, err.hard) == (code, False)
        assert str(err).startswith(f"{code} {err.reply_name} - ")
        # the same connection goes on: a declare, a publish, a count
        backend.declare_queue(q, durable=True)
        assert backend.publish_bodies("", q, P, [b"m"], confirm=True).unroutable == 0
    assert ready(backend, q) == len(failures)


def test_an_error_of_an_unsynced_publish_comes_by_the_flush_at_the_latest(backend, name):
    q = name()
    backend.declare_queue(q)
    with pytest.raises(errors.NotFound, match="no exchange"):
        backend.publish_bodies(name("nox"), "k", P, [b"m"] * 5, sync=False)
        backend.flush_publishes()  # RabbitMQ's channel close arrives with the round trip
    assert backend.publish_bodies("", q, P, [b"m"], confirm=True).unroutable == 0
    assert ready(backend, q) == 1


def test_an_error_while_consuming_leaves_the_subscription_and_backend(backend, name):
    q = name()
    backend.declare_queue(q)
    backend.publish_bodies("", q, P, [b"1", b"2"], confirm=True)
    sub = backend.consume(q, prefetch=1)
    [first] = sub.fetch(1, 10)
    with pytest.raises(errors.NotFound):
        backend.declare_queue(name(), passive=True)  # on the backend's own channel
    sub.ack(first.delivery_tag)
    [second] = sub.fetch(1, 10)
    assert second.body == b"2"
    sub.ack(second.delivery_tag)
    sub.cancel()
    assert ready(backend, q) == 0


def test_names_past_255_bytes_are_usage_errors_before_the_broker(backend):
    for call in (lambda: backend.declare_queue("q" * 256),
                 lambda: backend.declare_exchange("x" * 256, "direct"),
                 lambda: backend.delete_queue("q" * 256)):
        with pytest.raises(errors.UsageError, match="255"):
            call()
    assert backend.declare_queue("", exclusive=True).queue.startswith("amq.gen-")
