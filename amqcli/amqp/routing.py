"""Routing, pure (no I/O): which bindings match a message, and which queues get a copy.

Follows RabbitMQ exactly: direct and fanout, topic with ``*``/``#`` (empty words count as
words, ``""`` is zero words), headers with the four ``x-match`` modes, exchange-to-exchange
bindings with one copy per queue however many paths match, alternate exchanges, and CC/BCC
sender-selected routing keys.

Two ways to find an exchange's matching bindings, which agree exactly: ``scan`` tests each
binding (what ``amq route`` on RabbitMQ uses), ``BindingIndex`` looks a key up (direct
bindings by exact key, topic bindings in a ``TopicTrie``) at a cost that does not grow with
the bindings that do not match (what the local broker routes with).

RabbitMQ docs: Exchanges; AMQP 0-9-1 Model Explained (the headers exchange); Exchange to
Exchange Bindings; Alternate Exchanges; Sender-selected Distribution.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from .model import Binding, DestinationType, Exchange, ExchangeType

X_MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")


def _words(key: str) -> tuple[str, ...]:
    return tuple(key.split(".")) if key else ()


@lru_cache(maxsize=4096)
def topic_matches(binding_key: str, routing_key: str) -> bool:
    """True when a topic binding key matches a routing key (``*`` one word, ``#`` any)."""
    pattern, words = _words(binding_key), _words(routing_key)

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(words)
        word = pattern[i]
        if word == "#":
            return match(i + 1, j) or (j < len(words) and match(i, j + 1))
        if j == len(words):
            return False
        return (word == "*" or word == words[j]) and match(i + 1, j + 1)

    return match(0, 0)


def same_value(a: Any, b: Any) -> bool:
    """AMQP field equality: equal values of the same kind (``True`` is not ``1``)."""
    return type(a) is type(b) and a == b


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any] | None) -> bool:
    """RabbitMQ's headers exchange: ``x-match`` all (default), any, all-with-x, any-with-x.

    A binding value of ``None`` (AMQP void) means "the header is present".
    """
    mode = arguments.get("x-match", "all")
    headers = headers or {}
    with_x = mode.endswith("-with-x")
    wanted = [
        (k, v) for k, v in arguments.items()
        if k != "x-match" and (with_x or not k.startswith("x-"))
    ]
    def one(k: str, v: Any) -> bool:
        if k not in headers:
            return False
        return v is None or same_value(headers[k], v)
    if mode in ("any", "any-with-x"):
        return any(one(k, v) for k, v in wanted)
    return all(one(k, v) for k, v in wanted)


def binding_matches(
    exchange_type: ExchangeType, binding: Binding, routing_key: str,
    headers: Mapping[str, Any] | None,
) -> bool:
    """Does this binding of an exchange of this type take a message with this key?"""
    if exchange_type is ExchangeType.FANOUT:
        return True
    if exchange_type is ExchangeType.DIRECT:
        return binding.routing_key == routing_key
    if exchange_type is ExchangeType.TOPIC:
        return topic_matches(binding.routing_key, routing_key)
    return headers_match(binding.arguments, headers)


def scan(exchange_type: ExchangeType, bindings: Iterable[Binding], keys: Sequence[str],
         headers: Mapping[str, Any] | None) -> list[Binding]:
    """The bindings that take a message with any of these keys, tested one by one."""
    return [b for b in bindings
            if any(binding_matches(exchange_type, b, k, headers) for k in keys)]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Building a large index makes many objects at once; the cyclic collector, started
    by allocations, would walk all of them again and again (3 to 5 times the build's own
    cost for 100,000 bindings). Nothing built here is a cycle to collect."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# A binding key waiting in a trie node: its words, then its value (one list, no tuple: a
# trie of 100,000 keys holds 100,000 of these).
_Entry = list[Any]


class _Node:
    """A trie node ``depth`` words down: children by literal word, the ``*`` and ``#``
    children, and the values of the binding keys that end here.

    It is built lazily: a node holds its binding keys unsorted (``pending``) until first
    visited, and a literal child stays a plain list of entries until then, so a trie of
    many keys is built only along the paths that routing keys take."""

    __slots__ = ("depth", "hash", "here", "pending", "star", "words")

    def __init__(self, depth: int, pending: list[_Entry] | None) -> None:
        self.depth = depth
        self.pending = pending  # None once sorted out
        self.words: dict[str, _Node | list[_Entry]] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.here: list[int] = []

    def expand(self) -> None:
        """Hand the pending binding keys down to the children (once, on the first visit)."""
        pending, self.pending = self.pending or [], None
        if len(pending) < 1000:
            self._sort_out(pending)
            return
        with _collector_paused():
            self._sort_out(pending)

    def _sort_out(self, pending: list[_Entry]) -> None:
        depth, here = self.depth, self.here
        groups: dict[str, list[_Entry]] = {}
        for entry in pending:
            if len(entry) - 1 == depth:
                here.append(entry[-1])
                continue
            group = groups.get(entry[depth])
            if group is None:
                groups[entry[depth]] = [entry]
            else:
                group.append(entry)
        self.adopt(groups)

    def adopt(self, groups: dict[str, list[_Entry]]) -> None:
        """Take the pending entries of each child by its word (``*`` and ``#`` included)."""
        star, hash_ = groups.pop("*", None), groups.pop("#", None)
        self.star = _Node(self.depth + 1, star) if star else None
        self.hash = _Node(self.depth + 1, hash_) if hash_ else None
        self.words.update(groups)

    def child(self, word: str) -> _Node | None:
        """The child for a routing key's word (a literal one), made on first use."""
        found = self.words.get(word)
        if isinstance(found, list):
            found = self.words[word] = _Node(self.depth + 1, found)
        return found


class TopicTrie:
    """Topic binding keys by word, as RabbitMQ's topic exchange keeps them: matching a
    routing key visits the nodes its words lead to (and every ``#`` on the way, which
    may take zero or more words), never the binding keys that part from it.

    ``match`` gives the positions (in ``keys``) of the binding keys that match, each once
    however many ways it matches.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self.root = root = _Node(0, None)  # sorted out at once: every match starts here
        groups: dict[str, list[_Entry]] = {}
        with _collector_paused():
            for i, key in enumerate(keys):
                if not key:
                    root.here.append(i)
                    continue
                entry: _Entry = key.split(".")
                entry.append(i)
                group = groups.get(entry[0])
                if group is None:
                    groups[entry[0]] = [entry]
                else:
                    group.append(entry)
            root.adopt(groups)

    def match(self, routing_key: str) -> set[int]:
        words = _words(routing_key)
        n = len(words)
        found: set[int] = set()
        seen: set[tuple[int, int]] = set()  # (node, words taken): each state once
        work = [(self.root, 0)]
        while work:
            node, i = work.pop()
            state = (id(node), i)
            if state in seen:
                continue
            seen.add(state)
            if node.pending is not None:
                node.expand()
            if i == n:
                found.update(node.here)
            else:
                child = node.child(words[i])
                if child is not None:
                    work.append((child, i + 1))
                if node.star is not None:
                    work.append((node.star, i + 1))
            if node.hash is not None:
                work.extend((node.hash, j) for j in range(i, n + 1))
        return found


class BindingIndex:
    """One exchange's bindings arranged for lookup by its type: direct by exact key, topic
    in a ``TopicTrie``; fanout takes them all and headers tests each (its bindings match
    on headers, not keys). ``matching`` agrees with ``scan``, in the same order.

    The bindings are given as their routing keys and ``binding(i)``, the i-th one, so
    that they can be made only when matched (``of`` indexes a list of them).
    """

    def __init__(self, exchange_type: ExchangeType, keys: Sequence[str],
                 binding: Callable[[int], Binding]) -> None:
        self.type = exchange_type
        self.size = len(keys)
        self.binding = binding
        self._all: list[Binding] | None = None
        self._direct: dict[str, list[int]] = {}
        self._topic: TopicTrie | None = None
        if exchange_type is ExchangeType.DIRECT:
            with _collector_paused():
                for i, key in enumerate(keys):
                    self._direct.setdefault(key, []).append(i)
        elif exchange_type is ExchangeType.TOPIC:
            self._topic = TopicTrie(keys)

    @classmethod
    def of(cls, exchange_type: ExchangeType, bindings: Sequence[Binding]) -> BindingIndex:
        return cls(exchange_type, [b.routing_key for b in bindings], bindings.__getitem__)

    def all(self) -> list[Binding]:
        if self._all is None:
            self._all = [self.binding(i) for i in range(self.size)]
        return self._all

    def matching(self, keys: Sequence[str], headers: Mapping[str, Any] | None) -> list[Binding]:
        """The bindings that take a message with any of ``keys`` (and these headers)."""
        if self.type is ExchangeType.FANOUT:
            return list(self.all())
        if self.type is ExchangeType.HEADERS:
            return scan(self.type, self.all(), keys, headers)
        found: set[int] = set()
        for k in keys:
            if self._topic is not None:
                found |= self._topic.match(k)
            else:
                found.update(self._direct.get(k, ()))
        return [self.binding(i) for i in sorted(found)]


def routing_keys(routing_key: str, headers: Mapping[str, Any] | None) -> list[str]:
    """The routing key plus the CC and BCC headers' keys (sender-selected distribution)."""
    keys = [routing_key]
    for name in ("CC", "BCC"):
        extra = (headers or {}).get(name)
        if isinstance(extra, list):
            keys.extend(k for k in extra if isinstance(k, str) and k not in keys)
    return keys


@dataclass(slots=True)
class Hop:
    """One exchange visited while routing: which bindings matched, whether it fell to its AE."""

    exchange: str
    matched: list[Binding] = field(default_factory=list)
    alternate: str | None = None  # the AE tried because nothing matched here
    missing: bool = False  # the exchange does not exist (a missing AE or E2E destination)


@dataclass(slots=True)
class Route:
    queues: list[str]  # each queue once, in the order first reached
    hops: list[Hop]


# An exchange's matching bindings for routing keys and headers (``BindingIndex.matching``
# bound to the exchange's index, say).
Matching = Callable[[Exchange, Sequence[str], Mapping[str, Any] | None], list[Binding]]


def route(
    exchange: str,
    routing_key: str,
    headers: Mapping[str, Any] | None,
    get_exchange: Callable[[str], Exchange | None],
    bindings_from: Callable[[str], Iterable[Binding]],
    matching: Matching | None = None,
) -> Route:
    """Follow a message from an exchange through E2E bindings and alternate exchanges.

    As RabbitMQ's ``rabbit_exchange:route``: each exchange visited once; an exchange whose
    own bindings match nothing hands the message to its alternate exchange (if it has one);
    a queue reached along several paths gets one copy. Each exchange's matching bindings
    come from ``matching`` when given, else from a ``scan`` of ``bindings_from``.
    """
    keys = routing_keys(routing_key, headers)
    queues: dict[str, None] = {}
    hops: list[Hop] = []
    seen: set[str] = set()
    work = [exchange]
    while work:
        name = work.pop(0)
        if name in seen:
            continue
        seen.add(name)
        hop = Hop(name)
        hops.append(hop)
        x = get_exchange(name)
        if x is None:
            hop.missing = True
            continue
        if matching is not None:
            hop.matched = matching(x, keys, headers)
        else:
            hop.matched = scan(x.type, bindings_from(name), keys, headers)
        if not hop.matched and name != "":
            ae = x.arguments.get("alternate-exchange")
            if isinstance(ae, str):
                hop.alternate = ae
                work.append(ae)
        for b in hop.matched:
            if b.destination_type is DestinationType.QUEUE:
                queues.setdefault(b.destination)
            else:
                work.append(b.destination)
    return Route(list(queues), hops)
