"""The local broker: RabbitMQ's semantics over the shared SQLite store.

``Broker`` opens a store; ``Broker.connect()`` gives a ``Connection``, the equivalent of
one AMQP connection: it owns its exclusive queues and (through its channels, see
``channel.py``) its consumers and unacknowledged deliveries. A connection of a process
that died (kill -9 included) is cleaned up by the next process that sweeps: its unacked
messages go back to their queues flagged redelivered, its exclusive queues are deleted.

A rule the AMQP server relies on: a method that raises a ``BrokerError`` does so before
it has written anything, so a failed call leaves the store (and the caller's enclosing
transaction) as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from . import process
from .publishing import MAX_MESSAGE_SIZE, Router, check_size, enqueue
from .model import (
    Binding, DeclareOk, DestinationType, Exchange, ExchangeType,
    Message, Properties, Queue,
)
from .store import Store

if TYPE_CHECKING:
    from . import routing
    from .channel import Channel

MAX_NAME_BYTES = 255
SWEEP_INTERVAL = 1.0  # seconds between checks for dead connections while waiting


def server_name(prefix: str) -> str:
    """``amq.gen-...``/``amq.ctag-...``: RabbitMQ's server-generated names."""
    import base64
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def check_name(kind: str, name: str) -> str:
    """Strip CR/LF as RabbitMQ does; refuse names over 255 bytes (AMQP short strings) and
    names that are not UTF-8 (bytes, or a str with the lone surrogates of undecodable argv)."""
    if not isinstance(name, str):
        try:
            name = bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            name = bytes(name).decode("utf-8", "surrogateescape")
    name = name.replace("\r", "").replace("\n", "")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise errors.UsageError(f"{kind} name '{shown}' is not valid UTF-8") from None
    if size > MAX_NAME_BYTES:
        raise errors.UsageError(f"{kind} name is {size} bytes long; AMQP allows at most 255")
    return name


def where(kind: str, name: str) -> str:
    return f"{kind} '{name}' in vhost '/'"


def _json(value: dict[str, Any]) -> str:
    import json

    from .codec import to_json_value
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"))


def _unjson(text: str) -> dict[str, Any]:
    if not text or text == "{}":
        return {}
    import json

    from .codec import from_json_value
    return from_json_value(json.loads(text))


def locked(name: str) -> errors.BrokerError:
    return errors.ResourceLocked(
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be "
        "originally declared on another connection or the exclusive property value does not "
        "match that of the original declaration.")


class Broker:
    """The local broker on one store file (``None``: in memory, for one process)."""

    def __init__(self, path: str | os.PathLike[str] | None,
                 max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.store = Store(path)
        self.max_message_size = max_message_size  # larger bodies are refused with 406
        self._last_sweep = 0.0

    def connect(self, name: str = "", sweep: bool = True) -> Connection:
        """A new connection. ``sweep=False`` for a server opening many: it sweeps on its
        own schedule (``sweep_if_due``) instead of once per connection."""
        if sweep:
            self.sweep()
        pid, started = process.identity()
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO connections (pid, started, name, created) VALUES (?, ?, ?, ?)",
                (pid, started, name, time.time()))
        assert cur.lastrowid is not None  # an INSERT sets it
        return Connection(self, cur.lastrowid)

    def sweep(self) -> int:
        """Clean up after connections whose process has died (how many there were), and
        expire what is due: message TTLs at queue heads, unused x-expires queues."""
        self._last_sweep = time.monotonic()
        rows = self.store.read("SELECT id, pid, started FROM connections")
        dead = [cid for cid, pid, started in rows if not process.alive(pid, started)]
        if dead:
            with self.store.transaction() as db:
                for cid in dead:
                    release_connection(db, cid)
        if self.store.read("SELECT 1 FROM queues WHERE expiring = 1 "
                           "OR arguments LIKE '%x-expires%' LIMIT 1"):
            from . import lifecycle
            with self.store.transaction() as db:
                lifecycle.expire(db, self.store)
        return len(dead)

    def ready_queues(self, names: Sequence[str]) -> dict[str, bool]:
        """Of these queues, those that exist, each with whether it has ready messages."""
        found: dict[str, bool] = {}
        for i in range(0, len(names), 500):
            chunk = list(names[i:i + 500])
            found.update((name, bool(ready)) for name, ready in self.store.read(
                "SELECT name, EXISTS (SELECT 1 FROM messages m WHERE m.queue = q.name "
                "AND m.owner IS NULL) FROM queues q "
                f"WHERE q.name IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep >= SWEEP_INTERVAL:
            self.sweep()

    def close(self) -> None:
        self.store.close()


# --- helpers on an open transaction -------------------------------------------------

def get_exchange(db: sqlite3.Connection, name: str) -> Exchange | None:
    row = db.execute(
        "SELECT name, type, durable, auto_delete, internal, arguments FROM exchanges "
        "WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return Exchange(row[0], ExchangeType(row[1]), bool(row[2]), bool(row[3]), bool(row[4]),
                    _unjson(row[5]))


def queue_row(db: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT durable, exclusive_owner, auto_delete, arguments, had_consumer FROM queues "
        "WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return {"durable": bool(row[0]), "owner": row[1], "auto_delete": bool(row[2]),
            "arguments": _unjson(row[3]), "had_consumer": bool(row[4])}


def bindings_from(db: sqlite3.Connection, source: str) -> list[Binding]:
    rows = db.execute(
        "SELECT destination, destination_type, routing_key, arguments FROM bindings "
        "WHERE source = ?", (source,)).fetchall()
    return [Binding(source, d, DestinationType(t), k, _unjson(a)) for d, t, k, a in rows]


def for_ids(db: sqlite3.Connection, sql: str, params: tuple[Any, ...], ids: list[int]) -> None:
    """Run ``sql`` (ending in ``WHERE ... AND``) for rows by id: ``id BETWEEN`` for each
    run of consecutive ids (the usual case: one consumer, FIFO), ``id IN`` for the rest."""
    ids = sorted(ids)
    if ids and ids[-1] - ids[0] == len(ids) - 1:
        db.execute(f"{sql} id BETWEEN ? AND ?", (*params, ids[0], ids[-1]))
        return
    singles: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        j = i
        while j + 1 < n and ids[j + 1] == ids[j] + 1:
            j += 1
        if j - i >= 3:
            db.execute(f"{sql} id BETWEEN ? AND ?", (*params, ids[i], ids[j]))
        else:
            singles.extend(ids[i:j + 1])
        i = j + 1
    for k in range(0, len(singles), 500):
        chunk = singles[k:k + 500]
        db.execute(f"{sql} id IN ({','.join('?' * len(chunk))})", (*params, *chunk))


def counts(db: sqlite3.Connection, queue: str) -> tuple[int, int, int]:
    """(ready, unacked, consumers) of a queue."""
    ready = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL",
                       (queue,)).fetchone()[0]
    row = db.execute("SELECT unacked FROM queues WHERE name = ?", (queue,)).fetchone()
    unacked = row[0] if row else 0
    consumers = db.execute("SELECT COUNT(*) FROM consumers WHERE queue = ?",
                           (queue,)).fetchone()[0]
    return ready, unacked, consumers


def delete_queue_rows(db: sqlite3.Connection, name: str) -> int:
    """Delete a queue with its messages, bindings and consumers; the ready count it had."""
    ready = db.execute("DELETE FROM messages WHERE queue = ? AND owner IS NULL",
                       (name,)).rowcount
    row = db.execute("SELECT unacked FROM queues WHERE name = ?", (name,)).fetchone()
    if row and row[0]:  # held by consumers: no index leads there, so scan
        db.execute("DELETE FROM messages WHERE queue = ? AND owner IS NOT NULL", (name,))
    sources = [r[0] for r in db.execute(
        "SELECT DISTINCT source FROM bindings WHERE destination_type = 'queue' "
        "AND destination = ?", (name,))]
    db.execute("DELETE FROM bindings WHERE destination_type = 'queue' AND destination = ?",
               (name,))
    db.execute("DELETE FROM consumers WHERE queue = ?", (name,))
    db.execute("DELETE FROM queues WHERE name = ?", (name,))
    auto_delete_exchanges(db, sources)
    return ready


def auto_delete_exchanges(db: sqlite3.Connection, names: Sequence[str]) -> None:
    """Delete auto-delete exchanges among ``names`` that are no longer the source of a binding."""
    for name in names:
        row = db.execute("SELECT auto_delete FROM exchanges WHERE name = ?", (name,)).fetchone()
        if row and row[0] and not db.execute(
                "SELECT 1 FROM bindings WHERE source = ? LIMIT 1", (name,)).fetchone():
            delete_exchange_rows(db, name)


def delete_exchange_rows(db: sqlite3.Connection, name: str) -> None:
    sources = [r[0] for r in db.execute(
        "SELECT DISTINCT source FROM bindings WHERE destination_type = 'exchange' "
        "AND destination = ?", (name,))]
    db.execute("DELETE FROM bindings WHERE source = ? OR "
               "(destination_type = 'exchange' AND destination = ?)", (name, name))
    db.execute("DELETE FROM exchanges WHERE name = ?", (name,))
    auto_delete_exchanges(db, [s for s in sources if s != name])


def touch_queues(db: sqlite3.Connection, names: Sequence[str]) -> None:
    """Mark queues as used now (the x-expires clock restarts when consumers go)."""
    db.executemany("UPDATE queues SET last_used = ? WHERE name = ?",
                   [(time.time(), n) for n in set(names)])


def auto_delete_queues(db: sqlite3.Connection, names: Sequence[str]) -> None:
    """Delete auto-delete queues among ``names`` that had consumers and have none left."""
    for name in set(names):
        row = db.execute("SELECT auto_delete, had_consumer FROM queues WHERE name = ?",
                         (name,)).fetchone()
        if row and row[0] and row[1] and not db.execute(
                "SELECT 1 FROM consumers WHERE queue = ? LIMIT 1", (name,)).fetchone():
            delete_queue_rows(db, name)


def release_connection(db: sqlite3.Connection, cid: int, dead: bool = True) -> None:
    """What RabbitMQ does when a connection closes: requeue its unacked deliveries, drop its
    consumers (deleting auto-delete queues left without one) and its exclusive queues.

    A live connection closing has requeued its deliveries channel by channel, by id; for a
    dead one (``dead``), the messages it held are found by a scan.
    """
    if dead:
        held = Counter(q for (q,) in db.execute(
            "UPDATE messages SET owner = NULL, redelivered = 1 WHERE owner = ? RETURNING queue",
            (cid,)).fetchall())
        db.executemany("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                       [(n, q) for q, n in held.items()])
    queues = [r[0] for r in db.execute(
        "SELECT queue FROM consumers WHERE connection = ?", (cid,))]
    db.execute("DELETE FROM consumers WHERE connection = ?", (cid,))
    touch_queues(db, queues)
    auto_delete_queues(db, queues)
    for (name,) in db.execute("SELECT name FROM queues WHERE exclusive_owner = ?",
                              (cid,)).fetchall():
        delete_queue_rows(db, name)
    db.execute("DELETE FROM connections WHERE id = ?", (cid,))


class Connection:
    """One client of the local broker, as one AMQP connection: see the module docstring."""

    def __init__(self, broker: Broker, cid: int) -> None:
        self.broker = broker
        self.store = broker.store
        self.id = cid
        self.closed = False
        self._channels: dict[int, Channel] = {}

    # --- channels ---------------------------------------------------------------------

    def channel(self, number: int = 1) -> Channel:
        from .channel import Channel
        ch = self._channels.get(number)
        if ch is None or ch.closed:
            ch = self._channels[number] = Channel(self, number)
        return ch

    def close(self) -> None:
        """Close every channel (requeueing their unacked messages) and the connection."""
        if self.closed:
            return
        for ch in self._channels.values():
            ch.close()
        self.closed = True
        with self.store.transaction() as db:
            release_connection(db, self.id, dead=False)

    # --- queues -----------------------------------------------------------------------

    def _check_owner(self, name: str, row: dict[str, Any] | None) -> None:
        if row is not None and row["owner"] is not None and row["owner"] != self.id:
            raise locked(name)

    def require_queue(self, db: sqlite3.Connection, name: str) -> dict[str, Any]:
        row = queue_row(db, name)
        if row is None:
            raise errors.NotFound(f"no queue '{name}' in vhost '/'")
        self._check_owner(name, row)
        return row

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareOk:
        name = check_name("queue", name)
        arguments = dict(arguments or {})
        if not name and not passive:
            name = server_name("amq.gen-")
        elif not passive and name.startswith("amq."):
            raise errors.AccessRefused(
                f"queue name '{name}' contains reserved prefix 'amq.*'")
        with self.store.transaction() as db:
            row = queue_row(db, name)
            if passive:
                self.require_queue(db, name)
            elif row is not None:
                self._check_owner(name, row)
                if (row["owner"] is not None) != exclusive:
                    raise locked(name)
                from . import args as qargs
                wanted = {"durable": durable and not exclusive, "auto_delete": auto_delete}
                qargs.check_queue_equivalent(name, row["arguments"], row, arguments, wanted)
            else:
                from . import args as qargs
                qargs.validate_queue_arguments(name, arguments, durable=durable,
                                               exclusive=exclusive, auto_delete=auto_delete)
                db.execute(
                    "INSERT INTO queues (name, durable, exclusive_owner, auto_delete, "
                    "arguments, last_used) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, durable and not exclusive, self.id if exclusive else None,
                     auto_delete, _json(arguments), time.time()))
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), name))
            ready, _unacked, consumers = counts(db, name)
        return DeclareOk(name, ready, consumers)

    def ensure_queue(self, name: str) -> None:
        """Declare ``name`` with default flags unless it exists (whatever its arguments)."""
        name = check_name("queue", name)
        if self.store.read("SELECT 1 FROM queues WHERE name = ?", (name,)):
            return
        try:
            self.declare_queue(name)
        except errors.PreconditionFailed:
            pass  # declared meanwhile by another process, with other flags: use it as it is

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        name = check_name("queue", name)
        with self.store.transaction() as db:
            row = queue_row(db, name)
            if row is None:
                return 0
            self._check_owner(name, row)
            ready, _unacked, consumers = counts(db, name)
            if if_unused and consumers:
                raise errors.PreconditionFailed(f"{where('queue', name)} in use")
            if if_empty and ready:
                raise errors.PreconditionFailed(f"{where('queue', name)} not empty")
            return delete_queue_rows(db, name)

    def purge_queue(self, name: str) -> int:
        name = check_name("queue", name)
        with self.store.transaction() as db:
            self.require_queue(db, name)
            return db.execute("DELETE FROM messages WHERE queue = ? AND owner IS NULL",
                              (name,)).rowcount

    # --- exchanges --------------------------------------------------------------------

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        name = check_name("exchange", name)
        arguments = dict(arguments or {})
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        with self.store.transaction() as db:
            current = get_exchange(db, name)
            if passive:
                if current is None:
                    raise errors.NotFound(f"no exchange '{name}' in vhost '/'")
                return
            if type not in ExchangeType.__members__.values():
                raise errors.PreconditionFailed(f"unknown exchange type '{type}'")
            wanted = {"type": type, "durable": durable, "auto_delete": auto_delete,
                      "internal": internal, "arguments": arguments}
            if current is not None:
                have = {"type": current.type.value, "durable": current.durable,
                        "auto_delete": current.auto_delete, "internal": current.internal,
                        "arguments": current.arguments}
                from . import args as qargs
                qargs.check_exchange_equivalent(name, have, wanted)
                return
            if name.startswith("amq."):
                raise errors.AccessRefused(
                    f"exchange name '{name}' contains reserved prefix 'amq.*'")
            db.execute(
                "INSERT INTO exchanges (name, type, durable, auto_delete, internal, arguments) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, type, durable, auto_delete, internal, _json(arguments)))

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        name = check_name("exchange", name)
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise errors.AccessRefused(
                f"deletion of system exchange '{name}' in vhost '/' not allowed")
        with self.store.transaction() as db:
            if get_exchange(db, name) is None:
                return
            if if_unused and db.execute("SELECT 1 FROM bindings WHERE source = ? LIMIT 1",
                                        (name,)).fetchone():
                raise errors.PreconditionFailed(f"{where('exchange', name)} in use")
            delete_exchange_rows(db, name)

    # --- bindings ---------------------------------------------------------------------

    def _binding_ends(self, db: sqlite3.Connection, source: str, destination: str,
                      dtype: DestinationType) -> Exchange:
        if source == "" or (dtype is DestinationType.EXCHANGE and destination == ""):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if dtype is DestinationType.QUEUE:
            self.require_queue(db, destination)
        elif get_exchange(db, destination) is None:
            raise errors.NotFound(f"no exchange '{destination}' in vhost '/'")
        x = get_exchange(db, source)
        if x is None:
            raise errors.NotFound(f"no exchange '{source}' in vhost '/'")
        return x

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None:
        source, destination = check_name("exchange", source), check_name("queue", destination)
        arguments = dict(arguments or {})
        with self.store.transaction() as db:
            x = self._binding_ends(db, source, destination, destination_type)
            if x.type is ExchangeType.HEADERS:
                from . import routing
                mode = arguments.get("x-match", "all")
                if mode not in routing.X_MATCH_MODES:
                    shown = mode if isinstance(mode, str) else repr(mode)
                    raise errors.PreconditionFailed(
                        f'Invalid x-match field value <<"{shown}">>; expected all, any, '
                        "all-with-x, or any-with-x")
            db.execute(
                "INSERT OR IGNORE INTO bindings (source, destination, destination_type, "
                "routing_key, arguments) VALUES (?, ?, ?, ?, ?)",
                (source, destination, destination_type.value, routing_key, _json(arguments)))

    def unbind(self, source: str, destination: str, routing_key: str = "",
               arguments: dict[str, Any] | None = None,
               destination_type: DestinationType = DestinationType.QUEUE) -> None:
        """Remove a binding. As in RabbitMQ 3.10, a binding that does not exist is no
        error, even when its queue or exchanges do not exist either (clients' cleanup
        relies on it); only the default exchange (403) and, for a binding that exists,
        an exclusive queue of another connection (405) are refused."""
        source, destination = check_name("exchange", source), check_name("queue", destination)
        if source == "" or (destination_type is DestinationType.EXCHANGE and destination == ""):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        key = (source, destination, destination_type.value, routing_key,
               _json(dict(arguments or {})))
        match = ("source = ? AND destination = ? AND destination_type = ? AND "
                 "routing_key = ? AND arguments = ?")
        with self.store.transaction() as db:
            if not db.execute(f"SELECT 1 FROM bindings WHERE {match}", key).fetchone():
                return
            if destination_type is DestinationType.QUEUE:
                self.require_queue(db, destination)
            db.execute(f"DELETE FROM bindings WHERE {match}", key)
            auto_delete_exchanges(db, [source])

    # --- publishing -------------------------------------------------------------------

    def publish(self, exchange: str, messages: Sequence[Message]) -> list[int]:
        """Route and enqueue messages published to one exchange, in one transaction.

        Returns one outcome per message: ``ROUTED``, ``UNROUTABLE`` (dropped; the caller
        reports or returns it) or ``REJECTED`` (refused by a queue: a nack). Consecutive
        messages with the same routing key and properties are routed once.
        """
        groups: list[tuple[str, Properties, list[bytes]]] = []
        last: tuple[str, int] | None = None
        for m in messages:
            key = (m.routing_key, id(m.properties))
            if key != last:
                last = key
                groups.append((m.routing_key, m.properties, []))
            groups[-1][2].append(m.body)
        return self._publish(exchange, groups)

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes]) -> list[int]:
        """``publish`` for many bodies with one routing key and one set of properties."""
        return self._publish(exchange, [(routing_key, properties, bodies)])

    def _publish(self, exchange: str,
                 groups: Sequence[tuple[str, Properties, Sequence[bytes]]]) -> list[int]:
        exchange = check_name("exchange", exchange)
        limit = self.broker.max_message_size
        for i, (key, props, bodies) in enumerate(groups):
            if max(map(len, bodies), default=0) > limit:  # as on RabbitMQ: those before
                n = next(j for j, body in enumerate(bodies) if len(body) > limit)  # it stand
                before = [*groups[:i], (key, props, bodies[:n])] if n else groups[:i]
                if before:
                    self._enqueue(exchange, before)
                check_size(len(bodies[n]), limit)
        return self._enqueue(exchange, groups)

    def _enqueue(self, exchange: str,
                 groups: Sequence[tuple[str, Properties, Sequence[bytes]]]) -> list[int]:
        with self.store.transaction() as db:
            return enqueue(db, self.store, Router(db, exchange), groups)

    # --- listing ----------------------------------------------------------------------

    def list_queues(self) -> list[Queue]:
        self.broker.sweep()
        rows = self.store.read(
            "SELECT q.name, q.durable, q.exclusive_owner, q.auto_delete, q.arguments, "
            "(SELECT COUNT(*) FROM messages m WHERE m.queue = q.name AND m.owner IS NULL), "
            "q.unacked, "
            "(SELECT COUNT(*) FROM consumers c WHERE c.queue = q.name) "
            "FROM queues q ORDER BY q.name")
        return [Queue(n, bool(d), o is not None, bool(a), _unjson(args), r, u, c)
                for n, d, o, a, args, r, u, c in rows]

    def list_exchanges(self) -> list[Exchange]:
        rows = self.store.read(
            "SELECT name, type, durable, auto_delete, internal, arguments FROM exchanges "
            "ORDER BY name")
        return [Exchange(n, ExchangeType(t), bool(d), bool(a), bool(i), _unjson(args))
                for n, t, d, a, i, args in rows]

    def list_bindings(self) -> list[Binding]:
        """Every binding, with the default exchange's implicit one to each queue first."""
        implicit = [Binding("", q, DestinationType.QUEUE, q) for (q,) in self.store.read(
            "SELECT name FROM queues ORDER BY name")]
        rows = self.store.read(
            "SELECT source, destination, destination_type, routing_key, arguments "
            "FROM bindings ORDER BY source, destination_type, destination, routing_key")
        return implicit + [Binding(s, d, DestinationType(t), k, _unjson(a))
                           for s, d, t, k, a in rows]

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> routing.Route:
        """Where a message would go, without publishing it."""
        with self.store.transaction(notify=False) as db:
            return Router(db, check_name("exchange", exchange)).explain(routing_key, headers)
