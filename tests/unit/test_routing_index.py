"""The indexed routing of amqcli.amqp.routing (``TopicTrie``, ``BindingIndex``, ``route``
with ``matching``) against the scan that tests each binding: over random bindings, keys,
headers and topologies (exchange-to-exchange chains, alternate exchanges, the default
exchange), the two give exactly the same bindings, hops and queues, in the same order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_routing import TOPIC_CASES

from amqcli.amqp.model import Binding, DestinationType, Exchange, ExchangeType
from amqcli.amqp.routing import (
    BindingIndex,
    Route,
    TopicTrie,
    route,
    routing_keys,
    scan,
    topic_matches,
)

Q = DestinationType.QUEUE
E = DestinationType.EXCHANGE

# Words that make the cases that matter: empty words ("a..b", "."), literals that look like
# wildcards in a routing key, and the wildcards themselves in binding keys.
_key_words = st.sampled_from(["a", "b", "", "ab", "*", "#"])
_pattern_words = st.sampled_from(["a", "b", "", "*", "#"])
routing_key = st.lists(_key_words, max_size=6).map(".".join)
binding_key = st.lists(_pattern_words, max_size=5).map(".".join)


# --------------------------------------------------------------------------- the trie

@pytest.mark.parametrize("binding_key, routing_key, expected", TOPIC_CASES)
def test_trie_agrees_with_the_table(binding_key: str, routing_key: str, expected: bool) -> None:
    trie = TopicTrie(["x.y", binding_key, "#.x"])
    assert (1 in trie.match(routing_key)) is expected


@settings(max_examples=300, deadline=None)
@given(st.lists(binding_key, max_size=30), st.lists(routing_key, min_size=1, max_size=8))
def test_trie_matches_what_topic_matches_does(patterns: list[str], keys: list[str]) -> None:
    trie = TopicTrie(patterns)
    for key in keys:  # one trie, several keys: expanded nodes are reused
        assert trie.match(key) == {i for i, p in enumerate(patterns) if topic_matches(p, key)}


def test_trie_matches_a_key_once_however_many_ways() -> None:
    trie = TopicTrie(["#.#", "#.a.#", "a.#.#.a", "#"])
    assert trie.match("a.a.a.a") == {0, 1, 2, 3}
    assert trie.match("") == {0, 3}


def test_many_hashes_and_a_long_key_stay_cheap() -> None:
    # Without remembering the states visited, each '#' multiplies the paths tried.
    pattern = ".".join(["#"] * 12 + ["z"])
    trie = TopicTrie([pattern])
    assert trie.match(".".join(["a"] * 60)) == set()
    assert trie.match(".".join(["a"] * 60 + ["z"])) == {0}


def _expanded(trie: TopicTrie) -> int:
    count, work = 0, [trie.root]
    while work:
        node = work.pop()
        if node.pending is None:
            count += 1
            work.extend(n for n in node.words.values() if not isinstance(n, list))
            work.extend(n for n in (node.star, node.hash) if n is not None)
    return count


def test_matching_one_key_sorts_out_only_the_nodes_on_its_path() -> None:
    patterns = [(f"a.{i}.*", f"#.{i}", f"{i}.#")[i % 3] for i in range(30_000)]
    trie = TopicTrie(patterns)
    assert trie.match("a.0.x") == {0}
    assert _expanded(trie) <= 6  # root, a, a.0, a.0.*, # and the # beneath it
    assert trie.match("a.3.x") == {3}
    assert trie.match("8.b") == {8}
    assert trie.match("q.w.4") == {4}


# --------------------------------------------------------------------------- one exchange

def _arguments(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from([None, "all", "any", "all-with-x", "any-with-x"]))
    args = draw(st.dictionaries(st.sampled_from(["h", "k", "x-k"]),
                                st.sampled_from(["1", "2", 1, None]), max_size=2))
    return args if mode is None else {"x-match": mode, **args}


@st.composite
def bindings(draw: st.DrawFn, source: str = "x") -> list[Binding]:
    count = draw(st.integers(0, 12))
    return [Binding(source, draw(st.sampled_from(["q0", "q1", "q2"])), Q,
                    draw(binding_key | routing_key), _arguments(draw)) for _ in range(count)]


headers = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["h", "k", "x-k", "CC", "BCC"]),
                    st.one_of(st.sampled_from(["1", "2", 1]),
                              st.lists(routing_key, max_size=2)), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(ExchangeType)), bindings(), routing_key, headers)
def test_index_matches_what_the_scan_does(kind: ExchangeType, found: list[Binding], key: str,
                                          head: dict[str, Any] | None) -> None:
    keys = routing_keys(key, head)
    index = BindingIndex.of(kind, found)
    assert index.matching(keys, head) == scan(kind, found, keys, head)


def test_index_makes_only_the_bindings_that_match() -> None:
    made: list[int] = []
    keys = [f"k.{i}" for i in range(1000)]

    def binding(i: int) -> Binding:
        made.append(i)
        return Binding("x", "q", Q, keys[i])

    index = BindingIndex(ExchangeType.DIRECT, keys, binding)
    assert index.matching(["k.7", "k.9", "nope"], None) == [Binding("x", "q", Q, "k.7"),
                                                            Binding("x", "q", Q, "k.9")]
    assert made == [7, 9]


# --------------------------------------------------------------------------- topologies

EXCHANGES = ["x0", "x1", "x2", "x3"]
QUEUES = ["q0", "q1", "q2"]


@st.composite
def topologies(draw: st.DrawFn) -> tuple[dict[str, Exchange], list[Binding]]:
    """Random exchanges (some missing, some with alternate exchanges, the default one)
    and bindings to queues and to exchanges, chains and cycles included."""
    exchanges = {"": Exchange("", ExchangeType.DIRECT)}
    for name in draw(st.lists(st.sampled_from(EXCHANGES), unique=True, min_size=1)):
        ae = draw(st.sampled_from([None, "", "nowhere", *EXCHANGES]))
        exchanges[name] = Exchange(name, draw(st.sampled_from(list(ExchangeType))),
                                   arguments={} if ae is None else {"alternate-exchange": ae})
    found = [Binding("", q, Q, q) for q in QUEUES]  # the default exchange's implicit ones
    for _ in range(draw(st.integers(0, 25))):
        source = draw(st.sampled_from([n for n in exchanges if n]))
        to_exchange = draw(st.booleans())
        destination = draw(st.sampled_from(EXCHANGES if to_exchange else QUEUES))
        found.append(Binding(source, destination, E if to_exchange else Q,
                             draw(binding_key | routing_key), _arguments(draw)))
    return exchanges, found


def _both(exchanges: dict[str, Exchange], found: list[Binding], start: str, key: str,
          head: dict[str, Any] | None) -> tuple[Route, Route]:
    def bindings_from(name: str) -> list[Binding]:
        return [b for b in found if b.source == name]

    indexes: dict[str, BindingIndex] = {}

    def matching(x: Exchange, keys: Any, h: Any) -> list[Binding]:
        if x.name not in indexes:
            indexes[x.name] = BindingIndex.of(x.type, bindings_from(x.name))
        return indexes[x.name].matching(keys, h)

    scanned = route(start, key, head, exchanges.get, bindings_from)
    indexed = route(start, key, head, exchanges.get, bindings_from, matching)
    return scanned, indexed


@settings(max_examples=200, deadline=None)
@given(topologies(), st.sampled_from(["", *EXCHANGES]), st.lists(routing_key, min_size=1,
                                                                   max_size=4), headers)
def test_routes_through_indexes_are_the_scanned_routes(
        topology: tuple[dict[str, Exchange], list[Binding]], start: str, keys: list[str],
        head: dict[str, Any] | None) -> None:
    exchanges, found = topology
    for key in keys:
        scanned, indexed = _both(exchanges, found, start, key, head)
        assert indexed == scanned


def test_a_chain_through_every_kind_of_exchange() -> None:
    exchanges = {
        "": Exchange("", ExchangeType.DIRECT),
        "t": Exchange("t", ExchangeType.TOPIC, arguments={"alternate-exchange": "ae"}),
        "d": Exchange("d", ExchangeType.DIRECT),
        "h": Exchange("h", ExchangeType.HEADERS),
        "f": Exchange("f", ExchangeType.FANOUT),
        "ae": Exchange("ae", ExchangeType.FANOUT),
    }
    found = [
        Binding("t", "d", E, "a.#"), Binding("t", "t", E, "#.c"), Binding("d", "h", E, "a.b"),
        Binding("h", "f", E, "", {"x-match": "any", "k": "1"}), Binding("f", "q0", Q),
        Binding("f", "q1", Q), Binding("d", "q1", Q, "a.b"), Binding("ae", "q2", Q),
    ]
    for key, head, queues in [("a.b", {"k": "1"}, ["q1", "q0"]), ("a.b", None, ["q1"]),
                              ("b", None, ["q2"]), ("z", {"CC": ["a.b"], "k": "1"},
                                                    ["q1", "q0"])]:
        scanned, indexed = _both(exchanges, found, "t", key, head)
        assert indexed == scanned
        assert indexed.queues == queues
