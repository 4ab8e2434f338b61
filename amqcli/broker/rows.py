"""Row helpers of the store's tables, on an open transaction: the engine's modules share
them (engine, channel, lifecycle, publishing), and import them from here, at the top.

Queue and exchange arguments are stored as JSON (``dump_table``/``load_table``) with the
AMQP types of ``amqp.codec``'s JSON form kept.

The bindings version (``meta`` key ``bindings_version``, 0 when missing) changes in the
same transaction as every change to bindings or exchanges: processes that keep routing
state across transactions (``publishing.Routes``) compare it to know theirs is current.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..amqp.model import Binding, DestinationType, Exchange, ExchangeType


def literal(value: str | float | None) -> str:
    """A value as an SQL literal, for the shared values of a batch's INSERT: strings
    quoted the SQL way, or, holding a NUL (legal in AMQP, unsafe in an SQL literal), as
    hex blobs cast to text."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        if "\0" in value:
            return f"cast(x'{value.encode().hex()}' AS TEXT)"
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def dump_table(value: dict[str, Any]) -> str:
    import json

    from ..amqp.codec import to_json_value
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"))


def load_table(text: str) -> dict[str, Any]:
    if not text or text == "{}":
        return {}
    import json

    from ..amqp.codec import from_json_value
    return from_json_value(json.loads(text))


def get_exchange(db: sqlite3.Connection, name: str) -> Exchange | None:
    row = db.execute(
        "SELECT name, type, durable, auto_delete, internal, arguments FROM exchanges "
        "WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return Exchange(row[0], ExchangeType(row[1]), bool(row[2]), bool(row[3]), bool(row[4]),
                    load_table(row[5]))


def queue_row(db: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT durable, exclusive_owner, auto_delete, arguments, had_consumer FROM queues "
        "WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return {"durable": bool(row[0]), "owner": row[1], "auto_delete": bool(row[2]),
            "arguments": load_table(row[3]), "had_consumer": bool(row[4])}


def bindings_from(db: sqlite3.Connection, source: str) -> list[Binding]:
    rows = db.execute(
        "SELECT destination, destination_type, routing_key, arguments FROM bindings "
        "WHERE source = ?", (source,)).fetchall()
    kinds = {t.value: t for t in DestinationType}  # a dict: the enum's call costs more
    return [Binding(source, d, kinds[t], k, load_table(a)) for d, t, k, a in rows]


class BindingRows:
    """An exchange's bindings as read from the store, for an index: their routing keys, and
    ``binding(i)``, the i-th binding, made only when asked for (those that match).

    The keys alone are read at first (a third of the cost of whole rows, for 100,000
    bindings); the first few bindings asked for are read by their key, and past that all
    rows at once. One order, the primary key's, for all of those reads, so positions
    agree. A later transaction may ask too: the bindings are the same as long as the
    bindings version is (``publishing.Routes`` checks it first).
    """

    LOOKUPS = 3  # bindings read by key before all are read

    def __init__(self, db: sqlite3.Connection, source: str) -> None:
        self.db = db
        self.source = source
        self.keys = [k for (k,) in db.execute(
            f"SELECT routing_key FROM bindings WHERE source = ? {_BINDING_ORDER}", (source,))]
        self._rows: list[tuple[str, str, str]] | None = None  # destination, type, arguments
        self._made: dict[int, Binding] = {}
        self._lookups = 0

    def binding(self, i: int) -> Binding:
        found = self._made.get(i)
        if found is None:
            if self._rows is None and self._lookups < self.LOOKUPS:
                self._lookups += 1
                self._read_key(self.keys[i])
                return self._made[i]
            if self._rows is None:
                self._rows = self.db.execute(
                    "SELECT destination, destination_type, arguments FROM bindings "
                    f"WHERE source = ? {_BINDING_ORDER}", (self.source,)).fetchall()
            found = self._made[i] = self._make(self.keys[i], *self._rows[i])
        return found

    def _read_key(self, key: str) -> None:
        """Make the bindings with this routing key (in the one order: the n-th row read is
        the n-th position with that key)."""
        rows = self.db.execute(
            "SELECT destination, destination_type, arguments FROM bindings "
            f"WHERE source = ? AND routing_key = ? {_BINDING_ORDER}", (self.source, key))
        positions = (j for j, k in enumerate(self.keys) if k == key)
        for j, row in zip(positions, rows, strict=True):
            self._made.setdefault(j, self._make(key, *row))

    def _make(self, key: str, destination: str, kind: str, arguments: str) -> Binding:
        return Binding(self.source, destination, DestinationType(kind), key,
                       load_table(arguments))


# The primary key's order (so no sort): BindingRows reads rows in it more than once.
_BINDING_ORDER = "ORDER BY destination_type, destination, routing_key, arguments"


def bindings_version(db: sqlite3.Connection) -> int:
    """The store's bindings version (see the module docstring)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'bindings_version'").fetchone()
    return row[0] if row else 0


def bump_bindings_version(db: sqlite3.Connection) -> None:
    """Change the bindings version, inside the transaction that changes bindings or exchanges.

    It grows by a random step rather than by one: a process that bumped it and routed in
    a transaction that then rolled back holds state made for a value no commit gave, and
    another process's next bump must not land on that value.
    """
    db.execute("INSERT INTO meta (key, value) VALUES ('bindings_version', "
               "1 + (random() & 4294967295)) "
               "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value")


def for_ids(db: sqlite3.Connection, sql: str, params: tuple[Any, ...],
            ids: list[int]) -> None:
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


def count(db: sqlite3.Connection, queue: str, published: int = 0, delivered: int = 0) -> None:
    """Add to a queue's counters of messages enqueued and delivered (``amq top``)."""
    db.execute("INSERT INTO queue_stats (queue, published, delivered) VALUES (?, ?, ?) "
               "ON CONFLICT (queue) DO UPDATE SET published = published + excluded.published, "
               "delivered = delivered + excluded.delivered", (queue, published, delivered))


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
    if db.execute("DELETE FROM bindings WHERE destination_type = 'queue' AND destination = ?",
                  (name,)).rowcount:
        bump_bindings_version(db)
    db.execute("DELETE FROM consumers WHERE queue = ?", (name,))
    db.execute("DELETE FROM queue_stats WHERE queue = ?", (name,))
    db.execute("DELETE FROM queues WHERE name = ?", (name,))
    for table in ("stream_chunks", "stream_segments", "streams"):  # a stream's log
        db.execute(f"DELETE FROM {table} WHERE queue = ?", (name,))
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
    bump_bindings_version(db)  # routing state holds exchanges too, and their absence
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


def remove_messages(db: sqlite3.Connection, ids: list[int]) -> None:
    """Delete ready messages by id."""
    if ids:
        for_ids(db, "DELETE FROM messages WHERE owner IS NULL AND", (), ids)
