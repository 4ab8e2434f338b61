"""Unit tests for amqcli.amqp.routing: pure routing functions, RabbitMQ semantics."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqcli.amqp.model import Binding, DestinationType, Exchange, ExchangeType
from amqcli.amqp.routing import (
    BindingIndex,
    Route,
    binding_matches,
    headers_match,
    route,
    routing_keys,
    same_value,
    topic_matches,
)

Q = DestinationType.QUEUE
E = DestinationType.EXCHANGE


# --------------------------------------------------------------------------- topic

TOPIC_CASES = [
    # (binding key, routing key, expected)
    # exact words
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b", "a.b.c", False),
    ("a.b.c", "a.b.d", False),
    ("stock.usd.nyse", "stock.usd.nyse", True),
    ("abc", "ab", False),
    # the empty routing key is zero words
    ("", "", True),
    ("#", "", True),
    ("*", "", False),
    ("", "a", False),
    ("a", "", False),
    ("#.#", "", True),
    ("#.*", "", False),
    # '#' matches everything
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", ".", True),
    ("#", "a..b", True),
    # '*' is exactly one word
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.*", "a", False),
    ("*.*", "a.b", True),
    ("*.*", "a.b.c", False),
    ("x.*", "x", False),
    ("x.*", "x.y", True),
    ("x.*", "x.y.z", False),
    ("*.b", "a.b", True),
    ("*.b", "b", False),
    # empty words count as words
    ("a.*.b", "a..b", True),
    ("a..b", "a..b", True),
    ("a.b", "a..b", False),
    ("*", ".", False),  # "." is two empty words
    ("*.*", ".", True),
    ("a.*", "a.", True),  # "a." is "a" and an empty word
    ("a", "a.", False),
    ("*.a", ".a", True),
    ("#.a", ".a", True),
    # '#' as zero words at the end / middle / start
    ("audit.events.#", "audit.events", True),
    ("audit.events.#", "audit.events.login", True),
    ("audit.events.#", "audit.events.login.failed", True),
    ("audit.events.#", "audit.event", False),
    ("audit.events.#", "audit", False),
    ("a.#.d", "a.d", True),
    ("a.#.d", "a.b.d", True),
    ("a.#.d", "a.b.c.d", True),
    ("a.#.d", "a.b.c", False),
    ("a.#.d", "d", False),
    ("a.#.d", "a.d.e", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "c.d", False),
    ("#.c", "", False),
    # '#.*.#' is "at least one word"
    ("#.*.#", "a", True),
    ("#.*.#", "a.b", True),
    ("#.*.#", "a.b.c", True),
    ("#.*.#", ".", True),
    ("#.*.#", "", False),
    # combinations
    ("*.#", "a", True),
    ("*.#", "", False),
    ("#.*", "a.b", True),
    ("*.*.#", "a", False),
    ("*.#.*", "a.b", True),
    ("*.#.*", "a", False),
    ("a.#.#.b", "a.b", True),
    ("a.#.b.#.c", "a.x.b.y.c", True),
    ("a.#.b.#.c", "a.x.c.y.b", False),
    # '*' and '#' are only special as whole words
    ("a*", "ab", False),
    ("a*", "a*", True),
    ("a#", "a", False),
    ("a#", "a#", True),
    # literal words containing routing-key wildcards are not patterns
    ("a.b", "a.*", False),
]


@pytest.mark.parametrize("binding_key, routing_key, expected", TOPIC_CASES)
def test_topic_matches(binding_key: str, routing_key: str, expected: bool) -> None:
    assert topic_matches(binding_key, routing_key) is expected


def _reference_topic(binding_key: str, routing_key: str) -> bool:
    """An independent oracle: translate the binding key into a regex over words.

    Words are joined with a separator that cannot appear in a word, so the regex never
    has to reason about dots; each word of the routing key becomes ``<word>\\x00``.
    """
    pattern = binding_key.split(".") if binding_key else []
    words = routing_key.split(".") if routing_key else []
    parts = []
    for w in pattern:
        if w == "#":
            parts.append(r"(?:[^\x00]*\x00)*")
        elif w == "*":
            parts.append(r"[^\x00]*\x00")
        else:
            parts.append(re.escape(w) + r"\x00")
    return re.fullmatch("".join(parts), "".join(w + "\x00" for w in words)) is not None


_words = st.sampled_from(["a", "b", "", "ab"])
_pattern_words = st.sampled_from(["a", "b", "", "*", "#"])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_pattern_words, max_size=5).map(".".join),
    st.lists(_words, max_size=5).map(".".join),
)
def test_topic_matches_agrees_with_reference(binding_key: str, routing_key: str) -> None:
    assert topic_matches(binding_key, routing_key) == _reference_topic(binding_key, routing_key)


def test_reference_oracle_sanity() -> None:
    # The oracle itself must agree with the hand-written table, or it proves nothing.
    for binding_key, routing_key, expected in TOPIC_CASES:
        assert _reference_topic(binding_key, routing_key) is expected, (binding_key, routing_key)


# --------------------------------------------------------------------------- headers

HEADERS_CASES = [
    # (binding arguments, message headers, expected)
    # x-match all (the default)
    ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
    ({"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),
    ({"a": "1", "b": "2"}, {"a": "1"}, False),
    ({"a": "1", "b": "2"}, {"a": "1", "b": "X"}, False),
    ({"x-match": "all", "a": "1"}, {"a": "1"}, True),
    ({"x-match": "all", "a": "1"}, {"a": "2"}, False),
    ({"a": "1"}, None, False),
    ({"a": "1"}, {}, False),
    # all with no usable argument matches everything
    ({}, {}, True),
    ({}, None, True),
    ({"x-match": "all"}, {"anything": 1}, True),
    ({"x-match": "all", "x-foo": "bar"}, {}, True),  # x-* ignored for all
    # x-* binding arguments are ignored for all/any...
    ({"x-match": "all", "x-foo": "bar", "a": "1"}, {"a": "1"}, True),
    ({"x-match": "all", "x-foo": "bar", "a": "1"}, {"a": "1", "x-foo": "other"}, True),
    ({"x-match": "any", "x-foo": "bar", "a": "1"}, {"x-foo": "bar"}, False),
    ({"x-match": "any", "x-foo": "bar", "a": "1"}, {"a": "1"}, True),
    # x-match any
    ({"x-match": "any", "a": "1", "b": "2"}, {"a": "1"}, True),
    ({"x-match": "any", "a": "1", "b": "2"}, {"b": "2"}, True),
    ({"x-match": "any", "a": "1", "b": "2"}, {"a": "2", "b": "1"}, False),
    ({"x-match": "any", "a": "1", "b": "2"}, {}, False),
    ({"x-match": "any", "a": "1"}, None, False),
    # any with no usable argument matches nothing
    ({"x-match": "any"}, {"a": "1"}, False),
    ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
    # ...but used by the -with-x modes (only x-match itself is skipped)
    ({"x-match": "all-with-x", "x-foo": "bar"}, {"x-foo": "bar"}, True),
    ({"x-match": "all-with-x", "x-foo": "bar"}, {}, False),
    ({"x-match": "all-with-x", "x-foo": "bar", "a": "1"}, {"a": "1"}, False),
    ({"x-match": "all-with-x", "x-foo": "bar", "a": "1"}, {"a": "1", "x-foo": "bar"}, True),
    ({"x-match": "all-with-x"}, {}, True),
    ({"x-match": "all-with-x"}, {"x-match": "whatever"}, True),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": "1"}, {"x-foo": "bar"}, True),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": "1"}, {"x-foo": "baz"}, False),
    ({"x-match": "any-with-x", "x-foo": "bar"}, {}, False),
    ({"x-match": "any-with-x"}, {"x-match": "any-with-x"}, False),
    # x-match is never compared as a header, even in the -with-x modes
    ({"x-match": "any-with-x"}, {"x-match": "any-with-x", "a": 1}, False),
    # None (AMQP void) in the binding means "header present", any value
    ({"a": None}, {"a": "anything"}, True),
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {"a": 0}, True),
    ({"a": None}, {"b": "1"}, False),
    ({"x-match": "any", "a": None, "b": "2"}, {"a": 5}, True),
    ({"x-match": "all", "a": None, "b": "2"}, {"a": 5}, False),
    # a void header is not a string value
    ({"a": "1"}, {"a": None}, False),
    # typed equality: the same value of a different kind does not match
    ({"n": "1"}, {"n": 1}, False),
    ({"n": 1}, {"n": "1"}, False),
    ({"n": 1}, {"n": 1}, True),
    ({"n": 1}, {"n": True}, False),
    ({"n": True}, {"n": 1}, False),
    ({"n": True}, {"n": True}, True),
    ({"n": 0}, {"n": False}, False),
    ({"n": 1}, {"n": 1.0}, False),
    ({"n": "a"}, {"n": b"a"}, False),
    ({"x-match": "any", "n": 1, "m": "2"}, {"n": "1", "m": 2}, False),
    # nested values compare by value
    ({"t": [1, 2]}, {"t": [1, 2]}, True),
    ({"t": [1, 2]}, {"t": [2, 1]}, False),
    ({"t": {"k": "v"}}, {"t": {"k": "v"}}, True),
]


@pytest.mark.parametrize("arguments, headers, expected", HEADERS_CASES)
def test_headers_match(arguments, headers, expected) -> None:
    assert headers_match(arguments, headers) is expected


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (1, 1, True),
        (1, "1", False),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (1.0, 1, False),
        ("x", "x", True),
        (b"x", b"x", True),
        (b"x", "x", False),
        (None, None, True),
    ],
)
def test_same_value(a, b, expected) -> None:
    assert same_value(a, b) is expected


# --------------------------------------------------------------------------- binding_matches


@pytest.mark.parametrize(
    "xtype, binding, rk, headers, expected",
    [
        (ExchangeType.FANOUT, Binding("x", "q", routing_key="ignored"), "other", None, True),
        (ExchangeType.DIRECT, Binding("x", "q", routing_key="k"), "k", None, True),
        (ExchangeType.DIRECT, Binding("x", "q", routing_key="k"), "K", None, False),
        (ExchangeType.DIRECT, Binding("x", "q", routing_key="a.*"), "a.b", None, False),
        (ExchangeType.DIRECT, Binding("x", "q", routing_key=""), "", None, True),
        (ExchangeType.TOPIC, Binding("x", "q", routing_key="a.*"), "a.b", None, True),
        (ExchangeType.TOPIC, Binding("x", "q", routing_key="a.*"), "a", None, False),
        (ExchangeType.HEADERS, Binding("x", "q", arguments={"h": "v"}), "", {"h": "v"}, True),
        (ExchangeType.HEADERS, Binding("x", "q", routing_key="k", arguments={"h": "v"}),
         "k", {"h": "w"}, False),
    ],
)
def test_binding_matches(xtype, binding, rk, headers, expected) -> None:
    assert binding_matches(xtype, binding, rk, headers) is expected


# --------------------------------------------------------------------------- routing_keys


@pytest.mark.parametrize(
    "rk, headers, expected",
    [
        ("a", None, ["a"]),
        ("a", {}, ["a"]),
        ("", None, [""]),
        ("a", {"CC": ["b", "c"]}, ["a", "b", "c"]),
        ("a", {"BCC": ["d"]}, ["a", "d"]),
        ("a", {"CC": ["b"], "BCC": ["c"]}, ["a", "b", "c"]),
        ("a", {"cc": ["b"]}, ["a"]),  # header names are case sensitive
        ("a", {"CC": "b"}, ["a"]),  # not an array: ignored
        ("a", {"CC": ["b", 5, b"c"]}, ["a", "b"]),  # non-strings ignored
    ],
)
def test_routing_keys(rk, headers, expected) -> None:
    assert routing_keys(rk, headers) == expected


def test_routing_keys_no_duplicates() -> None:
    keys = routing_keys("a", {"CC": ["a", "b", "b"], "BCC": ["b", "c", "a"]})
    assert sorted(keys) == ["a", "b", "c"]
    assert keys[0] == "a"


# --------------------------------------------------------------------------- route


class Topology:
    """A tiny in-memory broker topology for route()."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.bindings: list[Binding] = []

    def exchange(self, name: str, type_: ExchangeType = ExchangeType.DIRECT,
                 **arguments) -> Topology:
        self.exchanges[name] = Exchange(name, type_, arguments=dict(arguments))
        return self

    def bind(self, source: str, destination: str, routing_key: str = "",
             destination_type: DestinationType = Q, **arguments) -> Topology:
        self.bindings.append(
            Binding(source, destination, destination_type, routing_key, dict(arguments)))
        return self

    def get_exchange(self, name: str) -> Exchange | None:
        return self.exchanges.get(name)

    def bindings_from(self, name: str) -> list[Binding]:
        return [b for b in self.bindings if b.source == name]

    def route(self, exchange: str, routing_key: str = "", headers=None) -> Route:
        """The route by scanning, checked against the route through ``BindingIndex``."""
        scanned = route(exchange, routing_key, headers, self.get_exchange, self.bindings_from)
        indexed = route(exchange, routing_key, headers, self.get_exchange, self.bindings_from,
                        lambda x, keys, h: BindingIndex.of(
                            x.type, self.bindings_from(x.name)).matching(keys, h))
        assert indexed == scanned
        return scanned


def _hop(r: Route, name: str):
    hops = [h for h in r.hops if h.exchange == name]
    assert len(hops) == 1, f"{name!r} visited {len(hops)} times"
    return hops[0]


@pytest.mark.parametrize(
    "rk, expected",
    [("k1", ["q1"]), ("k2", ["q2", "q3"]), ("nope", []), ("", [])],
)
def test_route_direct(rk, expected) -> None:
    t = (Topology().exchange("d")
         .bind("d", "q1", "k1").bind("d", "q2", "k2").bind("d", "q3", "k2"))
    assert sorted(t.route("d", rk).queues) == expected


def test_route_fanout_ignores_key() -> None:
    t = (Topology().exchange("f", ExchangeType.FANOUT)
         .bind("f", "q1", "x").bind("f", "q2", ""))
    assert sorted(t.route("f", "whatever").queues) == ["q1", "q2"]


def test_route_fanout_no_bindings() -> None:
    t = Topology().exchange("f", ExchangeType.FANOUT)
    r = t.route("f", "k")
    assert r.queues == []
    assert _hop(r, "f").matched == []


@pytest.mark.parametrize(
    "rk, expected",
    [
        ("usd.nyse", ["all", "nyse", "usd"]),
        ("usd", ["all", "usd"]),
        ("eur.lse", ["all"]),
        ("", ["all"]),
        ("usd.nyse.x", ["all", "usd"]),
    ],
)
def test_route_topic(rk, expected) -> None:
    t = (Topology().exchange("t", ExchangeType.TOPIC)
         .bind("t", "all", "#").bind("t", "usd", "usd.#").bind("t", "nyse", "*.nyse"))
    assert sorted(t.route("t", rk).queues) == expected


def test_route_headers_exchange() -> None:
    t = (Topology().exchange("h", ExchangeType.HEADERS)
         .bind("h", "q1", **{"x-match": "any", "a": "1", "b": "2"})
         .bind("h", "q2", **{"a": "1", "b": "2"}))
    assert t.route("h", "", {"a": "1"}).queues == ["q1"]
    assert sorted(t.route("h", "", {"a": "1", "b": "2"}).queues) == ["q1", "q2"]
    assert t.route("h", "", None).queues == []


def test_route_queue_bound_twice_gets_one_copy() -> None:
    t = (Topology().exchange("t", ExchangeType.TOPIC)
         .bind("t", "q", "a.*").bind("t", "q", "*.b").bind("t", "q", "#"))
    r = t.route("t", "a.b")
    assert r.queues == ["q"]
    assert len(_hop(r, "t").matched) == 3


def test_route_cc_and_bcc_add_keys() -> None:
    t = (Topology().exchange("d")
         .bind("d", "q1", "k1").bind("d", "q2", "k2").bind("d", "q3", "k3"))
    r = t.route("d", "k1", {"CC": ["k2"], "BCC": ["k3"]})
    assert sorted(r.queues) == ["q1", "q2", "q3"]
    # CC key alone, routing key matches nothing
    assert t.route("d", "none", {"CC": ["k2"]}).queues == ["q2"]


def test_route_cc_with_topic() -> None:
    t = Topology().exchange("t", ExchangeType.TOPIC).bind("t", "q", "a.#")
    assert t.route("t", "b", {"CC": ["a.x"]}).queues == ["q"]
    assert t.route("t", "b", {"CC": ["b.a"]}).queues == []


def test_route_cc_same_queue_once() -> None:
    t = Topology().exchange("d").bind("d", "q", "k1").bind("d", "q", "k2")
    assert t.route("d", "k1", {"CC": ["k2"]}).queues == ["q"]


def test_route_exchange_to_exchange() -> None:
    t = (Topology()
         .exchange("src", ExchangeType.TOPIC)
         .exchange("dst", ExchangeType.DIRECT)
         .bind("src", "dst", "a.#", E)
         .bind("dst", "q1", "a.b")
         .bind("dst", "q2", "other"))
    r = t.route("src", "a.b")
    assert r.queues == ["q1"]
    assert [h.exchange for h in r.hops] == ["src", "dst"]
    # the key does not pass the E2E binding
    assert t.route("src", "b.a").queues == []


def test_route_queue_reached_by_two_paths_appears_once() -> None:
    # src -> x1 -> q ; src -> x2 -> q ; src -> q
    t = (Topology()
         .exchange("src", ExchangeType.FANOUT)
         .exchange("x1", ExchangeType.FANOUT)
         .exchange("x2", ExchangeType.FANOUT)
         .bind("src", "x1", destination_type=E)
         .bind("src", "x2", destination_type=E)
         .bind("src", "q")
         .bind("x1", "q")
         .bind("x2", "q")
         .bind("x2", "other"))
    r = t.route("src", "k")
    assert sorted(r.queues) == ["other", "q"]
    assert len(r.queues) == len(set(r.queues))


def test_route_diamond_visits_each_exchange_once() -> None:
    # src -> a -> d ; src -> b -> d ; d -> q
    t = (Topology()
         .exchange("src", ExchangeType.FANOUT)
         .exchange("a", ExchangeType.FANOUT)
         .exchange("b", ExchangeType.FANOUT)
         .exchange("d", ExchangeType.FANOUT)
         .bind("src", "a", destination_type=E)
         .bind("src", "b", destination_type=E)
         .bind("a", "d", destination_type=E)
         .bind("b", "d", destination_type=E)
         .bind("d", "q"))
    r = t.route("src", "")
    assert r.queues == ["q"]
    assert sorted(h.exchange for h in r.hops) == ["a", "b", "d", "src"]


@pytest.mark.timeout(10)
def test_route_cycle_terminates() -> None:
    t = (Topology()
         .exchange("a", ExchangeType.FANOUT)
         .exchange("b", ExchangeType.FANOUT)
         .exchange("c", ExchangeType.FANOUT)
         .bind("a", "b", destination_type=E)
         .bind("b", "c", destination_type=E)
         .bind("c", "a", destination_type=E)
         .bind("c", "q"))
    r = t.route("a", "k")
    assert r.queues == ["q"]
    assert sorted(h.exchange for h in r.hops) == ["a", "b", "c"]


@pytest.mark.timeout(10)
def test_route_self_binding_terminates() -> None:
    t = (Topology().exchange("a", ExchangeType.FANOUT)
         .bind("a", "a", destination_type=E).bind("a", "q"))
    r = t.route("a", "k")
    assert r.queues == ["q"]
    assert len(r.hops) == 1


def test_route_e2e_to_missing_exchange() -> None:
    t = (Topology().exchange("a", ExchangeType.FANOUT)
         .bind("a", "gone", destination_type=E))
    r = t.route("a", "k")
    assert r.queues == []
    assert _hop(r, "gone").missing is True
    assert _hop(r, "a").missing is False


def test_route_missing_start_exchange() -> None:
    r = Topology().route("nope", "k")
    assert r.queues == []
    assert len(r.hops) == 1 and r.hops[0].missing is True


def test_alternate_exchange_used_when_nothing_matches() -> None:
    t = (Topology()
         .exchange("main", ExchangeType.DIRECT, **{"alternate-exchange": "ae"})
         .exchange("ae", ExchangeType.FANOUT)
         .bind("main", "q", "known")
         .bind("ae", "unrouted"))
    r = t.route("main", "unknown")
    assert r.queues == ["unrouted"]
    assert _hop(r, "main").alternate == "ae"


def test_alternate_exchange_not_used_when_something_matches() -> None:
    t = (Topology()
         .exchange("main", ExchangeType.DIRECT, **{"alternate-exchange": "ae"})
         .exchange("ae", ExchangeType.FANOUT)
         .bind("main", "q", "known")
         .bind("ae", "unrouted"))
    r = t.route("main", "known")
    assert r.queues == ["q"]
    assert _hop(r, "main").alternate is None
    assert "ae" not in [h.exchange for h in r.hops]


def test_alternate_exchange_not_used_when_binding_matched_e2e_that_routes_nowhere() -> None:
    # main's own binding matched (to an exchange), so main's AE is not used even though
    # no queue is reached; the downstream exchange's own AE is.
    t = (Topology()
         .exchange("main", ExchangeType.FANOUT, **{"alternate-exchange": "ae-main"})
         .exchange("mid", ExchangeType.DIRECT, **{"alternate-exchange": "ae-mid"})
         .exchange("ae-main", ExchangeType.FANOUT)
         .exchange("ae-mid", ExchangeType.FANOUT)
         .bind("main", "mid", destination_type=E)
         .bind("ae-main", "q-main")
         .bind("ae-mid", "q-mid"))
    r = t.route("main", "k")
    assert r.queues == ["q-mid"]
    assert _hop(r, "main").alternate is None
    assert _hop(r, "mid").alternate == "ae-mid"


def test_alternate_exchange_chain() -> None:
    t = (Topology()
         .exchange("x1", ExchangeType.DIRECT, **{"alternate-exchange": "x2"})
         .exchange("x2", ExchangeType.DIRECT, **{"alternate-exchange": "x3"})
         .exchange("x3", ExchangeType.FANOUT)
         .bind("x1", "q1", "one")
         .bind("x2", "q2", "two")
         .bind("x3", "q3"))
    assert t.route("x1", "one").queues == ["q1"]
    assert t.route("x1", "two").queues == ["q2"]
    r = t.route("x1", "three")
    assert r.queues == ["q3"]
    assert [h.exchange for h in r.hops] == ["x1", "x2", "x3"]
    assert [h.alternate for h in r.hops] == ["x2", "x3", None]


@pytest.mark.timeout(10)
def test_alternate_exchange_cycle_terminates() -> None:
    t = (Topology()
         .exchange("x1", ExchangeType.DIRECT, **{"alternate-exchange": "x2"})
         .exchange("x2", ExchangeType.DIRECT, **{"alternate-exchange": "x1"}))
    r = t.route("x1", "k")
    assert r.queues == []
    assert sorted(h.exchange for h in r.hops) == ["x1", "x2"]


def test_missing_alternate_exchange_yields_no_queues() -> None:
    t = (Topology()
         .exchange("main", ExchangeType.DIRECT, **{"alternate-exchange": "gone"})
         .bind("main", "q", "known"))
    r = t.route("main", "unknown")
    assert r.queues == []
    assert _hop(r, "main").alternate == "gone"
    assert _hop(r, "gone").missing is True


def test_alternate_exchange_of_e2e_destination_used() -> None:
    t = (Topology()
         .exchange("src", ExchangeType.FANOUT)
         .exchange("dst", ExchangeType.DIRECT, **{"alternate-exchange": "ae"})
         .exchange("ae", ExchangeType.FANOUT)
         .bind("src", "dst", destination_type=E)
         .bind("src", "direct-q")
         .bind("dst", "q", "known")
         .bind("ae", "ae-q"))
    assert sorted(t.route("src", "unknown").queues) == ["ae-q", "direct-q"]
    assert sorted(t.route("src", "known").queues) == ["direct-q", "q"]


def test_alternate_exchange_already_visited_not_revisited() -> None:
    # src fans out to a and b; a falls to its AE b, which was reached anyway.
    t = (Topology()
         .exchange("src", ExchangeType.FANOUT)
         .exchange("a", ExchangeType.DIRECT, **{"alternate-exchange": "b"})
         .exchange("b", ExchangeType.FANOUT)
         .bind("src", "a", destination_type=E)
         .bind("src", "b", destination_type=E)
         .bind("b", "q"))
    r = t.route("src", "k")
    assert r.queues == ["q"]
    assert sorted(h.exchange for h in r.hops) == ["a", "b", "src"]


def test_non_string_alternate_exchange_ignored() -> None:
    t = (Topology()
         .exchange("main", ExchangeType.DIRECT, **{"alternate-exchange": 5})
         .exchange("5", ExchangeType.FANOUT)
         .bind("5", "q"))
    r = t.route("main", "k")
    assert r.queues == []
    assert _hop(r, "main").alternate is None


def test_default_exchange_has_no_alternate() -> None:
    t = (Topology()
         .exchange("", ExchangeType.DIRECT, **{"alternate-exchange": "ae"})
         .exchange("ae", ExchangeType.FANOUT)
         .bind("", "q", "q")
         .bind("ae", "ae-q"))
    assert t.route("", "q").queues == ["q"]
    r = t.route("", "nope")
    assert r.queues == []
    assert r.hops[0].alternate is None


def test_route_queue_order_is_first_reached() -> None:
    t = (Topology().exchange("d")
         .bind("d", "q2", "k").bind("d", "q1", "k").bind("d", "q2", "k"))
    assert t.route("d", "k").queues == ["q2", "q1"]
