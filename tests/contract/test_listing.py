"""Listing: queues with their counts, exchanges, bindings, queue names (on RabbitMQ
through its management API)."""

from __future__ import annotations

import pytest
from conftest import wait_until

from amqcli import errors
from amqcli.amqp.model import Binding, DestinationType, Exchange, ExchangeType, Properties

pytestmark = pytest.mark.management

P = Properties()


def test_list_queues_gives_flags_arguments_and_counts(backend, name):
    q, plain = name(), name()
    backend.declare_queue(q, durable=True, arguments={"x-max-length": 10})
    backend.declare_queue(plain)
    backend.publish_bodies("", q, P, [b"1", b"2", b"3"], confirm=True)
    sub = backend.consume(q, prefetch=1)
    assert len(sub.fetch(1, 10)) == 1
    mine = {x.name: x for x in backend.list_queues() if x.name in (q, plain)}
    assert (mine[q].durable, mine[q].exclusive, mine[q].auto_delete) == (True, False, False)
    assert mine[q].arguments == {"x-max-length": 10}
    assert (mine[q].messages, mine[q].consumers) == (2, 1)
    assert (mine[plain].durable, mine[plain].messages, mine[plain].consumers) == (False, 0, 0)
    # The unacknowledged count: RabbitMQ's management API reports it some seconds late.
    wait_until(lambda: next(x for x in backend.list_queues() if x.name == q).unacked == 1,
               "1 unacked in the listing")


def test_queue_names_lists_every_queue_and_only_names(backend, name):
    mine = {name() for _ in range(3)}
    for q in mine:
        backend.declare_queue(q)
    names = backend.queue_names()
    assert mine <= set(names) and all(isinstance(n, str) for n in names)
    backend.delete_queue(min(mine))
    assert min(mine) not in backend.queue_names()


def test_list_exchanges_includes_the_predeclared_and_new_ones(backend, name):
    x = name("x")
    backend.declare_exchange(x, "topic", durable=True, arguments={"alternate-exchange": "ae"})
    found = {e.name: e for e in backend.list_exchanges()}
    for predeclared, kind in (("", "direct"), ("amq.direct", "direct"),
                              ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                              ("amq.headers", "headers"), ("amq.match", "headers")):
        assert found[predeclared].type == ExchangeType(kind) and found[predeclared].durable
    assert found[x] == Exchange(x, ExchangeType.TOPIC, True, False, False,
                                {"alternate-exchange": "ae"})


def test_list_bindings_shows_default_and_explicit_bindings(backend, name):
    x, y, q = name("x"), name("y"), name()
    backend.declare_exchange(x, "headers")
    backend.declare_exchange(y, "fanout")
    backend.declare_queue(q)
    backend.bind(x, q, "", {"x-match": "any", "a": "1"})
    backend.bind(x, y, "k", destination_type=DestinationType.EXCHANGE)
    mine = [b for b in backend.list_bindings() if q in (b.destination, b.source)
            or b.source == x]
    assert Binding("", q, DestinationType.QUEUE, q, {}) in mine
    assert Binding(x, q, DestinationType.QUEUE, "", {"x-match": "any", "a": "1"}) in mine
    assert Binding(x, y, DestinationType.EXCHANGE, "k", {}) in mine
    backend.unbind(x, y, "k", destination_type=DestinationType.EXCHANGE)
    assert Binding(x, y, DestinationType.EXCHANGE, "k", {}) not in backend.list_bindings()


@pytest.mark.rabbitmq_only
def test_listing_without_the_management_api_says_so(backend, monkeypatch):
    monkeypatch.setenv("AMQ_MANAGEMENT_URL", "http://127.0.0.1:1/")
    for listing in (backend.list_queues, backend.list_exchanges, backend.list_bindings,
                    backend.queue_names):
        with pytest.raises(errors.BrokerUnreachable, match="listing needs RabbitMQ's "
                                                           "management API"):
            listing()
    backend.declare_queue("", exclusive=True)  # AMQP itself still works
