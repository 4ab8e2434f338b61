"""A channel of a local-broker connection: consumers, delivery tags, acknowledgements.

Delivery tags are per channel and start at 1. An unacknowledged message is a row whose
``owner`` is this connection (and which its queue counts in ``queues.unacked``); the
channel remembers which rows it holds, so closing it requeues exactly those, flagged
redelivered. If the process dies instead, the next sweep requeues them (``engine``).
Consumers are rows of the store's registry (``dispatch.py`` decides who gets what, in
whichever process commits); a claim takes what was handed to the consumer, after the
channel's lazy acks and a dispatch of its queue. A lone consumer of a queue takes from the
head directly. A claim is bounded in bytes as well as in count (``BATCH_BYTES``), so that
a batch of large messages never sits in memory at once.
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
from .dispatch import expire_ids, limit_deliveries, queue_arguments, return_handed
from .publishing import dead_letter
from .rows import auto_delete_queues, for_ids, queue_row, touch_queues

if TYPE_CHECKING:
    from .engine import Connection

BATCH_BYTES = 16 * 1024 * 1024  # bodies claimed at once, at most (or one message)
SHARED_PAUSE = 0.0003  # seconds a claim on a shared queue leaves the write lock to others
_READY = "FROM messages WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id LIMIT ?"
_HANDED = "FROM messages WHERE consumer = ? ORDER BY priority DESC, id LIMIT ?"
_COLUMNS = "id, expires, body, properties, exchange, routing_key, redelivered, deliveries"
Settled = tuple[int, str, str]  # (message id, queue, consumer tag or "" for basic.get)


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
    id: int = 0  # its row in the registry
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
        self._lazy_acks: list[Settled] = []  # acked, not yet deleted
        self.consumers: dict[str, _Consumer] = {}
        self.prefetch = 0  # basic.qos(global=false): for consumers created after it
        # A process with one consumer per channel (amq receive) pauses after a claim on a
        # shared queue (SHARED_PAUSE); the server, which serves many from one loop, not.
        self.pause_shared = False
        self.global_prefetch = 0  # basic.qos(global=true): shared by the channel

    # --- consumers --------------------------------------------------------------------

    def qos(self, prefetch_count: int, global_: bool = False) -> None:
        if not global_:
            self.prefetch = prefetch_count
            return
        changed = prefetch_count != self.global_prefetch
        self.global_prefetch = prefetch_count
        if changed and self.consumers:  # live, for the channel's consumers (and their room)
            with self.store.transaction() as db:
                db.execute("UPDATE consumers SET channel_prefetch = ? WHERE connection = ? "
                           "AND channel = ?", (prefetch_count, self.connection.id, self.number))
                for c in self.consumers.values():
                    self.store.touch(c.queue)

    def consume(self, queue: str, tag: str = "", *, no_ack: bool = False,
                exclusive: bool = False, priority: int = 0, bell: str = "") -> str:
        """``basic.consume``: register a consumer; its tag (server-named when empty).
        ``bell``: the doorbell to ring when messages are handed to it (``doorbell.py``)."""
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
            cur = db.execute(
                "INSERT INTO consumers (connection, channel, tag, queue, exclusive, no_ack, "
                "prefetch, channel_prefetch, priority, bell) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.connection.id, self.number, tag, queue, exclusive, no_ack, self.prefetch,
                 self.global_prefetch, priority, bell))
            db.execute("UPDATE queues SET had_consumer = 1, last_used = ? WHERE name = ?",
                       (time.time(), queue))
            self.store.touch(queue)
        assert cur.lastrowid is not None
        self.consumers[tag] = _Consumer(tag, queue, no_ack, self.prefetch, cur.lastrowid)
        return tag

    def cancel(self, tag: str) -> None:
        """``basic.cancel``: unknown tags are fine. Unacked messages stay unacked; those
        handed to the consumer and not yet taken go back to the queue, not redelivered."""
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            return
        with self.store.transaction() as db:
            return_handed(db, [consumer.id])
            db.execute("DELETE FROM consumers WHERE id = ?", (consumer.id,))
            touch_queues(db, [consumer.queue])
            auto_delete_queues(db, [consumer.queue])
            self.store.touch(consumer.queue)
            self._x_expires_moved(db, [consumer.queue])

    def _x_expires_moved(self, db: sqlite3.Connection, queues: list[str]) -> None:
        """A queue with x-expires that lost its consumers starts its clock: tell the sweeper."""
        for q in queues:
            args = queue_arguments(db, q)
            if args and "x-expires" in args:
                self.store.ring_sweeper()
                return

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
            if self._lazy_acks:
                self.flush()
            return Claim([], False)
        state = self._state(c)
        if state is None:
            del self.consumers[tag]
            raise errors.ConsumerCancelled(
                f"the broker cancelled the consumer: queue '{c.queue}' was deleted")
        handed, alone, ready = state
        if not (handed or ready or self._lazy_acks):
            return Claim([], False)  # nothing for it: no write transaction
        with self.store.transaction() as db:
            self._flush_acks(db)
            if alone and not handed:  # a queue to itself: from the head, as it comes
                rows, cut = self._claim(c.queue, most, c.no_ack, max_bytes, c.id)
            else:
                rows, cut = self._take_handed(db, c, most, max_bytes)
            arguments = queue_arguments(db, c.queue) if rows else None
        if self.pause_shared and not alone:
            # Consumers of a shared queue take turns at the store's one write lock. A
            # process woken by our ring often shares our CPU (the kernel puts a woken
            # process beside its waker): a short sleep lets it ack and take what it was
            # handed now, instead of after our next message, and the next, and so on.
            time.sleep(SHARED_PAUSE)
        deliveries = self._tag(rows, c.queue, None if c.no_ack else tag, arguments)
        if not c.no_ack:
            c.unacked += len(deliveries)
        return Claim(deliveries, cut)

    def _state(self, c: _Consumer) -> tuple[int, bool, bool] | None:
        """For a consumer, read without a write transaction: how many messages were handed
        to it, whether it is its queue's only consumer, whether the queue has ready
        messages; None when the consumer is gone (its queue was deleted)."""
        row = self.store.read(
            "SELECT waiting, EXISTS (SELECT 1 FROM messages m WHERE m.queue = c.queue AND "
            "m.owner IS NULL) FROM consumers c WHERE c.id = ?", (c.id,))
        if not row:
            return None
        waiting, ready = row[0]
        if waiting or not ready:
            return waiting, False, bool(ready)
        others = self.store.read("SELECT 1 FROM consumers WHERE queue = ? AND id != ? LIMIT 1",
                                 (c.queue, c.id))
        return waiting, not others, True

    def _take_handed(self, db: sqlite3.Connection, c: _Consumer, most: int,
                     max_bytes: int) -> tuple[list[tuple[Any, ...]], bool]:
        """Take what is handed to consumer ``c``, dispatching its queue again while the
        claim has room (``most``, ``max_bytes``) and the dispatch hands it more."""
        rows: list[tuple[Any, ...]] = []
        used, cut = 0, False
        while len(rows) < most and not cut:
            self.store.touch(c.queue)
            self.store.dispatch_now(db)
            more, cut = self._take(db, c, most - len(rows), max_bytes - used, not rows)
            if not more:
                break
            rows += more
            used += sum(len(r[2]) for r in more)
        return rows, cut

    def _take(self, db: sqlite3.Connection, c: _Consumer, most: int, max_bytes: int,
              first: bool = True) -> tuple[list[tuple[Any, ...]], bool]:
        """Take what was handed to consumer ``c`` (``dispatch.py``), in queue order: at
        most ``max_bytes`` of bodies, or one message if ``first``."""
        sizes = db.execute(f"SELECT length(body) {_HANDED}", (c.id, most)).fetchall()
        fit, total = 0, 0
        for (size,) in sizes:
            total += size
            if (fit or not first) and total > max_bytes:
                break
            fit += 1
        if not fit:
            return [], bool(sizes)
        rows = db.execute(f"SELECT {_COLUMNS} {_HANDED}", (c.id, fit)).fetchall()
        ids = [r[0] for r in rows]
        n, size = len(ids), sum(len(r[2]) for r in rows)
        if c.no_ack:
            for_ids(db, "DELETE FROM messages WHERE consumer = ? AND", (c.id,), ids)
            db.execute("UPDATE consumers SET held = max(0, held - ?), waiting = max(0, "
                       "waiting - ?), waiting_bytes = max(0, waiting_bytes - ?) WHERE id = ?",
                       (n, n, size, c.id))
            db.execute("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                       (n, c.queue))
            self.store.touch(c.queue)  # room again
        else:
            for_ids(db, "UPDATE messages SET consumer = NULL WHERE consumer = ? AND",
                    (c.id,), ids)
            db.execute("UPDATE consumers SET waiting = max(0, waiting - ?), "
                       "waiting_bytes = max(0, waiting_bytes - ?) WHERE id = ?",
                       (n, size, c.id))
            self.store.touch(c.queue)  # credit again
        return rows, fit < len(sizes)

    # --- basic.get ----------------------------------------------------------------------

    def get(self, queue: str, *, no_ack: bool = False) -> tuple[Delivery | None, int]:
        """``basic.get``: one message or None, and how many messages are left ready."""
        queue = check_name("queue", queue)
        with self.store.transaction() as db:
            self.connection.require_queue(db, queue)
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), queue))
            rows, _cut = self._claim(queue, 1, no_ack)
            arguments = queue_arguments(db, queue) if rows else None
            left = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL",
                              (queue,)).fetchone()[0]
        deliveries = self._tag(rows, queue, None if no_ack else "", arguments)
        return (deliveries[0] if deliveries else None), left

    # --- acknowledgements ---------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool) -> list[Settled]:
        """Forget the deliveries a tag (and ``multiple``) covers, or 406."""
        if multiple and (tag == 0 or tag >= self.next_tag - 1):
            held = list(self.unacked.values())  # all of them: the usual batch ack
            self.unacked.clear()
            self._uncount(Counter(c for _mid, _q, c in held))
            return held
        if multiple:
            tags = [t for t in self.unacked if t <= tag]
        elif tag in self.unacked:
            tags = [tag]
        else:
            tags = []
        if not tags and not (multiple and tag == 0):
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        settled = [self.unacked.pop(t) for t in tags]
        self._uncount(Counter(c for _mid, _q, c in settled))
        return settled

    def _uncount(self, per_consumer: Counter[str]) -> None:
        for consumer, n in per_consumer.items():
            c = self.consumers.get(consumer)
            if c is not None:
                c.unacked -= n

    def _release(self, db: sqlite3.Connection, settled: list[Settled],
                 requeue: bool, dead_letter: bool = False) -> None:
        """Delete (ack; reject without requeue, dead-lettering with ``dead_letter``) or
        requeue messages this channel held; their consumers have room again."""
        if not settled:
            return
        owner = self.connection.id
        ids = [mid for mid, _q, _c in settled]
        if requeue:
            for_ids(db, "UPDATE messages SET owner = NULL, consumer = NULL, redelivered = 1, "
                    "deliveries = deliveries + 1 WHERE owner = ? AND", (owner,), ids)
        else:
            if dead_letter:
                self._dead_letter(db, [(mid, q) for mid, q, _c in settled])
            for_ids(db, "DELETE FROM messages WHERE owner = ? AND", (owner,), ids)
        queues = Counter(q for _mid, q, _c in settled)
        db.executemany("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                       [(n, q) for q, n in queues.items()])
        per_consumer = Counter(c for _mid, _q, c in settled if c)
        rows = [(n, self.consumers[c].id) for c, n in per_consumer.items() if c in self.consumers]
        if rows:
            db.executemany("UPDATE consumers SET held = max(0, held - ?) WHERE id = ?", rows)
        for q in queues:
            self.store.touch(q)
        if requeue:
            limit_deliveries(db, self.store, queues, ids)

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
            with self.store.transaction() as tx:
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
            with self.store.transaction() as db:
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
        held = list(self.unacked.values())
        self.unacked.clear()
        with self.store.transaction() as db:
            self._flush_acks(db)
            self._release(db, held, requeue=True)
            ids = [c.id for c in self.consumers.values()]
            return_handed(db, ids)
            queues = [c.queue for c in self.consumers.values()]
            if ids:
                db.execute(f"DELETE FROM consumers WHERE id IN ({','.join('?' * len(ids))})",
                           ids)
            touch_queues(db, queues)
            auto_delete_queues(db, queues)
            for q in queues:
                self.store.touch(q)
            self._x_expires_moved(db, queues)
        self.consumers.clear()

    # --- internals ----------------------------------------------------------------------

    def _claim(self, queue: str, most: int, no_ack: bool, max_bytes: int = BATCH_BYTES,
               consumer: int | None = None) -> tuple[list[tuple[Any, ...]], bool]:
        """Take up to ``most`` ready messages of a queue (``max_bytes`` of bodies, or
        one), in delivery order, for ``consumer`` (a registry id; None: basic.get); and
        whether the byte bound left some of ``most`` out."""
        with self.store.transaction() as db:
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
                    if consumer is not None:
                        db.execute("UPDATE consumers SET held = held + ? WHERE id = ?",
                                   (len(ids), consumer))
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
            expire_ids(db, self.store, queue, expired)
        total, fit = 0, 0
        for _mid, _expires, size in sizes:
            total += size
            if fit and total > max_bytes:
                break
            fit += 1
        if not fit:
            return [], False
        return db.execute(f"SELECT {_COLUMNS} {_READY}", (queue, fit)).fetchall(), \
            fit < len(sizes)

    def _tag(self, rows: list[tuple[Any, ...]], queue: str, consumer: str | None,
             arguments: dict[str, Any] | None) -> list[Delivery]:
        """Number claimed rows with delivery tags; remember them unless no-ack. A quorum
        queue's redeliveries carry ``x-delivery-count``, as in RabbitMQ 3.10."""
        out = []
        props_cache: dict[str | None, Properties] = {}
        tag = self.next_tag
        unacked = self.unacked
        counted = arguments is not None and arguments.get("x-queue-type") == "quorum"
        for mid, _expires, body, props, exchange, rk, redelivered, deliveries in rows:
            if consumer is not None:
                unacked[tag] = (mid, queue, consumer)
            p = props_cache.get(props)
            if p is None:
                p = props_cache[props] = load_properties(props)
            if counted and deliveries:
                p = p._replace(headers={**(p.headers or {}), "x-delivery-count": deliveries})
            out.append(Delivery(tag, body, p, exchange, rk, redelivered == 1, queue))
            tag += 1
        self.next_tag = tag
        return out
