"""``queue.unbind`` and ``exchange.unbind`` as RabbitMQ 3.10 answers them, with pika, against
``amq broker serve`` and RabbitMQ side by side: a binding that does not exist is
``unbind-ok`` even when its queue or exchanges do not exist (clients' cleanup code relies
on it); the default exchange is 403, an existing binding of another connection's exclusive
queue 405."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from .servers import Target, unique

# (case, what to unbind: queue or exchange, then the pika call's arguments by role)
MISSING = {
    "queue: missing queue": ("queue", "nq", "x"),
    "queue: missing exchange": ("queue", "q", "nx"),
    "queue: both missing": ("queue", "nq", "nx"),
    "queue: missing binding": ("queue", "q", "x"),
    "queue: missing queue, amq.direct": ("queue", "nq", "amq.direct"),
    "exchange: missing destination": ("exchange", "nx", "x"),
    "exchange: missing source": ("exchange", "x2", "nx"),
    "exchange: both missing": ("exchange", "ny", "nx"),
    "exchange: missing binding": ("exchange", "x2", "x"),
}


@pytest.fixture
def names(broker: Target) -> Iterator[dict[str, str]]:
    """A queue ``q`` and exchanges ``x``, ``x2`` that exist; ``n*`` names that do not."""
    tag = unique("unbind")
    names = {role: f"{role}-{tag}" for role in ("q", "x", "x2", "nq", "nx", "ny")}
    names["amq.direct"] = "amq.direct"
    conn = pika.BlockingConnection(broker.params())
    ch = conn.channel()
    ch.queue_declare(names["q"])
    ch.exchange_declare(names["x"], "direct")
    ch.exchange_declare(names["x2"], "direct")
    yield names
    ch = conn.channel()
    ch.queue_delete(names["q"])
    ch.exchange_delete(names["x"])
    ch.exchange_delete(names["x2"])
    conn.close()


def _unbind(ch: Any, kind: str, destination: str, source: str) -> Any:
    if kind == "queue":
        return ch.queue_unbind(destination, source, "k")
    return ch.exchange_unbind(destination, source, "k")


@pytest.mark.parametrize("case", list(MISSING))
def test_unbinding_what_does_not_exist_is_ok(broker: Target, names: dict[str, str],
                                            case: str) -> None:
    kind, destination, source = MISSING[case]
    conn = pika.BlockingConnection(broker.params())
    try:
        ch = conn.channel()
        ok = _unbind(ch, kind, names[destination], names[source])
        assert isinstance(ok.method, (pika.spec.Queue.UnbindOk, pika.spec.Exchange.UnbindOk))
        assert ch.is_open  # and the channel goes on
        ch.queue_declare(names["q"], passive=True)
    finally:
        conn.close()


def test_unbind_removes_an_existing_binding(broker: Target, names: dict[str, str]) -> None:
    conn = pika.BlockingConnection(broker.params())
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_bind(names["q"], names["x"], "k")
        ch.basic_publish(names["x"], "k", b"routed", mandatory=True)
        ch.queue_unbind(names["q"], names["x"], "k")
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(names["x"], "k", b"lost", mandatory=True)
        ch.exchange_bind(names["x"], names["x2"], "k")
        ch.queue_bind(names["q"], names["x"], "k")
        ch.basic_publish(names["x2"], "k", b"via x2", mandatory=True)
        ch.exchange_unbind(names["x"], names["x2"], "k")
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(names["x2"], "k", b"lost", mandatory=True)
        assert ch.queue_declare(names["q"], passive=True).method.message_count == 2
    finally:
        conn.close()


DEFAULT_EXCHANGE: dict[str, Callable[[Any, dict[str, str]], Any]] = {
    "queue from ''": lambda ch, n: ch.queue_unbind(n["q"], "", n["q"]),
    "missing queue from ''": lambda ch, n: ch.queue_unbind(n["nq"], "", "k"),
    "exchange from ''": lambda ch, n: ch.exchange_unbind(n["x"], "", "k"),
    "'' from exchange": lambda ch, n: ch.exchange_unbind("", n["x"], "k"),
    "missing exchange from ''": lambda ch, n: ch.exchange_unbind(n["nx"], "", "k"),
}


@pytest.mark.parametrize("case", list(DEFAULT_EXCHANGE))
def test_unbind_on_the_default_exchange_is_refused(broker: Target, names: dict[str, str],
                                                  case: str) -> None:
    conn = pika.BlockingConnection(broker.params())
    try:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            DEFAULT_EXCHANGE[case](ch, names)
        assert caught.value.reply_code == 403
        assert "operation not permitted on the default exchange" in caught.value.reply_text
    finally:
        conn.close()


def test_unbind_of_another_connections_exclusive_queue(broker: Target) -> None:
    """Locked (405) only when the binding exists: a missing one is unbind-ok first."""
    queue = unique("excl")
    owner = pika.BlockingConnection(broker.params())
    other = pika.BlockingConnection(broker.params())
    try:
        ch = owner.channel()
        ch.queue_declare(queue, exclusive=True)
        ch.queue_bind(queue, "amq.direct", "bound")
        theirs = other.channel()
        theirs.queue_unbind(queue, "amq.direct", "not bound")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            theirs.queue_unbind(queue, "amq.direct", "bound")
        assert caught.value.reply_code == 405
        ch.queue_unbind(queue, "amq.direct", "bound")  # its owner may
    finally:
        other.close()
        owner.close()
