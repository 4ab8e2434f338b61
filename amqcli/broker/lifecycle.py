"""How messages leave queues other than by acknowledgement, as RabbitMQ does it: length
limits (``x-max-length``, ``x-max-length-bytes``, ``x-overflow``), expiry (``x-message-ttl``,
the ``expiration`` property), dead-lettering with the ``x-death`` header, and queues that
expire when unused (``x-expires``). SEMANTICS.md items 43-45.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .codec import load_properties
from .model import Properties

if TYPE_CHECKING:
    from .store import Store

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


def enqueue_limited(db: sqlite3.Connection, store: Store, queue: str, limits: Limits, sql: str,
                    bodies: Sequence[bytes], routing_key: str, exchange: str,
                    properties: str | None, now: float) -> set[int]:
    """Enqueue into a queue with a length limit; the indexes of the bodies it refused."""
    from .publishing import insert
    if limits.overflow == "drop-head":
        insert(db, store, sql, bodies)
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
        insert(db, store, sql, accepted)
    if refused and limits.overflow == "reject-publish-dlx":
        rows = [(0, bodies[i], properties, exchange, routing_key) for i in sorted(refused)]
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
    remove(db, [r[0] for r in dropped])
    dead_letter(db, store, queue, dropped, "maxlen", now)


def remove(db: sqlite3.Connection, ids: list[int]) -> None:
    from .engine import for_ids
    if ids:
        for_ids(db, "DELETE FROM messages WHERE owner IS NULL AND", (), ids)


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
    from .engine import queue_row
    from .publishing import Router, enqueue
    q = queue_row(db, queue)
    dlx = (q or {"arguments": {}})["arguments"].get("x-dead-letter-exchange")
    if dlx is None or not rows:
        return
    dlrk = q["arguments"].get("x-dead-letter-routing-key") if q else None
    router = Router(db, dlx, checked=False)
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


# --- expiry ---------------------------------------------------------------------------

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
        remove(db, [r[0] for r in expired])
        dead_letter(db, store, queue, expired, "expired", min(times))
    return len(expired)


def expire(db: sqlite3.Connection, store: Store, now: float | None = None) -> None:
    """One pass over the queues: expired heads, and queues unused for their x-expires."""
    from .engine import _unjson, delete_queue_rows
    now = time.time() if now is None else now
    for name, arguments, last_used, expiring in db.execute(
            "SELECT name, arguments, last_used, expiring FROM queues "
            "WHERE expiring = 1 OR arguments LIKE '%x-expires%'").fetchall():
        args = _unjson(arguments)
        ttl = args.get("x-expires")
        if isinstance(ttl, int) and not isinstance(ttl, bool) and last_used + ttl / 1000 <= now \
                and not db.execute("SELECT 1 FROM consumers WHERE queue = ? LIMIT 1",
                                   (name,)).fetchone():
            delete_queue_rows(db, name)  # its messages are not dead-lettered
            continue
        if expiring:
            expire_head(db, store, name, now)
