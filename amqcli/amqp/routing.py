"""Routing, as pure functions: which bindings match a message, and which queues get a copy.

Follows RabbitMQ exactly: direct and fanout, topic with ``*``/``#`` (empty words count as
words, ``""`` is zero words), headers with the four ``x-match`` modes, exchange-to-exchange
bindings with one copy per queue however many paths match, alternate exchanges, and CC/BCC
sender-selected routing keys.

RabbitMQ docs: Exchanges; AMQP 0-9-1 Model Explained (the headers exchange); Exchange to
Exchange Bindings; Alternate Exchanges; Sender-selected Distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def route(
    exchange: str,
    routing_key: str,
    headers: Mapping[str, Any] | None,
    get_exchange: Callable[[str], Exchange | None],
    bindings_from: Callable[[str], Iterable[Binding]],
) -> Route:
    """Follow a message from an exchange through E2E bindings and alternate exchanges.

    As RabbitMQ's ``rabbit_exchange:route``: each exchange visited once; an exchange whose
    own bindings match nothing hands the message to its alternate exchange (if it has one);
    a queue reached along several paths gets one copy.
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
        for b in bindings_from(name):
            if any(binding_matches(x.type, b, k, headers) for k in keys):
                hop.matched.append(b)
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
