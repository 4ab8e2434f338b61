"""Putting messages into queues inside one store transaction: routing with the topology
read once, priorities and TTLs from the queues' arguments, length limits (``x-max-length``,
``x-max-length-bytes``, ``x-overflow``), and the batched INSERTs that make bulk publishing
fast. Dead-lettering lives here too: it republishes to a dead-letter exchange with the same
rules, and a length limit dead-letters, so the two call each other.

Used by ``Connection.publish``, by the channel (rejects, expiry on delivery) and by
``lifecycle.py`` (expiry). RabbitMQ docs: Queue Length Limit; Dead Letter Exchanges.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.codec import dump_properties, load_properties
from ..amqp.model import (
    Binding,
    DestinationType,
    Exchange,
    ExchangeType,
    Properties,
    PublishOutcome,
)
from . import streams
from .rows import (
    BindingRows,
    bindings_from,
    bindings_version,
    count,
    get_exchange,
    literal,
    queue_row,
    remove_messages,
)

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


class Insert(NamedTuple):
    """The INSERT of a batch of bodies sharing everything else (queue, priority, expiry,
    exchange, routing key, stored properties), each body with a fresh message id.

    A large batch writes the shared values into the statement rather than binding them
    per row: binding eight parameters per message costs more than SQLite's insert itself.
    A small one binds them: every distinct statement text is prepared anew once
    sqlite3's statement cache misses, so messages each with a routing key of their own
    (``send --format json``, ``replay``, a client publishing one by one through ``amq
    broker serve``) would each pay a prepare. Strings holding a NUL (legal in AMQP,
    unsafe in an SQL literal) go into the literal form as hex blobs cast to text.
    """

    queue: str
    priority: int
    expires: float | None
    exchange: str
    routing_key: str
    properties: str | None

    def literal_sql(self) -> str:
        return f"{_INSERT} VALUES (?, {', '.join(literal(v) for v in self)}, ?)"

    def rows(self, db: sqlite3.Connection, store: Store, bodies: Sequence[bytes]) -> None:
        """Insert ``bodies`` (ids written back at once: dead-lettering may insert more
        within the same transaction); ``StoredBodies`` are copied inside SQLite."""
        first = store.next_message_id(db)
        if isinstance(bodies, StoredBodies) and bodies._bodies is None:
            # the literal form's "... VALUES (?, <shared>, ?)" as "... SELECT <id>, <shared>, body"
            head, _, values = self.literal_sql().partition(" VALUES (?, ")
            db.execute(f"{head} SELECT ? + j.key, {values.removesuffix(', ?)')}, m.body "
                       f"{_PICKED}", (first, bodies.json()))
        elif len(bodies) <= FEW:
            db.executemany(_BOUND_INSERT, ((i, *self, body)
                                           for i, body in enumerate(bodies, first)))
        else:
            db.executemany(self.literal_sql(), enumerate(bodies, first))
        store.set_next_message_id(db, first + len(bodies))


FEW = 8  # bodies in a batch that is bound row by row (Insert)
_INSERT = ("INSERT INTO messages (id, queue, priority, expires, exchange, routing_key, "
           "properties, body)")
_BOUND_INSERT = f"{_INSERT} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def stored_properties(props: Properties) -> str | None:
    """The properties as stored; a BCC header is removed (sender-selected distribution)."""
    if props.headers and "BCC" in props.headers:
        headers = {k: v for k, v in props.headers.items() if k != "BCC"}
        props = props._replace(headers=headers or None)
    return dump_properties(props)


def routes_of(store: Store) -> Routes:
    """The ``Routes`` of an open store, made on first use."""
    found = _ROUTES.get(store)
    if found is None:
        found = _ROUTES[store] = Routes()
    return found


class Routes:
    """What routing has learnt of one store in one process, kept across transactions while
    the store's bindings version (``rows.bindings_version``) stays the same: exchanges
    (found or missing), the ``BindingIndex`` of each exchange used (built on its first
    use, so that others' bindings are never read), and the queues each routing key reaches
    from each exchange. Every change to bindings or exchanges bumps the version in its
    own transaction, so a ``Router`` of any process, checking it as it starts, notices and
    starts afresh. One per open store (``routes_of``): publishes and dead-lettering share
    it; a ``Router`` given none keeps its own.

    Results are kept only where the routing key alone decides them: not past a headers
    exchange, nor through the default exchange (its implicit bindings come and go with
    queues, which move no version), nor with CC/BCC headers.
    """

    MAX_RESULTS = 100_000  # routing keys kept per exchange; past it, they start over

    def __init__(self) -> None:
        self.version: int | None = None
        self.exchanges: dict[str, Exchange | None] = {}
        self.indexes: dict[str, routing.BindingIndex] = {}
        self.results: dict[str, dict[str, list[str]]] = {}

    def check(self, db: sqlite3.Connection) -> None:
        """Forget everything if the bindings changed since it was learnt."""
        version = bindings_version(db)
        if version != self.version:
            self.version = version
            self.exchanges, self.indexes, self.results = {}, {}, {}

    def index(self, db: sqlite3.Connection, x: Exchange) -> routing.BindingIndex:
        found = self.indexes.get(x.name)
        if found is None:
            from ..amqp import routing
            rows = BindingRows(db, x.name)
            found = self.indexes[x.name] = routing.BindingIndex(x.type, rows.keys, rows.binding)
        return found

    def results_of(self, exchange: str) -> dict[str, list[str]]:
        found = self.results.get(exchange)
        if found is None or len(found) >= self.MAX_RESULTS:
            found = self.results[exchange] = {}
        return found



_ROUTES: weakref.WeakKeyDictionary[Store, Routes] = weakref.WeakKeyDictionary()

class Router:
    """Routing within one transaction, with what ``Routes`` holds of the topology.

    ``checked`` (a client's publish): a missing exchange is 404 and an internal one 403.
    Dead-lettering routes unchecked: a missing dead-letter exchange drops the message.
    """

    def __init__(self, db: sqlite3.Connection, exchange: str, checked: bool = True,
                 routes: Routes | None = None) -> None:
        self.db = db
        self.exchange = exchange
        self.routes = routes if routes is not None else Routes()
        self.routes.check(db)
        self._queues: dict[str, dict[str, Any] | None] = {}
        self._local: dict[str, list[str]] = {}  # results good for this transaction only
        x = self.get_exchange(exchange)
        self.missing = x is None
        if checked and x is None:
            raise errors.NotFound(f"no exchange '{exchange}' in vhost '/'")
        if checked and x is not None and x.internal:
            raise errors.AccessRefused(
                f"cannot publish to internal exchange '{exchange}' in vhost '/'")

    def get_exchange(self, name: str) -> Exchange | None:
        known = self.routes.exchanges
        if name not in known:
            known[name] = get_exchange(self.db, name)
        return known[name]

    def get_bindings(self, name: str) -> list[Binding]:
        """An exchange's bindings (the default exchange's implicit ones included)."""
        if name == "":
            return [Binding("", q, DestinationType.QUEUE, q) for (q,) in
                    self.db.execute("SELECT name FROM queues ORDER BY name")]
        return bindings_from(self.db, name)

    def matching(self, x: Exchange, keys: Sequence[str],
                 headers: Mapping[str, Any] | None) -> list[Binding]:
        """An exchange's bindings that take a message with these keys and headers."""
        if x.name == "":  # one implicit binding per queue, by name: look the queues up
            return [Binding("", q, DestinationType.QUEUE, q) for q in sorted(keys)
                    if self.queue(q) is not None]
        return self.routes.index(self.db, x).matching(keys, headers)

    def queue(self, name: str) -> dict[str, Any] | None:
        if name not in self._queues:
            self._queues[name] = queue_row(self.db, name)
        return self._queues[name]

    def queues(self, routing_key: str, headers: dict[str, Any] | None) -> list[str]:
        """The queues a message reaches (a list to read, not to change: it may be kept)."""
        if self.missing:
            return []
        by_key = not (headers and ("CC" in headers or "BCC" in headers))
        if self.exchange == "" and by_key:
            return [routing_key] if self.queue(routing_key) is not None else []
        kept = self.routes.results_of(self.exchange) if by_key else {}
        found = kept.get(routing_key)
        if found is None and not headers:
            found = self._local.get(routing_key)
        if found is not None:
            return found
        explained = self.explain(routing_key, headers)
        if by_key and self._by_key_alone(explained):
            kept[routing_key] = explained.queues
        elif not headers:
            self._local[routing_key] = explained.queues
        return explained.queues

    def _by_key_alone(self, found: routing.Route) -> bool:
        """Whether a route depends on nothing but the routing key and the bindings."""
        for hop in found.hops:
            x = None if hop.missing else self.get_exchange(hop.exchange)
            if x is not None and (x.name == "" or x.type is ExchangeType.HEADERS):
                return False
        return True

    def explain(self, routing_key: str, headers: dict[str, Any] | None) -> routing.Route:
        from ..amqp import routing
        if self.exchange == "":
            keys = routing.routing_keys(routing_key, headers)
            found = [k for k in keys if self.queue(k) is not None]
            hop = routing.Hop("", [Binding("", q, DestinationType.QUEUE, q) for q in found])
            return routing.Route(found, [hop])
        return routing.route(self.exchange, routing_key, headers, self.get_exchange,
                             self.get_bindings, self.matching)

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


class StoredBodies(Sequence[bytes]):
    """The bodies of messages the store holds, by id, in a given order (``amq move``'s):
    ``insert`` copies them inside SQLite (``INSERT ... SELECT``), so they never reach the
    process; read only when asked for (length limits, dead letters and traces read them)."""

    def __init__(self, db: sqlite3.Connection, ids: list[int]) -> None:
        self.db = db
        self.ids = ids
        self._bodies: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: Any) -> Any:
        if self._bodies is None:
            self._bodies = [body for (body,) in self.db.execute(
                f"SELECT m.body {_PICKED} ORDER BY j.key", (self.json(),))]
        return self._bodies[index]

    def json(self) -> str:
        return "[" + ",".join(map(str, self.ids)) + "]"


# the rows of StoredBodies, in their order (j.key: the position, from 0)
_PICKED = "FROM json_each(?) j JOIN messages m ON m.id = j.value"


def enqueue(db: sqlite3.Connection, store: Store, router: Router, groups: Sequence[Group],
            now: float | None = None,
            keep: Callable[[str, Properties], bool] | None = None) -> list[PublishOutcome]:
    """Put each group's bodies into the queues its routing key reaches; one outcome per
    body. ``keep(queue, properties)`` can veto a target (dead-letter cycles)."""
    now = time.time() if now is None else now
    outcomes: list[PublishOutcome] = []
    published: dict[str, int] = {}  # per queue, counted once for all the groups (amq top)
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
            arguments = router.arguments(q)
            if arguments.get("x-queue-type") == "stream":
                streams.append(db, store, q, arguments, router.exchange, routing_key, stored,
                               bodies, now)
                continue
            priority, expires = router.placement(q, props.priority, expiration, now)
            into = Insert(q, priority, expires, router.exchange, routing_key, stored)
            limits = Limits.of(router.arguments(q))
            if limits is None:
                into.rows(db, store, bodies)
                published[q] = published.get(q, 0) + len(bodies)
            else:
                refused_here = enqueue_limited(db, store, limits, into, bodies, now)
                published[q] = published.get(q, 0) + len(bodies) - len(refused_here)
                refused |= refused_here
            store.touch(q)  # its consumers get them before the commit (dispatch.py)
            if expires is not None:
                db.execute("UPDATE queues SET expiring = 1 WHERE name = ? AND expiring = 0",
                           (q,))
                store.ring_sweeper()  # a deadline that may come before the sweeper's next
        if not refused:
            outcomes.extend([PublishOutcome.ROUTED] * len(bodies))
            continue
        outcomes.extend(PublishOutcome.REJECTED if i in refused else PublishOutcome.ROUTED
                        for i in range(len(bodies)))
    for q, n in published.items():
        count(db, q, published=n)
    return outcomes


# --- length limits ---------------------------------------------------------------

# Rows as dead-lettering needs them: (id, body, properties JSON, exchange, routing key).
Row = tuple[int, bytes, str | None, str, str]


class Limits(NamedTuple):
    max_length: int | None
    max_bytes: int | None
    overflow: str  # drop-head, reject-publish or reject-publish-dlx

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> Limits | None:
        max_length = arguments.get("x-max-length")
        max_bytes = arguments.get("x-max-length-bytes")
        if max_length is None and max_bytes is None:
            return None
        return cls(max_length, max_bytes, arguments.get("x-overflow", "drop-head"))

    def over(self, count: int, size: int) -> bool:
        return (self.max_length is not None and count > self.max_length) or \
            (self.max_bytes is not None and size > self.max_bytes)


def _ready(db: sqlite3.Connection, queue: str) -> tuple[int, int]:
    """(count, body bytes) of a queue's ready messages."""
    count, size = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM messages "
        "WHERE queue = ? AND owner IS NULL", (queue,)).fetchone()
    return count, size


def enqueue_limited(db: sqlite3.Connection, store: Store, limits: Limits, into: Insert,
                    bodies: Sequence[bytes], now: float) -> set[int]:
    """Enqueue into a queue with a length limit (``into.queue``); the indexes of the
    bodies it refused."""
    queue = into.queue
    if limits.overflow == "drop-head":
        into.rows(db, store, bodies)
        trim(db, store, queue, limits, now)
        return set()
    count, size = _ready(db, queue)
    accepted, refused = [], set()
    for i, body in enumerate(bodies):
        if limits.over(count + 1, size + len(body)):
            refused.add(i)
        else:
            accepted.append(body)
            count, size = count + 1, size + len(body)
    if accepted:
        into.rows(db, store, accepted)
    if refused and limits.overflow == "reject-publish-dlx":
        rows = [(0, bodies[i], into.properties, into.exchange, into.routing_key)
                for i in sorted(refused)]
        dead_letter(db, store, queue, rows, "maxlen", now)
    return refused


def trim(db: sqlite3.Connection, store: Store, queue: str, limits: Limits, now: float) -> None:
    """drop-head: remove (dead-letter) messages from the head until within the limits."""
    count, size = _ready(db, queue)
    if not limits.over(count, size):
        return
    dropped: list[Row] = []
    for row in db.execute(
            "SELECT id, body, properties, exchange, routing_key FROM messages "
            "WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id", (queue,)):
        if not limits.over(count, size):
            break
        dropped.append(row)
        count, size = count - 1, size - len(row[1])
    remove_messages(db, [r[0] for r in dropped])
    dead_letter(db, store, queue, dropped, "maxlen", now)


# --- dead letters ---------------------------------------------------------------------

def _death_headers(props: Properties, queue: str, reason: str, exchange: str,
                   routing_keys: list[str], now: float) -> dict[str, Any]:
    """The message's headers with this death recorded, as RabbitMQ writes them."""
    headers = dict(props.headers or {})
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
    for i, death in enumerate(deaths):
        if death.get("queue") == queue and death.get("reason") == reason:
            updated = dict(death, count=int(death.get("count", 1)) + 1)
            deaths = [updated] + deaths[:i] + deaths[i + 1:]
            break
    else:
        entry: dict[str, Any] = {
            "count": 1, "reason": reason, "queue": queue,
            "time": dt.datetime.fromtimestamp(int(now), dt.UTC),
            "exchange": exchange, "routing-keys": routing_keys,
        }
        if props.expiration is not None:
            entry["original-expiration"] = props.expiration
        deaths = [entry] + deaths
    headers["x-death"] = deaths
    for key, value in (("queue", queue), ("reason", reason), ("exchange", exchange)):
        headers.setdefault(f"x-first-death-{key}", value)
        headers[f"x-last-death-{key}"] = value
    return headers


def dead_letter(db: sqlite3.Connection, store: Store, queue: str, rows: Sequence[Row],
                reason: str, now: float | None = None) -> None:
    """Republish messages leaving ``queue`` for ``reason`` (rejected, expired, maxlen) to
    its dead-letter exchange, if it has one; without one they are simply gone."""
    q = queue_row(db, queue)
    dlx = (q or {"arguments": {}})["arguments"].get("x-dead-letter-exchange")
    if dlx is None or not rows:
        return
    dlrk = q["arguments"].get("x-dead-letter-routing-key") if q else None
    router = Router(db, dlx, checked=False, routes=routes_of(store))
    if router.missing:
        return  # a missing dead-letter exchange drops the message, silently
    now = time.time() if now is None else now
    for _mid, body, stored, exchange, routing_key in rows:
        props = load_properties(stored)
        cc = (props.headers or {}).get("CC")
        keys = [routing_key] + [k for k in cc or [] if isinstance(k, str)]
        headers = _death_headers(props, queue, reason, exchange, keys, now)
        if dlrk is not None:
            headers.pop("CC", None)
        new = props._replace(headers=headers, expiration=None)
        deaths = headers["x-death"]
        seen = {d.get("queue") for d in deaths}
        rejected = any(d.get("reason") == "rejected" for d in deaths)

        def keep(target: str, _props: Properties, rejected: bool = rejected,
                 seen: set[Any] = seen) -> bool:
            return rejected or target not in seen  # a cycle without a rejection is dropped
        enqueue(db, store, router, [(dlrk if dlrk is not None else routing_key, new, [body])],
                now, keep)
