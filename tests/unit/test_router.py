"""The local broker's routing state (amqcli.broker.publishing ``Routes``/``Router``): kept
across transactions, rebuilt when the store's bindings version moves, the same answers as
a scan of the store's bindings, each routing key routed once however many messages carry
it, and an exchange's bindings read only when that exchange is used."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqcli import errors
from amqcli.amqp import routing
from amqcli.amqp.model import (
    EMPTY_PROPERTIES,
    Binding,
    DestinationType,
    Message,
    Properties,
    PublishOutcome,
)
from amqcli.broker import publishing
from amqcli.broker.engine import Broker, Connection
from amqcli.broker.publishing import Router
from amqcli.broker.rows import bindings_from, bindings_version, get_exchange

Q = DestinationType.QUEUE
E = DestinationType.EXCHANGE
ROUTED = PublishOutcome.ROUTED
UNROUTABLE = PublishOutcome.UNROUTABLE


@pytest.fixture
def broker(tmp_path: Any) -> Iterator[Broker]:
    b = Broker(str(tmp_path / "amq.db"))
    yield b
    b.close()


@pytest.fixture
def conn(broker: Broker) -> Iterator[Connection]:
    c = broker.connect()
    yield c
    c.close()


def version(broker: Broker) -> int:
    with broker.store.transaction() as db:
        return bindings_version(db)


def ready(conn: Connection, queue: str) -> int:
    return conn.declare_queue(queue, passive=True).message_count


# --------------------------------------------------------------------------- the version

def test_the_version_moves_with_every_binding_or_exchange_change(broker: Broker,
                                                                 conn: Connection) -> None:
    assert version(broker) == 0  # a new store has none: 0
    steps = []

    def moved(action: Any) -> bool:
        before = version(broker)
        action()
        after = version(broker)
        steps.append(after)
        return after != before

    conn.declare_queue("q")
    conn.declare_queue("lonely")
    assert moved(lambda: conn.declare_exchange("x", "topic"))
    assert not moved(lambda: conn.declare_exchange("x", "topic"))  # the same again
    assert moved(lambda: conn.bind("x", "q", "a.*"))
    assert not moved(lambda: conn.bind("x", "q", "a.*"))  # a duplicate bind
    assert moved(lambda: conn.unbind("x", "q", "a.*"))
    assert not moved(lambda: conn.unbind("x", "q", "a.*"))  # no such binding
    conn.bind("x", "q", "b")
    assert moved(lambda: conn.delete_queue("q"))  # its bindings go with it
    assert not moved(lambda: conn.delete_queue("lonely"))  # it had none
    conn.declare_exchange("y", "fanout")
    assert moved(lambda: conn.delete_exchange("y"))
    assert not moved(lambda: conn.declare_queue("q2"))
    assert not moved(lambda: conn.publish_bodies("x", "a.b", EMPTY_PROPERTIES, [b"m"]))
    assert steps == sorted(steps)  # it only grows


def test_an_auto_delete_exchange_going_moves_the_version(broker: Broker,
                                                         conn: Connection) -> None:
    conn.declare_exchange("auto", "direct", auto_delete=True)
    conn.declare_queue("q")
    conn.bind("auto", "q", "k")
    before = version(broker)
    conn.unbind("auto", "q", "k")  # its last binding: the exchange goes too
    with broker.store.transaction() as db:
        assert get_exchange(db, "auto") is None
    assert version(broker) != before


def test_an_exclusive_queue_going_with_its_connection_moves_the_version(
        broker: Broker, conn: Connection) -> None:
    conn.declare_exchange("x", "fanout")
    other = broker.connect()
    other.declare_queue("mine", exclusive=True)
    other.bind("x", "mine")
    assert conn.publish_bodies("x", "", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
    other.close()
    assert conn.publish_bodies("x", "", EMPTY_PROPERTIES, [b"m"]) == [UNROUTABLE]


# --------------------------------------------------------------------------- kept state

def test_state_is_kept_across_transactions_until_bindings_change(broker: Broker,
                                                                 conn: Connection) -> None:
    conn.declare_exchange("t", "topic")
    conn.declare_queue("q1")
    conn.declare_queue("q2")
    conn.bind("t", "q1", "a.*")
    assert conn.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
    index = broker.routes.indexes["t"]
    assert broker.routes.results["t"] == {"a.b": ["q1"]}
    assert conn.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
    assert broker.routes.indexes["t"] is index  # the same index, a transaction later
    conn.bind("t", "q2", "#")
    assert conn.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
    assert broker.routes.indexes["t"] is not index  # rebuilt after the bind
    assert (ready(conn, "q1"), ready(conn, "q2")) == (3, 1)


def test_another_process_binding_is_seen_at_once(tmp_path: Any) -> None:
    # Two Brokers on one file: two processes, each with its own routing state.
    path = str(tmp_path / "amq.db")
    one, two = Broker(path), Broker(path)
    try:
        a, b = one.connect(), two.connect()
        a.declare_exchange("t", "topic")
        a.declare_queue("q1")
        a.declare_queue("q2")
        a.bind("t", "q1", "a.#")
        assert a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
        b.bind("t", "q2", "*.b")
        assert a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
        b.unbind("t", "q1", "a.#")
        b.delete_queue("q2")
        assert a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [UNROUTABLE]
        b.declare_queue("q2")
        b.bind("t", "q2", "a.b")
        assert a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
        assert (ready(a, "q1"), ready(a, "q2")) == (2, 1)
        b.delete_exchange("t")
        with pytest.raises(errors.NotFound, match="no exchange 't'"):
            a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"])
        b.declare_exchange("t", "direct")
        b.bind("t", "q2", "a.b")
        assert a.publish_bodies("t", "a.b", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
        assert ready(a, "q2") == 2
        a.close()
        b.close()
    finally:
        one.close()
        two.close()


def test_an_alternate_exchange_declared_later_is_used(broker: Broker,
                                                      conn: Connection) -> None:
    conn.declare_exchange("x", "direct", arguments={"alternate-exchange": "ae"})
    conn.declare_queue("q")
    assert conn.publish_bodies("x", "k", EMPTY_PROPERTIES, [b"m"]) == [UNROUTABLE]
    other = Broker(broker.store.path)  # another process declares it
    try:
        c = other.connect()
        c.declare_exchange("ae", "fanout")
        c.bind("ae", "q")
        c.close()
    finally:
        other.close()
    assert conn.publish_bodies("x", "k", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]


def test_routing_learnt_in_a_rolled_back_transaction_is_not_trusted(tmp_path: Any) -> None:
    path = str(tmp_path / "amq.db")
    one, two = Broker(path), Broker(path)
    try:
        a, b = one.connect(), two.connect()
        a.declare_exchange("t", "topic")
        for q in ("q1", "q2"):
            a.declare_queue(q)
        with pytest.raises(RuntimeError), one.store.transaction():
            a.bind("t", "q1", "#")  # moves the version ...
            assert a.publish_bodies("t", "k", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
            raise RuntimeError("... and rolls back, with what routing learnt meanwhile")
        b.bind("t", "q2", "k")  # another process moves it too, from the same value
        assert a.publish_bodies("t", "k", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
        assert (ready(a, "q1"), ready(a, "q2")) == (0, 1)
        a.close()
        b.close()
    finally:
        one.close()
        two.close()


def test_each_routing_key_is_routed_once(broker: Broker, conn: Connection,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    conn.declare_exchange("t", "topic")
    for i in range(3):
        conn.declare_queue(f"q{i}")
        conn.bind("t", f"q{i}", f"k.{i}.#")
    looked_up: list[str] = []
    match = routing.TopicTrie.match

    def counted(self: routing.TopicTrie, key: str) -> set[int]:
        looked_up.append(key)
        return match(self, key)

    monkeypatch.setattr(routing.TopicTrie, "match", counted)
    keys = [f"k.{n % 3}.{n % 10}" for n in range(1000)]  # 30 keys, never two alike in a row
    messages = [Message(b"m", Properties(), k, "t") for k in keys]
    assert conn.publish("t", messages) == [ROUTED] * 1000
    assert sorted(looked_up) == sorted(set(keys)) and len(looked_up) == 30
    assert conn.publish("t", messages[:100]) == [ROUTED] * 100  # a later transaction
    assert len(looked_up) == 30
    conn.bind("t", "q0", "nothing")
    assert conn.publish("t", messages[:10]) == [ROUTED] * 10
    assert len(looked_up) == 40
    assert sum(ready(conn, f"q{i}") for i in range(3)) == 1110


def test_only_the_exchanges_used_are_read(broker: Broker, conn: Connection,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    conn.declare_queue("q")
    for x in ("big", "small"):
        conn.declare_exchange(x, "topic")
    with broker.store.transaction():
        for i in range(2000):
            conn.bind("big", "q", f"a.{i}.#")
    conn.bind("small", "q", "s")
    read: list[str] = []
    rows = publishing.BindingRows

    def counted(db: Any, source: str) -> publishing.BindingRows:
        read.append(source)
        return rows(db, source)

    monkeypatch.setattr(publishing, "BindingRows", counted)
    assert conn.publish_bodies("small", "s", EMPTY_PROPERTIES, [b"m"] * 3) == [ROUTED] * 3
    assert read == ["small"]


def test_binding_rows_read_by_key_or_all_agree(broker: Broker, conn: Connection) -> None:
    conn.declare_exchange("x", "topic")
    conn.declare_exchange("y", "fanout")
    for q in ("q1", "q2", "q3"):
        conn.declare_queue(q)
    for key in ("a", "b", "a.#", ""):  # each key to several destinations
        conn.bind("x", "q2", key)
        conn.bind("x", "q1", key, {"x-any": 1})
        conn.bind("x", "y", key, destination_type=E)
    conn.bind("x", "q3", "a")
    with broker.store.transaction() as db:
        stored = bindings_from(db, "x")
        by_key = publishing.BindingRows(db, "x")
        at_once = publishing.BindingRows(db, "x")
        at_once.LOOKUPS = 0  # all rows on the first binding asked for
        order = [5, 0, 12, 3, 7, 1, 9, 2, 4, 6, 8, 10, 11]  # some by key, then all
        made = {i: by_key.binding(i) for i in order}
        assert [made[i] for i in range(13)] == [at_once.binding(i) for i in range(13)]
        assert [b.routing_key for b in made.values()] == [by_key.keys[i] for i in order]
        assert by_key._lookups == by_key.LOOKUPS and at_once._lookups == 0
    assert sorted(made.values(), key=repr) == sorted(stored, key=repr)


def test_headers_and_the_default_exchange_are_routed_afresh(broker: Broker,
                                                            conn: Connection) -> None:
    conn.declare_exchange("h", "headers")
    conn.declare_exchange("x", "direct", arguments={"alternate-exchange": ""})
    conn.declare_queue("q")
    conn.bind("h", "q", "", {"x-match": "any", "a": "1"})
    with_a = Properties(headers={"a": "1"})
    assert conn.publish_bodies("h", "k", with_a, [b"m"]) == [ROUTED]
    assert conn.publish_bodies("h", "k", EMPTY_PROPERTIES, [b"m"]) == [UNROUTABLE]
    assert conn.publish_bodies("x", "q2", EMPTY_PROPERTIES, [b"m"]) == [UNROUTABLE]
    conn.declare_queue("q2")  # no version move: the default exchange is asked each time
    assert conn.publish_bodies("x", "q2", EMPTY_PROPERTIES, [b"m"]) == [ROUTED]
    assert "x" not in broker.routes.results or "q2" not in broker.routes.results["x"]


# --------------------------------------------------------------------------- vs the scan

NAMES = ["x0", "x1", "x2"]
QUEUES = ["q0", "q1", "q2"]
# Few names and words, so that changes and probes meet: a probe before and after a change
# catches routing state that outlived it.
patterns = st.sampled_from(["a", "b", "", "#", "*", "a.*", "#.b", "a..b", "*.#"])
keys = st.sampled_from(["a", "b", "", "a.b", "a..b", "q1", "x.y.b"])


def scanned(db: Any, exchange: str, key: str, headers: dict[str, Any] | None) -> routing.Route:
    """The route as the broker found it before indexes: every binding tested."""
    def bindings(name: str) -> list[Binding]:
        if name == "":
            return [Binding("", q, Q, q) for (q,) in
                    db.execute("SELECT name FROM queues ORDER BY name")]
        return bindings_from(db, name)
    if exchange == "":
        found = [k for k in routing.routing_keys(key, headers)
                 if db.execute("SELECT 1 FROM queues WHERE name = ?", (k,)).fetchone()]
        return routing.Route(found, [routing.Hop("", [Binding("", q, Q, q) for q in found])])
    return routing.route(exchange, key, headers, lambda n: get_exchange(db, n), bindings)


changes = st.lists(st.tuples(
    st.sampled_from(["bind", "bind", "bind", "unbind", "delete_queue", "delete_exchange"]),
    st.sampled_from(NAMES), st.sampled_from(QUEUES + NAMES), patterns,
    st.sampled_from(["direct", "fanout", "topic", "headers"]),
    st.sampled_from([None, "", "x0", "nowhere"])), max_size=12)


def change(c: Connection, step: tuple[str, str, str, str, str, str | None]) -> None:
    what, source, destination, key, kind, ae = step
    args = {} if ae is None else {"alternate-exchange": ae}
    kind_of = E if destination in NAMES else Q
    try:
        if what == "delete_queue":
            c.delete_queue(destination)
        elif what == "delete_exchange":
            c.delete_exchange(source)
        else:
            for x in {source, destination} & set(NAMES):
                c.declare_exchange(x, kind, arguments=args)
            if kind_of is Q:
                c.declare_queue(destination)
            args = {"x-match": "any", "h": key} if kind == "headers" else {}
            getattr(c, what)(source, destination, key, args, kind_of)
    except errors.PreconditionFailed:
        pass  # declared before as another kind: it stays as it was


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes, st.lists(st.tuples(st.sampled_from(["", *NAMES]), keys), min_size=1,
                         max_size=6),
       st.sampled_from([None, {"h": "a"}, {"CC": ["a", "q1"]}, {"BCC": ["q0"], "h": ""}]))
def test_kept_routing_agrees_with_a_scan_of_the_store(
        tmp_path_factory: Any, steps: list[Any], probes: list[tuple[str, str]],
        headers: dict[str, Any] | None) -> None:
    path = tmp_path_factory.mktemp("router") / "amq.db"
    broker = Broker(str(path))
    other = Broker(str(path))  # changes come from another process too
    try:
        mine, theirs = broker.connect(), other.connect()
        for q in QUEUES[:2]:
            mine.declare_queue(q)
        for i, step in enumerate([*steps, None]):
            if step is not None:
                change(theirs if i % 2 else mine, step)
            for exchange, key in probes:  # routed twice: learnt, then from what was kept
                for _ in range(2):
                    with broker.store.transaction() as db:
                        try:
                            router = Router(db, exchange, routes=broker.routes)
                        except errors.NotFound:
                            assert get_exchange(db, exchange) is None
                            continue
                        assert router.explain(key, headers) == scanned(db, exchange, key,
                                                                       headers)
                        assert router.queues(key, headers) == \
                            scanned(db, exchange, key, headers).queues
        mine.close()
        theirs.close()
    finally:
        broker.close()
        other.close()
