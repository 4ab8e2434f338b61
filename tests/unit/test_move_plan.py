"""``amq move``'s pure parts: flags to a plan, redrive's origin, and how RabbitMQ's
returns are matched to the messages of a window."""

from __future__ import annotations

import pytest

from amqcli import errors
from amqcli.amqp.model import Delivery, Message, Properties
from amqcli.backends.rabbitmq import _returned_positions
from amqcli.cli.move import WINDOW, origin_queue, plan_move, routing_key_for


def test_exactly_one_destination() -> None:
    for kwargs in ({}, {"dest": "b", "to_origin": True}, {"dest": "b", "exchange": "x"}):
        with pytest.raises(errors.UsageError, match="say where to"):
            plan_move("a", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(errors.UsageError, match="same queue"):
        plan_move("a", "a")
    assert plan_move("a", "a", to_url="amqp://h").dest == "a"
    with pytest.raises(errors.UsageError, match="-k"):
        plan_move("a", "b", key="k")
    with pytest.raises(errors.UsageError, match="--rate"):
        plan_move("a", "b", rate=0)


def test_window_follows_count_and_rate() -> None:
    assert plan_move("a", "b").window == WINDOW
    assert plan_move("a", "b", count=3).window == 3
    assert plan_move("a", "b", rate=20).window == 5
    assert plan_move("a", "b", rate=1).window == 1


def _delivery(headers: dict | None, key: str = "rk") -> Delivery:
    return Delivery(1, b"x", Properties(headers=headers), "ex", key, False)


def test_origin_is_the_newest_x_death() -> None:
    deaths = [{"queue": "newest", "reason": "rejected"}, {"queue": "older"}]
    assert origin_queue(Properties(headers={"x-death": deaths})) == "newest"
    assert origin_queue(Properties(headers={"x-death": [{"queue": b"q"}]})) == "q"
    assert origin_queue(Properties()) is None
    assert origin_queue(Properties(headers={"x-death": "junk"})) is None
    redrive = plan_move("dlq", to_origin=True)
    assert routing_key_for(redrive, _delivery({"x-death": deaths})) == "newest"
    assert routing_key_for(plan_move("a", exchange="x"), _delivery(None)) == "rk"
    assert routing_key_for(plan_move("a", exchange="x", key="k"), _delivery(None)) == "k"


def test_returns_matched_in_order_by_content() -> None:
    p = Properties(headers={"a": 1})
    msgs = [Message(b"1", p, "k"), Message(b"2", p, "k"), Message(b"1", p, "k"),
            Message(b"3", p, "k")]
    assert _returned_positions(msgs, []) == []
    assert _returned_positions(msgs, [("k", b"1", p)]) == [0]
    assert _returned_positions(msgs, [("k", b"1", p), ("k", b"1", p)]) == [0, 2]
    assert _returned_positions(msgs, [("k", b"2", p), ("k", b"3", p)]) == [1, 3]
    # properties decoded otherwise: matched by routing key and body
    other = Properties(headers={"a": "1"})
    assert _returned_positions(msgs, [("k", b"3", other)]) == [3]
    # a return matching nothing: every message counts as returned (left, never lost)
    assert _returned_positions(msgs, [("zz", b"9", p)]) == [0, 1, 2, 3]
