"""Expiry, as RabbitMQ does it: messages past their TTL (``x-message-ttl``, the
``expiration`` property) leave from the head of their queue and are dead-lettered, and
queues unused for their ``x-expires`` are deleted (their messages are not dead-lettered).
Length limits and dead-lettering itself are publishing's (``publishing.py``).

RabbitMQ docs: Time-To-Live and Expiration; Dead Letter Exchanges.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from .publishing import Row, dead_letter
from .rows import delete_queue_rows, load_table, remove_messages

if TYPE_CHECKING:
    from .store import Store


def expire_head(db: sqlite3.Connection, store: Store, queue: str, now: float) -> int:
    """Expire the run of expired messages at the head of a queue (dead-lettering them);
    how many. Messages behind a live head wait, as in RabbitMQ."""
    expired: list[Row] = []
    times: list[float] = []
    for mid, expires, body, props, exchange, rk in db.execute(
            "SELECT id, expires, body, properties, exchange, routing_key FROM messages "
            "WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id", (queue,)):
        if expires is None or expires > now:
            break
        expired.append((mid, body, props, exchange, rk))
        times.append(expires)
    if expired:
        remove_messages(db, [r[0] for r in expired])
        dead_letter(db, store, queue, expired, "expired", min(times))
    return len(expired)


def expire(db: sqlite3.Connection, store: Store, now: float | None = None) -> None:
    """One pass over the queues: expired heads, and queues unused for their x-expires."""
    now = time.time() if now is None else now
    for name, arguments, last_used, expiring in db.execute(
            "SELECT name, arguments, last_used, expiring FROM queues "
            "WHERE expiring = 1 OR arguments LIKE '%x-expires%'").fetchall():
        args = load_table(arguments)
        ttl = args.get("x-expires")
        if isinstance(ttl, int) and not isinstance(ttl, bool) and last_used + ttl / 1000 <= now \
                and not db.execute("SELECT 1 FROM consumers WHERE queue = ? LIMIT 1",
                                   (name,)).fetchone():
            delete_queue_rows(db, name)  # its messages are not dead-lettered
            continue
        if expiring:
            expire_head(db, store, name, now)


def next_deadline(store: Store) -> float | None:
    """When the next expiry is due (epoch seconds), or None: the earliest head of a queue
    that has held messages with an expiry, and the x-expires of queues without consumers."""
    times = [t for (t,) in store.read(
        "SELECT (SELECT m.expires FROM messages m WHERE m.queue = q.name AND m.owner IS NULL "
        "ORDER BY m.priority DESC, m.id LIMIT 1) FROM queues q WHERE q.expiring = 1")
        if t is not None]
    for arguments, last_used in store.read(
            "SELECT arguments, last_used FROM queues q WHERE arguments LIKE '%x-expires%' "
            "AND NOT EXISTS (SELECT 1 FROM consumers c WHERE c.queue = q.name)"):
        ttl = load_table(arguments).get("x-expires")
        if isinstance(ttl, int) and not isinstance(ttl, bool):
            times.append(last_used + ttl / 1000)
    return min(times, default=None)
