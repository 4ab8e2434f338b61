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
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.codec import load_properties
from ..amqp.model import Delivery, Properties, PublishOutcome
from ..amqp.names import check_name, server_name, where
from ..amqp.streams import OFFSET_HEADER, is_stream, offset_of_argument
from . import streams, trace
from .dispatch import expire_ids, limit_deliveries, queue_arguments, return_handed
from .publishing import Router, StoredBodies, dead_letter, enqueue
from .rows import auto_delete_queues, count, for_ids, queue_row, touch_queues

if TYPE_CHECKING:
    from .engine import Connection

BATCH_BYTES = 16 * 1024 * 1024  # bodies claimed at once, at most (or one message)
PEEK_BATCH = 500  # messages a peek reads at once
SHARED_PAUSE = 0.0003  # seconds a claim on a shared queue leaves the write lock to others
_READY = "FROM messages WHERE queue = ? AND owner IS NULL ORDER BY priority DESC, id LIMIT ?"
_HANDED = "FROM messages WHERE consumer = ? ORDER BY priority DESC, id LIMIT ?"
_COLUMNS = "id, expires, body, properties, exchange, routing_key, redelivered, deliveries"
_MOVED = "id, expires, NULL, properties, exchange, routing_key"  # bodies stay in SQLite
Settled = tuple[int, str, str]  # (message id, queue, consumer tag or "" for basic.get)
_HEADERS = Properties._fields.index("headers")
READ = -1  # the message id of a delivery read from a stream: nothing to settle in the store


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
    # its queue's arguments, read at the first claim (they do not change while the queue
    # lives, and the consumer goes with the queue)
    arguments: dict[str, Any] | None = None
    arguments_read: bool = False
    offset: int | None = None  # a stream reader's: the offset it reads next


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
                exclusive: bool = False, priority: int = 0, bell: str = "",
                arguments: dict[str, Any] | None = None) -> str:
        """``basic.consume``: register a consumer; its tag (server-named when empty).
        ``bell``: the doorbell to ring when messages are handed to it (``doorbell.py``).
        On a stream, a reader from ``x-stream-offset`` (default ``next``) of
        ``arguments``: manual acks and a prefetch required, as RabbitMQ requires them."""
        queue = check_name("queue", queue)
        tag = tag or server_name("amq.ctag-")
        if tag in self.consumers:
            raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        offset = None
        with self.store.transaction() as db:
            row = self.connection.require_queue(db, queue)
            if is_stream(row["arguments"]):
                offset = self._stream_start(db, queue, no_ack, arguments or {})
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
        self.consumers[tag] = _Consumer(tag, queue, no_ack, self.prefetch, cur.lastrowid,
                                        offset=offset)
        return tag

    def _stream_start(self, db: sqlite3.Connection, queue: str, no_ack: bool,
                      arguments: dict[str, Any]) -> int:
        """Where a new reader of stream ``queue`` starts, or RabbitMQ 3.10's refusal."""
        if no_ack:
            raise streams.not_for_streams("automatic acknowledgement", queue)
        if self.global_prefetch:
            raise errors.AMQPNotImplemented(f"{where('queue', queue)} does not support "
                                            "global qos")
        if not self.prefetch:
            raise errors.PreconditionFailed(
                f"consumer prefetch count is not set for '{where('queue', queue)}'")
        return streams.start(db, queue, offset_of_argument(arguments.get(OFFSET_HEADER,
                                                                         "next")))

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
        if c.offset is not None:
            return self._read(c, most, max_bytes)
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
            if rows and not c.arguments_read:
                c.arguments, c.arguments_read = queue_arguments(db, c.queue), True
            arguments = c.arguments if rows else None
            if rows:
                self._trace(db, c.queue, rows)
                count(db, c.queue, delivered=len(rows))
        if self.pause_shared and rows and not alone:
            # Consumers of a shared queue take turns at the store's one write lock. A
            # process woken by our ring often shares our CPU (the kernel puts a woken
            # process beside its waker): a short sleep lets it ack and take what it was
            # handed now, instead of after our next message, and the next, and so on.
            time.sleep(SHARED_PAUSE)
        deliveries = self._tag(rows, c.queue, None if c.no_ack else tag, arguments)
        if not c.no_ack:
            c.unacked += len(deliveries)
        return Claim(deliveries, cut)

    def _read(self, c: _Consumer, most: int, max_bytes: int) -> Claim:
        """A stream reader's claim: read from its offset, nothing written (acks only move
        its credit, the prefetch); each delivery carries its ``x-stream-offset``."""
        assert c.offset is not None
        if self._lazy_acks:
            self.flush()
        rows, cut = streams.read(self.store, c.queue, c.offset, most, max_bytes)
        if not rows:
            if not self.store.read("SELECT 1 FROM queues WHERE name = ?", (c.queue,)):
                del self.consumers[c.tag]
                raise errors.ConsumerCancelled(
                    f"the broker cancelled the consumer: queue '{c.queue}' was deleted")
            return Claim([], False)
        c.offset = rows[-1][0] + 1
        # Each delivery's properties are its message's with the offset header added: the
        # tuples are built whole (a NamedTuple's _replace per message costs more than the
        # read), from the parts before and after the headers, once per properties text.
        parts: dict[str | None, tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...]]] = {}
        new, props_type, delivery_type = tuple.__new__, Properties, Delivery
        out, tag, now, unacked, queue = [], self.next_tag, time.time(), self.unacked, c.queue
        for offset, exchange, routing_key, props, body in rows:
            part = parts.get(props)
            if part is None:
                p = load_properties(props)
                part = parts[props] = (p[:_HEADERS], p.headers or {}, p[_HEADERS + 1:])
            before, headers, after = part
            p = new(props_type, before + ({**headers, OFFSET_HEADER: offset} if headers
                                          else {OFFSET_HEADER: offset},) + after)
            out.append(new(delivery_type, (tag, body, p, exchange, routing_key, False, queue,
                                           now)))
            tag += 1
        unacked.update(dict.fromkeys(range(self.next_tag, tag), (READ, queue, c.tag)))
        self.next_tag = tag
        c.unacked += len(out)
        return Claim(out, cut)

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
            row = self.connection.require_queue(db, queue)
            if is_stream(row["arguments"]):
                raise streams.not_for_streams("basic.get", queue)
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), queue))
            rows, _cut = self._claim(queue, 1, no_ack)
            arguments = queue_arguments(db, queue) if rows else None
            if rows:
                self._trace(db, queue, rows)
                count(db, queue, delivered=len(rows))
            left = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL",
                              (queue,)).fetchone()[0]
        deliveries = self._tag(rows, queue, None if no_ack else "", arguments)
        return (deliveries[0] if deliveries else None), left

    # --- peek (amq peek) ------------------------------------------------------------------

    def peek(self, queue: str, most: int | None) -> Generator[list[Delivery], None, None]:
        """The ready messages of a queue in delivery order, read without changing anything
        (no claim, no redelivered flag, no expiry run: expired ones are skipped): at most
        ``most`` (None: all) of those it holds when the peek starts, in batches of at most
        ``PEEK_BATCH`` messages or ``BATCH_BYTES`` of bodies (or one). Delivery tags are 0;
        a message taken by a consumer since the peek started is still shown, one deleted
        is not."""
        queue = check_name("queue", queue)
        with self.store.transaction() as db:  # no write: a consistent look at the queue
            self.connection.require_queue(db, queue)
            sizes = db.execute(
                "SELECT id, length(body) FROM messages WHERE queue = ? AND owner IS NULL "
                "AND (expires IS NULL OR expires > ?) ORDER BY priority DESC, id LIMIT ?",
                (queue, time.time(), -1 if most is None else most)).fetchall()
            arguments = queue_arguments(db, queue) or {}
        counted = arguments.get("x-queue-type") == "quorum"
        start = 0
        while start < len(sizes):
            end, total = start + 1, sizes[start][1]
            while end < len(sizes) and end - start < PEEK_BATCH and \
                    total + sizes[end][1] <= BATCH_BYTES:
                total += sizes[end][1]
                end += 1
            ids = [mid for mid, _n in sizes[start:end]]
            start = end
            yield self._peeked(queue, ids, counted)

    def _peeked(self, queue: str, ids: list[int], counted: bool) -> list[Delivery]:
        rows = {r[0]: r for r in self.store.read(
            "SELECT id, body, properties, exchange, routing_key, redelivered, deliveries "
            f"FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)}
        out = []
        for mid in ids:
            row = rows.get(mid)
            if row is None:
                continue  # consumed (and acknowledged) since the peek started
            _mid, body, props, exchange, rk, redelivered, deliveries = row
            p = load_properties(props)
            if counted and deliveries:
                p = p._replace(headers={**(p.headers or {}), "x-delivery-count": deliveries})
            out.append(Delivery(0, body, p, exchange, rk, redelivered == 1, queue))
        return out

    # --- move (amq move: out of one queue and into others, in one transaction) ----------

    def move(self, queue: str, most: int, exchange: str,
             routing_key: str | None) -> list[PublishOutcome]:
        """Take up to ``most`` ready messages from the head of ``queue`` (``BATCH_BYTES``
        of bodies, or one) and publish each to ``exchange`` with ``routing_key`` (None:
        its own), as ``basic.get`` then a mandatory, confirmed publish then an ack would,
        but in one transaction: the routed ones leave ``queue``, the others (unroutable,
        refused) stay where they were, untouched. One outcome per message, in queue order
        (``[]``: none ready). Whenever the process dies, each message is in one place or
        the other: never lost, never in both."""
        queue, exchange = check_name("queue", queue), check_name("exchange", exchange)
        broker = self.connection.broker
        with self.store.transaction() as db:
            self.connection.require_queue(db, queue)
            router = Router(db, exchange, routes=broker.routes)  # 404, 403: nothing written
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), queue))
            tracing = broker.tracing(db)  # the firehose's copies need the whole rows
            rows, _cut = self._head(db, queue, most, BATCH_BYTES,
                                    _COLUMNS if tracing else _MOVED)
            if not rows:
                return []
            groups = _groups(db, rows, routing_key, tracing)
            outcomes = enqueue(db, self.store, router, groups)
            routed = [r[0] for r in rows]
            if outcomes.count(PublishOutcome.ROUTED) < len(outcomes):
                routed = [mid for mid, o in zip(routed, outcomes, strict=True)
                          if o is PublishOutcome.ROUTED]
            if routed:
                for_ids(db, "DELETE FROM messages WHERE owner IS NULL AND", (), routed)
            if tracing:
                self._trace(db, queue, rows)
                trace.published(db, self.store, broker.routes, exchange, groups, router,
                                self.connection.name, self.number)
        return outcomes

    # --- acknowledgements ---------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool) -> list[Settled]:
        """Forget the deliveries a tag (and ``multiple``) covers, or 406."""
        if multiple and (tag == 0 or tag >= self.next_tag - 1):
            held = list(self.unacked.values())  # all of them: the usual batch ack
            self.unacked.clear()
            self._uncount(held)
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
        self._uncount(settled)
        return settled

    def _uncount(self, settled: list[Settled]) -> None:
        consumers = self.consumers
        for _mid, _q, tag in settled:  # a loop: a Counter costs more for the one of an ack
            c = consumers.get(tag)
            if c is not None:
                c.unacked -= 1

    def _release(self, db: sqlite3.Connection, settled: list[Settled],
                 requeue: bool, dead_letter: bool = False) -> None:
        """Delete (ack; reject without requeue, dead-lettering with ``dead_letter``) or
        requeue messages this channel held; their consumers have room again (stream
        readers' deliveries are only counted off)."""
        settled = [s for s in settled if s[0] != READ]
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
        close: until then a crash redelivers the messages, it never loses them. An ack of
        what a stream reader read only gives it credit: nothing to write."""
        settled = self._settle(tag, multiple)
        if settled and (settled[0][0] == READ or settled[-1][0] == READ):
            settled = [s for s in settled if s[0] != READ]
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
        read = next((q for mid, q, _c in settled if mid == READ), None)
        if read is not None:
            raise streams.not_for_streams("basic.nack and basic.reject", read)
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

    def _trace(self, db: sqlite3.Connection, queue: str, rows: list[tuple[Any, ...]]) -> None:
        """The firehose's copies of deliveries, when tracing is on (``trace.py``)."""
        broker = self.connection.broker
        if broker.tracing(db):
            trace.delivered(db, self.store, broker.routes, queue, rows, self.connection.name,
                            self.number)

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

    def _head(self, db: sqlite3.Connection, queue: str, most: int, max_bytes: int,
              columns: str = _COLUMNS) -> tuple[list[tuple[Any, ...]], bool]:
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
        return db.execute(f"SELECT {columns} {_READY}", (queue, fit)).fetchall(), \
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
        now = time.time()
        for mid, _expires, body, props, exchange, rk, redelivered, deliveries in rows:
            if consumer is not None:
                unacked[tag] = (mid, queue, consumer)
            p = props_cache.get(props)
            if p is None:
                p = props_cache[props] = load_properties(props)
            if counted and deliveries:
                p = p._replace(headers={**(p.headers or {}), "x-delivery-count": deliveries})
            out.append(Delivery(tag, body, p, exchange, rk, redelivered == 1, queue, now))
            tag += 1
        self.next_tag = tag
        return out


def _groups(db: sqlite3.Connection, rows: list[tuple[Any, ...]], routing_key: str | None,
            with_bodies: bool) -> list[tuple[str, Properties, Sequence[bytes]]]:
    """Rows of a queue's head as runs of bodies sharing a routing key (``routing_key``,
    or each row's own) and stored properties, for ``enqueue`` to route each run once:
    the bodies read (``with_bodies``), else left in the store (``StoredBodies``)."""
    runs: list[tuple[str, Properties, list[Any]]] = []
    loaded: dict[str | None, Properties] = {}
    last: tuple[str, str | None] | None = None
    body = 2 if with_bodies else 0  # _COLUMNS' body, or _MOVED's id
    for row in rows:  # id, expires, body, properties, exchange, routing_key, ...
        key = routing_key if routing_key is not None else row[5]
        if (key, row[3]) != last:
            last = (key, row[3])
            props = loaded.get(row[3])
            if props is None:
                props = loaded[row[3]] = load_properties(row[3])
            runs.append((key, props, []))
        runs[-1][2].append(row[body])
    if with_bodies:
        return list(runs)
    return [(key, props, StoredBodies(db, ids)) for key, props, ids in runs]
