"""The pure parts of ``backends/reconnect.py``: the backoff, the heartbeat a long-running
command asks for, which errors are losses, and delivery tags across connections (on a
stand-in subscription: the behaviour on real brokers is in ``tests/test_reconnect.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from amqcli import config, errors
from amqcli.amqp.model import Delivery, Properties
from amqcli.backends.reconnect import (
    BACKOFF_CAP,
    TAG_SPAN,
    Backoff,
    Consume,
    Resilient,
    is_loss,
    long_running,
)


def test_backoff_doubles_jittered_and_stops_at_the_cap() -> None:
    low = Backoff(1.0, rng=lambda: 0.0)
    assert [low.next() for _ in range(7)] == [0.5, 1, 2, 4, 8, 15, 15]
    high = Backoff(1.0, rng=lambda: 0.999999)
    delays = [high.next() for _ in range(40)]
    assert max(delays) <= BACKOFF_CAP and delays[-1] == pytest.approx(BACKOFF_CAP)
    high.reset()
    assert high.next() == pytest.approx(1.0)


def test_backoff_knob_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQ_RECONNECT_BACKOFF", "0.2")
    assert Backoff().first == 0.2
    monkeypatch.setenv("AMQ_RECONNECT_BACKOFF", "soon")
    assert Backoff().first == 1.0


@pytest.mark.parametrize(("given", "wanted"), [
    ("amqp://u:p@h/v", "amqp://u:p@h/v?heartbeat=10"),
    ("amqp://u:p@h/v?socket_timeout=5", "amqp://u:p@h/v?socket_timeout=5&heartbeat=10"),
    ("amqp://u:p@h/v?heartbeat=2", "amqp://u:p@h/v?heartbeat=2"),
    ("amqp://u:p@h/v?heartbeat=0", "amqp://u:p@h/v?heartbeat=0"),
    ("local", "local"),
])
def test_long_running_commands_ask_for_heartbeats(given: str, wanted: str) -> None:
    url = config.parse_url(given)
    asked = long_running(url)
    assert asked.hosts == ((wanted,) if url.hosts else ())
    assert asked.url == (url.url if url.hosts else wanted)  # the URL shown stays as given


def test_each_host_of_several_is_asked_for_heartbeats() -> None:
    asked = long_running(config.parse_url("amqp://u:p@h1,h2:5673/v?heartbeat=2&x=1"))
    assert all("heartbeat=2" in h for h in asked.hosts) and len(asked.hosts) == 2
    asked = long_running(config.parse_url("amqp://u:p@h1,h2:5673/v"))
    assert [h.endswith("heartbeat=10") for h in asked.hosts] == [True, True]
    assert "heartbeat" not in asked.display


def test_losses_are_lost_connections_and_forced_closes() -> None:
    assert is_loss(errors.ConnectionLost("gone"))
    assert is_loss(errors.ConnectionForced("node going down"))
    assert not is_loss(errors.NotFound("no queue"))
    assert not is_loss(errors.NotAllowed("vhost gone"))
    assert not is_loss(errors.StoreError("the store file is unusable"))


class StandIn:
    """A subscription that hands out what it is given and records what is settled."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.ready: list[Delivery] = []
        self.acked: list[tuple[int, bool]] = []
        self.fail: errors.AmqError | None = None

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        if self.fail is not None:
            raise self.fail
        out, self.ready = self.ready[:most], self.ready[most:]
        return out

    def ack(self, tag: int, multiple: bool = False) -> None:
        if self.fail is not None:
            raise self.fail
        self.acked.append((tag, multiple))

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.ack(tag, multiple)

    def watch(self, fd: int) -> bool:
        return False

    def keep_alive(self) -> None: ...

    def set_window(self, most: int) -> None: ...

    def cancel(self) -> None: ...


class StandInBackend:
    display_url = "amqp://guest:****@broker/"

    def __init__(self) -> None:
        self.subs: list[StandIn] = []

    def consume(self, queue: str, **_kwargs: Any) -> StandIn:
        self.subs.append(StandIn(queue))
        return self.subs[-1]

    def close(self) -> None: ...


def delivery(tag: int) -> Delivery:
    return Delivery(tag, b"x", Properties(), "", "q", False, "q")


def test_acks_of_a_lost_connection_are_dropped_and_new_tags_are_shifted() -> None:
    first, second = StandInBackend(), StandInBackend()
    backends = iter([second])
    notes: list[str] = []
    hooks: list[bool] = []

    def subscribe(_backend: Any, again: bool) -> Consume:
        hooks.append(again)
        return Consume("q", 10)

    sub = Resilient(first, lambda: next(backends), subscribe, notes.append,  # type: ignore[arg-type]
                    backoff=Backoff(0.0))
    old = first.subs[0]
    old.ready = [delivery(1), delivery(2)]
    assert [d.delivery_tag for d in sub.fetch(10, 0)] == [1, 2]
    old.fail = errors.ConnectionLost("the connection to RabbitMQ was lost")
    assert sub.fetch(10, 0) == []  # lost: no time left in this fetch to reconnect
    assert hooks == [False] and sub.generation == 1 and sub.backend is None
    assert sub.fetch(10, 0) == []  # connected again (no backoff here), nothing yet
    assert hooks == [False, True] and sub.backend is second
    new = second.subs[0]
    new.ready = [delivery(1)]
    [d] = sub.fetch(10, 0)
    assert d.delivery_tag == TAG_SPAN + 1 and sub.holds(d.delivery_tag)
    assert not sub.holds(2)
    sub.ack(2)  # of the lost connection: dropped, it comes back
    sub.ack(d.delivery_tag, multiple=True)
    sub.nack(0, multiple=True)  # everything outstanding, on the new channel
    assert new.acked == [(1, True), (0, True)]
    assert len(notes) == 2 and "reconnecting to" in notes[0] and "reconnected" in notes[1]


def test_without_reconnect_a_loss_is_the_commands_error() -> None:
    backend = StandInBackend()
    sub = Resilient(backend, lambda: backend, lambda _b, _a: Consume("q"),  # type: ignore[arg-type]
                    lambda _t: None, reconnect=False)
    backend.subs[0].fail = errors.ConnectionLost("gone")
    with pytest.raises(errors.ConnectionLost, match="gone"):
        sub.fetch(1, 0)
    backend.subs[0].fail = None
