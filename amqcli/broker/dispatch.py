"""Dispatch: which consumer gets the next ready message, decided in the store.

Consumers are rows of the ``consumers`` table, whatever process they live in (an ``amq
receive``, a shell subscription, a client of ``amq broker serve``). Every transaction that
makes messages ready (a publish, a requeue, a dead-letter, a sweep) or makes room (an
ack, a new consumer, a ``basic.qos``) names the queues concerned (``Store.touch``); before
it commits, ``dispatch`` hands their ready messages to consumers with room and rings the
doorbells of the processes it handed messages to. As in RabbitMQ:

- consumers with a higher ``x-priority`` are served first, as long as they have room;
- among equals, round robin: each message to the next consumer with room, in turn
  (``served`` stamps who was served last);
- room is the prefetch (``basic.qos``, per consumer and per channel with ``global``)
  minus what the consumer holds unacknowledged; a no-ack consumer has no limit;
- a queue with ``x-single-active-consumer`` has one active consumer, the earliest
  registered: the next one takes over when it goes.

A queue with one consumer is not dispatched: its process is rung and takes from the
head itself (``Channel.claim``), as fast as a lone receiver can go.

A message handed to a consumer belongs to its connection at once (``owner``: unacked, as
RabbitMQ counts messages in flight) and names the consumer (``consumer``) until the
consumer's process takes it (``take``). At most ``CREDIT`` messages wait like that per
consumer (and ``CREDIT_BYTES`` of bodies), so a consumer without a prefetch limit does not
take a whole queue into a pending state; when its process takes them, the next ones are
handed out.

Expired messages met at the head on the way are expired, as they would be on reaching it.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .publishing import dead_letter
from .rows import for_ids, load_table, remove_messages

if TYPE_CHECKING:
    from .store import Store

CREDIT = 1000  # messages handed to one consumer, not yet taken by its process, at most
CREDIT_BYTES = 4 * 1024 * 1024  # and their bodies' bytes (or one message)
_READY = "FROM messages WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id LIMIT ?"


class _Candidate:
    __slots__ = ("bell", "bytes", "channel", "id", "ids", "key", "priority", "room",
                 "served", "size")

    def __init__(self, row: tuple[Any, ...]) -> None:
        (self.id, connection, channel, no_ack, prefetch, _channel_prefetch, self.priority,
         held, waiting, self.bytes, self.served, self.bell) = row
        self.size = 0  # bytes handed in this dispatch
        self.key = (connection, channel)
        room = CREDIT - waiting
        if prefetch and not no_ack:
            room = min(room, prefetch - held)
        self.room = max(0, room)
        self.channel = None if no_ack else (_channel_prefetch or None)
        self.ids: list[int] = []


def queue_arguments(db: sqlite3.Connection, queue: str) -> dict[str, Any] | None:
    row = db.execute("SELECT arguments FROM queues WHERE name = ?", (queue,)).fetchone()
    return None if row is None else load_table(row[0])


def dispatch(db: sqlite3.Connection, store: Store, queue: str) -> int:
    """Hand the ready messages of ``queue`` to its consumers with room; how many."""
    rows = db.execute(
        "SELECT id, connection, channel, no_ack, prefetch, channel_prefetch, priority, held, "
        "waiting, waiting_bytes, served, bell FROM consumers WHERE queue = ? ORDER BY id",
        (queue,)).fetchall()
    if not rows:
        return 0
    if len(rows) == 1:  # a queue to itself: it takes from the head (Channel.claim), rung
        lone = _Candidate(rows[0])
        if lone.room and lone.bell and db.execute(
                "SELECT 1 FROM messages WHERE queue = ? AND owner IS NULL LIMIT 1",
                (queue,)).fetchone():
            store.to_ring.add(lone.bell)
        return 0
    args = queue_arguments(db, queue) or {}
    if args.get("x-single-active-consumer") is True:
        rows = rows[:1]
    candidates = [_Candidate(r) for r in rows]
    channel_room = _channel_room(db, candidates)
    for c in candidates:
        if c.channel is not None:
            c.room = min(c.room, channel_room[c.key])
    total = sum(c.room for c in candidates)
    if total <= 0:
        return 0
    ready = _ready_ids(db, store, queue, total)
    if not ready:
        return 0
    stamp = max(c.served for c in candidates)
    pending = deque(ready)
    for level in sorted({c.priority for c in candidates}, reverse=True):
        ring = deque(sorted((c for c in candidates if c.priority == level and c.room > 0),
                            key=lambda c: c.served))
        while ring and pending:
            c = ring.popleft()
            if c.channel is not None and channel_room[c.key] <= 0:
                continue
            if c.bytes + c.size >= CREDIT_BYTES and (c.ids or c.bytes):
                continue  # bodies enough waiting for its process
            mid, size = pending.popleft()
            c.ids.append(mid)
            c.size += size
            c.room -= 1
            if c.channel is not None:
                channel_room[c.key] -= 1
            stamp += 1
            c.served = stamp
            if c.room > 0:
                ring.append(c)
        if not pending:
            break
    handed = 0
    for c in candidates:
        if not c.ids:
            continue
        for_ids(db, "UPDATE messages SET owner = ?, consumer = ? WHERE owner IS NULL AND",
                (c.key[0], c.id), c.ids)
        db.execute("UPDATE consumers SET held = held + ?, waiting = waiting + ?, "
                   "waiting_bytes = waiting_bytes + ?, served = ? WHERE id = ?",
                   (len(c.ids), len(c.ids), c.size, c.served, c.id))
        handed += len(c.ids)
        if c.bell:
            store.to_ring.add(c.bell)
    db.execute("UPDATE queues SET unacked = unacked + ? WHERE name = ?", (handed, queue))
    return handed


def _channel_room(db: sqlite3.Connection,
                  candidates: list[_Candidate]) -> dict[tuple[int, int], int]:
    """Room left under each channel-wide limit (``basic.qos`` global) among candidates."""
    room: dict[tuple[int, int], int] = {}
    for c in candidates:
        if c.channel is not None and c.key not in room:
            held = db.execute("SELECT COALESCE(SUM(held), 0) FROM consumers "
                              "WHERE connection = ? AND channel = ?", c.key).fetchone()[0]
            room[c.key] = max(0, c.channel - held)
    return room


def _ready_ids(db: sqlite3.Connection, store: Store, queue: str,
               most: int) -> list[tuple[int, int]]:
    """(id, body size) of the first ``most`` ready messages, expiring those past their
    time (``length`` of a blob reads no body)."""
    now = time.time()
    while True:
        rows = db.execute(f"SELECT id, expires, length(body) {_READY}", (queue, most)).fetchall()
        expired = [mid for mid, expires, _n in rows if expires is not None and expires <= now]
        if not expired:
            return [(mid, n) for mid, _e, n in rows]
        expire_ids(db, store, queue, expired)


def expire_ids(db: sqlite3.Connection, store: Store, queue: str, ids: list[int]) -> None:
    """Expire ready messages (dead-lettering them with reason ``expired``)."""
    for i in range(0, len(ids), 500):  # within SQLite's limit on parameters
        part = ids[i:i + 500]
        rows = db.execute(
            "SELECT id, body, properties, exchange, routing_key, expires FROM messages "
            f"WHERE id IN ({','.join('?' * len(part))}) ORDER BY priority DESC, id",
            part).fetchall()
        remove_messages(db, part)
        for r in rows:
            dead_letter(db, store, queue, [r[:5]], "expired", r[5])


def return_handed(db: sqlite3.Connection, consumers: list[int]) -> None:
    """Messages handed to these consumers and not yet taken go back to their queues as
    they were (never delivered: not redelivered)."""
    for cid in consumers:
        rows = db.execute("UPDATE messages SET owner = NULL, consumer = NULL WHERE consumer = ? "
                          "RETURNING queue", (cid,)).fetchall()
        db.execute("UPDATE consumers SET held = max(0, held - waiting), waiting = 0, "
                   "waiting_bytes = 0 WHERE id = ?", (cid,))
        if rows:
            db.executemany("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                           [(n, q) for q, n in Counter(q for (q,) in rows).items()])


def limit_deliveries(db: sqlite3.Connection, store: Store, queues: Iterable[str],
                     ids: list[int]) -> None:
    """Messages of these ids, just requeued, returned more often than their queue's
    ``x-delivery-limit`` allows: dead-lettered with reason ``delivery_limit`` (dropped
    without a dead-letter exchange), as a quorum queue does."""
    for queue in queues:
        args = queue_arguments(db, queue)
        limit = (args or {}).get("x-delivery-limit")
        if not isinstance(limit, int) or isinstance(limit, bool):
            continue
        over: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            over += db.execute(
                "SELECT id, body, properties, exchange, routing_key FROM messages "
                f"WHERE queue = ? AND owner IS NULL AND deliveries > ? "
                f"AND id IN ({','.join('?' * len(part))}) ORDER BY id",
                (queue, limit, *part)).fetchall()
        if over:
            for_ids(db, "DELETE FROM messages WHERE owner IS NULL AND", (),
                    [r[0] for r in over])
            dead_letter(db, store, queue, over, "delivery_limit")
