"""Putting messages into queues inside one store transaction: routing with the topology
read once, priorities and TTLs from the queues' arguments, length limits, and the
batched INSERTs that make bulk publishing fast.

Used by ``Connection.publish`` and by dead-lettering (``lifecycle.py``), which republishes
to a dead-letter exchange with the same rules.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from ..amqp.codec import dump_properties
from ..amqp.model import Binding, DestinationType, Exchange, Properties, PublishOutcome

if TYPE_CHECKING:
    from ..amqp import routing
    from .store import Store

MAX_MESSAGE_SIZE = 128 * 1024 * 1024  # RabbitMQ 3.8-3.13's default max_message_size
LARGEST_MAX_MESSAGE_SIZE = 512 * 1024 * 1024  # the most RabbitMQ lets it be set to
Group = tuple[str, Properties, Sequence[bytes]]  # routing key, properties, bodies


def parse_expiration(expiration: str | None) -> int | None:
    """The ``expiration`` property in ms, or 406 as RabbitMQ words it."""
    if expiration is None:
        return None
    try:
        value = int(expiration, 10)
    except ValueError:
        raise errors.PreconditionFailed(
            f"invalid expiration '{expiration}': no_integer") from None
    if value < 0:
        raise errors.PreconditionFailed(
            f"invalid expiration '{expiration}': negative_integer")
    return value


def check_size(size: int, limit: int) -> None:
    """406 for a body larger than the broker's ``max_message_size``, as RabbitMQ says."""
    if size > limit:
        raise errors.PreconditionFailed(
            f"message size {size} is larger than configured max size {limit}")


def _literal(value: str | float | None) -> str:
    """A value as an SQL literal (strings quoted the SQL way; no NUL, see insert_sql)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def insert_sql(queue: str, priority: int, expires: float | None, exchange: str,
               routing_key: str, properties: str | None) -> str:
    """The INSERT for a batch of bodies sharing everything else, bound by (id, body).

    The shared values are written into the statement rather than bound per row: binding
    eight parameters per message costs more than SQLite's insert itself. Strings holding a
    NUL (legal in AMQP, unsafe in an SQL literal) go in as hex blobs cast to text.
    """
    shared = (queue, priority, expires, exchange, routing_key, properties)
    values = ", ".join(
        f"cast(x'{v.encode().hex()}' AS TEXT)" if isinstance(v, str) and "\0" in v
        else _literal(v) for v in shared)
    return ("INSERT INTO messages (id, queue, priority, expires, exchange, routing_key, "
            f"properties, body) VALUES (?, {values}, ?)")


def stored_properties(props: Properties) -> str | None:
    """The properties as stored; a BCC header is removed (sender-selected distribution)."""
    if props.headers and "BCC" in props.headers:
        headers = {k: v for k, v in props.headers.items() if k != "BCC"}
        props = props._replace(headers=headers or None)
    return dump_properties(props)


class Router:
    """Routing within one transaction, with the topology read once.

    ``checked`` (a client's publish): a missing exchange is 404 and an internal one 403.
    Dead-lettering routes unchecked: a missing dead-letter exchange drops the message.
    """

    def __init__(self, db: sqlite3.Connection, exchange: str, checked: bool = True) -> None:
        self.db = db
        self.exchange = exchange
        self._exchanges: dict[str, Exchange | None] = {}
        self._bindings: dict[str, list[Binding]] = {}
        self._queues: dict[str, dict[str, Any] | None] = {}
        self._routes: dict[str, list[str]] = {}
        x = self.get_exchange(exchange)
        self.missing = x is None
        if checked and x is None:
            raise errors.NotFound(f"no exchange '{exchange}' in vhost '/'")
        if checked and x is not None and x.internal:
            raise errors.AccessRefused(
                f"cannot publish to internal exchange '{exchange}' in vhost '/'")

    def get_exchange(self, name: str) -> Exchange | None:
        if name not in self._exchanges:
            from .engine import get_exchange
            self._exchanges[name] = get_exchange(self.db, name)
        return self._exchanges[name]

    def get_bindings(self, name: str) -> list[Binding]:
        if name not in self._bindings:
            from .engine import bindings_from
            self._bindings[name] = bindings_from(self.db, name)
            if name == "":
                self._bindings[name] = [Binding("", q, DestinationType.QUEUE, q) for (q,) in
                                        self.db.execute("SELECT name FROM queues")]
        return self._bindings[name]

    def queue(self, name: str) -> dict[str, Any] | None:
        if name not in self._queues:
            from .engine import queue_row
            self._queues[name] = queue_row(self.db, name)
        return self._queues[name]

    def queues(self, routing_key: str, headers: dict[str, Any] | None) -> list[str]:
        if self.missing:
            return []
        if self.exchange == "" and not (headers and ("CC" in headers or "BCC" in headers)):
            return [routing_key] if self.queue(routing_key) is not None else []
        cacheable = not headers
        if cacheable and routing_key in self._routes:
            return self._routes[routing_key]
        found = self.explain(routing_key, headers).queues
        if cacheable:
            self._routes[routing_key] = found
        return found

    def explain(self, routing_key: str, headers: dict[str, Any] | None) -> routing.Route:
        from ..amqp import routing
        if self.exchange == "":
            keys = routing.routing_keys(routing_key, headers)
            found = [k for k in keys if self.queue(k) is not None]
            hop = routing.Hop("", [Binding("", q, DestinationType.QUEUE, q) for q in found])
            return routing.Route(found, [hop])
        return routing.route(self.exchange, routing_key, headers, self.get_exchange,
                             self.get_bindings)

    def placement(self, queue: str, priority: int | None, expiration: int | None,
                  now: float) -> tuple[int, float | None]:
        """A message's stored priority and expiry time in a queue, from its arguments."""
        qa = self.arguments(queue)
        max_priority = qa.get("x-max-priority")
        stored = min(priority or 0, max_priority) if max_priority else 0
        ttl = qa.get("x-message-ttl")
        if expiration is not None:
            ttl = expiration if ttl is None else min(ttl, expiration)
        return stored, (now + ttl / 1000 if ttl is not None else None)

    def arguments(self, queue: str) -> dict[str, Any]:
        q = self.queue(queue)
        return q["arguments"] if q else {}


def insert(db: sqlite3.Connection, store: Store, sql: str, bodies: Sequence[bytes]) -> None:
    """Insert bodies with fresh message ids (written back at once: dead-lettering may
    insert more within the same transaction)."""
    first = store.next_message_id(db)
    db.executemany(sql, enumerate(bodies, first))
    store.set_next_message_id(db, first + len(bodies))


def enqueue(db: sqlite3.Connection, store: Store, router: Router, groups: Sequence[Group],
            now: float | None = None,
            keep: Callable[[str, Properties], bool] | None = None) -> list[PublishOutcome]:
    """Put each group's bodies into the queues its routing key reaches; one outcome per
    body. ``keep(queue, properties)`` can veto a target (dead-letter cycles)."""
    from . import lifecycle
    now = time.time() if now is None else now
    outcomes: list[PublishOutcome] = []
    for routing_key, props, bodies in groups:
        expiration = parse_expiration(props.expiration)
        targets = router.queues(routing_key, props.headers)
        if keep is not None:
            targets = [q for q in targets if keep(q, props)]
        if not targets:
            outcomes.extend([PublishOutcome.UNROUTABLE] * len(bodies))
            continue
        stored = stored_properties(props)
        refused: set[int] = set()
        for q in targets:
            priority, expires = router.placement(q, props.priority, expiration, now)
            sql = insert_sql(q, priority, expires, router.exchange, routing_key, stored)
            limits = lifecycle.Limits.of(router.arguments(q))
            if limits is None:
                insert(db, store, sql, bodies)
            else:
                refused |= lifecycle.enqueue_limited(db, store, q, limits, sql, bodies,
                                                     routing_key, router.exchange, stored, now)
            if expires is not None:
                db.execute("UPDATE queues SET expiring = 1 WHERE name = ? AND expiring = 0",
                           (q,))
        outcomes.extend(PublishOutcome.REJECTED if i in refused else PublishOutcome.ROUTED
                        for i in range(len(bodies)))
    return outcomes
