"""A channel of a local-broker connection: consumers, delivery tags, acknowledgements.

Delivery tags are per channel and start at 1. An unacknowledged message is a row whose
``owner`` is this connection (and which its queue counts in ``queues.unacked``); the
channel remembers which rows it holds, so closing it requeues exactly those, flagged
redelivered. If the process dies instead, the next sweep requeues them (``engine``).
Prefetch limits are kept here, per consumer (``basic.qos`` with ``global=false``) and per
channel (``global=true``). A claim is bounded in bytes as well as in count
(``BATCH_BYTES``), so that a batch of large messages never sits in memory at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.codec import load_properties
from ..amqp.model import Delivery, Properties
from ..amqp.names import check_name, server_name, where
from .publishing import dead_letter
from .rows import auto_delete_queues, for_ids, queue_row, remove_messages, touch_queues

if TYPE_CHECKING:
    from .engine import Connection

BATCH_BYTES = 16 * 1024 * 1024  # bodies claimed at once, at most (or one message)
_READY = "FROM messages WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id LIMIT ?"


class Claim(NamedTuple):
    """What one claim for a consumer took: the deliveries, and whether the byte bound
    stopped it before ``most`` although more messages were ready."""

    deliveries: list[Delivery]
    cut: bool


@dataclass(slots=True)
class _Consumer:
    tag: str
    queue: str
    no_ack: bool
    prefetch: int  # 0: unlimited
    unacked: int = 0


class Channel:
    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.store = connection.store
        self.number = number
        self.closed = False
        self.next_tag = 1
        # delivery tag -> (message id, queue, consumer tag or "" for basic.get), oldest first
        self.unacked: dict[int, tuple[int, str, str]] = {}
        self._lazy_acks: list[tuple[int, str]] = []  # acked, not yet deleted: (id, queue)
        self.consumers: dict[str, _Consumer] = {}
        self.prefetch = 0  # basic.qos(global=false): for consumers created after it
        self.global_prefetch = 0  # basic.qos(global=true): shared by the channel

    # --- consumers --------------------------------------------------------------------

    def qos(self, prefetch_count: int, global_: bool = False) -> None:
        if global_:
            self.global_prefetch = prefetch_count
        else:
            self.prefetch = prefetch_count

    def consume(self, queue: str, tag: str = "", *, no_ack: bool = False,
                exclusive: bool = False) -> str:
        """``basic.consume``: register a consumer; its tag (server-named when empty)."""
        queue = check_name("queue", queue)
        tag = tag or server_name("amq.ctag-")
        if tag in self.consumers:
            raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        with self.store.transaction() as db:
            self.connection.require_queue(db, queue)
            rows = db.execute("SELECT exclusive FROM consumers WHERE queue = ?",
                              (queue,)).fetchall()
            if rows and (exclusive or any(e for (e,) in rows)):
                raise errors.AccessRefused(f"{where('queue', queue)} in exclusive use")
            db.execute(
                "INSERT INTO consumers (connection, channel, tag, queue, exclusive) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.connection.id, self.number, tag, queue, exclusive))
            db.execute("UPDATE queues SET had_consumer = 1, last_used = ? WHERE name = ?",
                       (time.time(), queue))
        self.consumers[tag] = _Consumer(tag, queue, no_ack, self.prefetch)
        return tag

    def cancel(self, tag: str) -> None:
        """``basic.cancel``: unknown tags are fine. Unacked messages stay unacked."""
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            return
        with self.store.transaction() as db:
            db.execute("DELETE FROM consumers WHERE connection = ? AND channel = ? AND tag = ?",
                       (self.connection.id, self.number, tag))
            touch_queues(db, [consumer.queue])
            auto_delete_queues(db, [consumer.queue])

    def capacity(self, tag: str) -> int | None:
        """How many more messages the consumer may hold unacked (None: no limit)."""
        c = self.consumers[tag]
        limits = []
        if c.prefetch and not c.no_ack:
            limits.append(c.prefetch - c.unacked)
        if self.global_prefetch and not c.no_ack:
            limits.append(self.global_prefetch - len(self.unacked))
        return max(0, min(limits)) if limits else None

    def deliver(self, tag: str, most: int, max_bytes: int = BATCH_BYTES) -> list[Delivery]:
        """Claim up to ``most`` ready messages for a consumer, within its prefetch, and
        bodies of at most ``max_bytes`` in all (always one message, however large).

        Raises ``ConsumerCancelled`` when the consumer's queue is gone (the broker cancelled
        it, as RabbitMQ does when a queue is deleted).
        """
        return self.claim(tag, most, max_bytes).deliveries

    def claim(self, tag: str, most: int, max_bytes: int = BATCH_BYTES) -> Claim:
        """``deliver``, saying also whether the byte bound cut the claim short."""
        c = self.consumers[tag]
        room = self.capacity(tag)
        if room is not None:
            most = min(most, room)
        if most <= 0:
            return Claim([], False)
        rows, cut = self._claim(c.queue, most, c.no_ack, max_bytes)
        if not rows and not self.store.read(
                "SELECT 1 FROM consumers WHERE connection = ? AND channel = ? AND tag = ?",
                (self.connection.id, self.number, tag)):
            del self.consumers[tag]
            raise errors.ConsumerCancelled(
                f"the broker cancelled the consumer: queue '{c.queue}' was deleted")
        deliveries = self._tag(rows, c.queue, None if c.no_ack else tag)
        if not c.no_ack:
            c.unacked += len(deliveries)
        return Claim(deliveries, cut)

    # --- basic.get ----------------------------------------------------------------------

    def get(self, queue: str, *, no_ack: bool = False) -> tuple[Delivery | None, int]:
        """``basic.get``: one message or None, and how many messages are left ready."""
        queue = check_name("queue", queue)
        with self.store.transaction(notify=False) as db:
            self.connection.require_queue(db, queue)
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), queue))
            rows, _cut = self._claim(queue, 1, no_ack)
            left = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL",
                              (queue,)).fetchone()[0]
        deliveries = self._tag(rows, queue, None if no_ack else "")
        return (deliveries[0] if deliveries else None), left

    # --- acknowledgements ---------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool) -> list[tuple[int, str]]:
        """Forget the deliveries a tag (and ``multiple``) covers: their (id, queue), or 406."""
        if multiple and (tag == 0 or tag >= self.next_tag - 1):
            held = list(self.unacked.values())  # all of them: the usual batch ack
            self.unacked.clear()
            self._uncount(Counter(c for _mid, _q, c in held))
            return [(mid, q) for mid, q, _c in held]
        if multiple:
            tags = [t for t in self.unacked if t <= tag]
        elif tag in self.unacked:
            tags = [tag]
        else:
            tags = []
        if not tags and not (multiple and tag == 0):
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        settled = []
        per_consumer: Counter[str] = Counter()
        for t in tags:
            mid, queue, consumer = self.unacked.pop(t)
            settled.append((mid, queue))
            per_consumer[consumer] += 1
        self._uncount(per_consumer)
        return settled

    def _uncount(self, per_consumer: Counter[str]) -> None:
        for consumer, n in per_consumer.items():
            c = self.consumers.get(consumer)
            if c is not None:
                c.unacked -= n

    def _release(self, db: sqlite3.Connection, settled: list[tuple[int, str]],
                 requeue: bool, dead_letter: bool = False) -> None:
        """Delete (ack; reject without requeue, dead-lettering with ``dead_letter``) or
        requeue messages this channel held."""
        if not settled:
            return
        owner = self.connection.id
        ids = [mid for mid, _q in settled]
        if requeue:
            for_ids(db, "UPDATE messages SET owner = NULL, redelivered = 1 WHERE owner = ? AND",
                    (owner,), ids)
        else:
            if dead_letter:
                self._dead_letter(db, settled)
            for_ids(db, "DELETE FROM messages WHERE owner = ? AND", (owner,), ids)
        db.executemany("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                       [(n, q) for q, n in Counter(q for _mid, q in settled).items()])

    def _dead_letter(self, db: sqlite3.Connection, settled: list[tuple[int, str]]) -> None:
        """Rejected without requeue: to each queue's dead-letter exchange, if it has one."""
        by_queue: dict[str, list[int]] = {}
        for mid, queue in settled:
            by_queue.setdefault(queue, []).append(mid)
        for queue, ids in by_queue.items():
            q = queue_row(db, queue)
            if not q or "x-dead-letter-exchange" not in q["arguments"]:
                continue
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                "SELECT id, body, properties, exchange, routing_key FROM messages "
                f"WHERE owner = ? AND id IN ({marks}) ORDER BY id",
                (self.connection.id, *ids)).fetchall()
            dead_letter(db, self.store, queue, rows, "rejected")

    def _flush_acks(self, db: sqlite3.Connection) -> None:
        if self._lazy_acks:
            self._release(db, self._lazy_acks, requeue=False)
            self._lazy_acks = []

    def flush(self, db: sqlite3.Connection | None = None) -> None:
        """Write lazy acks to the store now (within ``db``'s transaction when given)."""
        if not self._lazy_acks:
            return
        if db is not None:
            self._flush_acks(db)
        else:
            with self.store.transaction(notify=False) as tx:
                self._flush_acks(tx)

    def reserve_tag(self) -> int:
        """A delivery tag for a message delivered outside the store (direct reply-to)."""
        tag = self.next_tag
        self.next_tag += 1
        return tag

    def ack(self, tag: int, multiple: bool = False, lazy: bool = False) -> None:
        """``basic.ack``. With ``lazy`` the store learns of it with the next claim or the
        close: until then a crash redelivers the messages, it never loses them."""
        settled = self._settle(tag, multiple)
        if lazy:
            self._lazy_acks.extend(settled)
        elif settled:
            with self.store.transaction(notify=False) as db:
                self._flush_acks(db)
                self._release(db, settled, requeue=False)

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        settled = self._settle(tag, multiple)
        if not settled:
            return
        with self.store.transaction() as db:
            self._flush_acks(db)
            self._release(db, settled, requeue, dead_letter=not requeue)

    def reject(self, tag: int, requeue: bool = True) -> None:
        self.nack(tag, False, requeue)

    def recover(self, requeue: bool = True) -> None:
        if not requeue:
            raise errors.AMQPNotImplemented("requeue=false")
        if self.unacked:
            self.nack(0, True, True)

    def close(self) -> None:
        """Cancel the channel's consumers and requeue its unacked messages."""
        if self.closed:
            return
        self.closed = True
        held = [(mid, queue) for mid, queue, _c in self.unacked.values()]
        self.unacked.clear()
        with self.store.transaction() as db:
            self._flush_acks(db)
            self._release(db, held, requeue=True)
            queues = [c.queue for c in self.consumers.values()]
            db.execute("DELETE FROM consumers WHERE connection = ? AND channel = ?",
                       (self.connection.id, self.number))
            touch_queues(db, queues)
            auto_delete_queues(db, queues)
        self.consumers.clear()

    # --- internals ----------------------------------------------------------------------

    def _claim(self, queue: str, most: int, no_ack: bool,
               max_bytes: int = BATCH_BYTES) -> tuple[list[tuple[Any, ...]], bool]:
        """Take up to ``most`` ready messages of a queue (``max_bytes`` of bodies, or
        one), in delivery order; and whether the byte bound left some of ``most`` out."""
        with self.store.transaction(notify=False) as db:
            self._flush_acks(db)
            rows, cut = self._head(db, queue, most, max_bytes)
            if rows:
                ids = [r[0] for r in rows]
                if no_ack:
                    for_ids(db, "DELETE FROM messages WHERE owner IS NULL AND", (), ids)
                else:
                    for_ids(db, "UPDATE messages SET owner = ? WHERE owner IS NULL AND",
                            (self.connection.id,), ids)
                    db.execute("UPDATE queues SET unacked = unacked + ? WHERE name = ?",
                               (len(ids), queue))
        return rows, cut

    def _head(self, db: sqlite3.Connection, queue: str, most: int,
              max_bytes: int) -> tuple[list[tuple[Any, ...]], bool]:
        """The first ``most`` ready messages, as many as fit in ``max_bytes`` (at least
        one); expired ones met on the way are expired (dead-lettered), as each would be
        on reaching the head. Sizes are read first (``length`` of a blob reads no body),
        so the bodies read are only those claimed."""
        now = time.time()
        while True:
            sizes = db.execute(f"SELECT id, expires, length(body) {_READY}",
                               (queue, most)).fetchall()
            expired = [mid for mid, expires, _n in sizes if expires is not None and
                       expires <= now]
            if not expired:
                break
            self._expire(db, queue, expired)
        total, fit = 0, 0
        for _mid, _expires, size in sizes:
            total += size
            if fit and total > max_bytes:
                break
            fit += 1
        if not fit:
            return [], False
        return db.execute(
            f"SELECT id, expires, body, properties, exchange, routing_key, redelivered {_READY}",
            (queue, fit)).fetchall(), fit < len(sizes)

    def _expire(self, db: sqlite3.Connection, queue: str, ids: list[int]) -> None:
        for i in range(0, len(ids), 500):  # within SQLite's limit on parameters
            part = ids[i:i + 500]
            rows = db.execute(
                "SELECT id, body, properties, exchange, routing_key, expires FROM messages "
                f"WHERE id IN ({','.join('?' * len(part))}) ORDER BY priority DESC, id",
                part).fetchall()
            remove_messages(db, part)
            for r in rows:
                dead_letter(db, self.store, queue, [r[:5]], "expired", r[5])

    def _tag(self, rows: list[tuple[Any, ...]], queue: str, consumer: str | None) -> list[Delivery]:
        """Number claimed rows with delivery tags; remember them unless no-ack."""
        out = []
        props_cache: dict[str | None, Properties] = {}
        tag = self.next_tag
        unacked = self.unacked
        for mid, _expires, body, props, exchange, rk, redelivered in rows:
            if consumer is not None:
                unacked[tag] = (mid, queue, consumer)
            p = props_cache.get(props)
            if p is None:
                p = props_cache[props] = load_properties(props)
            out.append(Delivery(tag, body, p, exchange, rk, redelivered == 1, queue))
            tag += 1
        self.next_tag = tag
        return out
