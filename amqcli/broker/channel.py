"""A channel of a local-broker connection: consumers, delivery tags, acknowledgements.

Delivery tags are per channel and start at 1; an unacknowledged message is a row whose
``owner`` is this connection, so the connection's close (or its process's death) puts it
back in its queue with ``redelivered`` set. Prefetch limits are kept here, per consumer
(``basic.qos`` with ``global=false``) and per channel (``global=true``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import errors
from .codec import load_properties
from .engine import auto_delete_queues, check_name, server_name, where
from .model import Delivery

if TYPE_CHECKING:
    from .engine import Connection


@dataclass(slots=True)
class _Consumer:
    tag: str
    queue: str
    no_ack: bool
    prefetch: int  # 0: unlimited
    unacked: int = 0


@dataclass(slots=True)
class _Unacked:
    message_id: int
    consumer: str | None  # None for basic.get


class Channel:
    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.store = connection.store
        self.number = number
        self.closed = False
        self.next_tag = 1
        self.unacked: OrderedDict[int, _Unacked] = OrderedDict()
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

    def deliver(self, tag: str, most: int) -> list[Delivery]:
        """Claim up to ``most`` ready messages for a consumer, within its prefetch.

        Raises ``ConsumerCancelled`` when the consumer's queue is gone (the broker cancelled
        it, as RabbitMQ does when a queue is deleted).
        """
        c = self.consumers[tag]
        room = self.capacity(tag)
        if room is not None:
            most = min(most, room)
        if most <= 0:
            return []
        rows = self._claim(c.queue, most, c.no_ack)
        if not rows and not self.store.read(
                "SELECT 1 FROM consumers WHERE connection = ? AND channel = ? AND tag = ?",
                (self.connection.id, self.number, tag)):
            del self.consumers[tag]
            raise errors.ConsumerCancelled(
                f"the broker cancelled the consumer: queue '{c.queue}' was deleted")
        deliveries = self._tag(rows, c.queue, None if c.no_ack else tag)
        if not c.no_ack:
            c.unacked += len(deliveries)
        return deliveries

    # --- basic.get ----------------------------------------------------------------------

    def get(self, queue: str, *, no_ack: bool = False) -> tuple[Delivery | None, int]:
        """``basic.get``: one message or None, and how many messages are left ready."""
        queue = check_name("queue", queue)
        with self.store.transaction() as db:
            self.connection.require_queue(db, queue)
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), queue))
            rows = self._claim(queue, 1, no_ack)
            left = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL",
                              (queue,)).fetchone()[0]
        deliveries = self._tag(rows, queue, None if no_ack else "")
        return (deliveries[0] if deliveries else None), left

    # --- acknowledgements ---------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool) -> list[_Unacked]:
        """Remove and return the deliveries a tag (and ``multiple``) covers, or 406."""
        if multiple:
            tags = [t for t in self.unacked if t <= tag or tag == 0]
        elif tag in self.unacked:
            tags = [tag]
        else:
            tags = []
        if not tags and not (multiple and tag == 0):
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        settled = [self.unacked.pop(t) for t in tags]
        for u in settled:
            c = self.consumers.get(u.consumer or "")
            if c is not None:
                c.unacked -= 1
        return settled

    def ack(self, tag: int, multiple: bool = False) -> None:
        settled = self._settle(tag, multiple)
        if settled:
            with self.store.transaction() as db:
                db.executemany("DELETE FROM messages WHERE id = ? AND owner = ?",
                               [(u.message_id, self.connection.id) for u in settled])

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        settled = self._settle(tag, multiple)
        if not settled:
            return
        with self.store.transaction() as db:
            params = [(u.message_id, self.connection.id) for u in settled]
            if requeue:
                db.executemany("UPDATE messages SET owner = NULL, redelivered = 1 "
                               "WHERE id = ? AND owner = ?", params)
            else:
                db.executemany("DELETE FROM messages WHERE id = ? AND owner = ?", params)

    def reject(self, tag: int, requeue: bool = True) -> None:
        self.nack(tag, False, requeue)

    def recover(self, requeue: bool = True) -> None:
        if not requeue:
            raise errors.NotImplemented_("requeue=false")
        if self.unacked:
            self.nack(0, True, True)

    def close(self) -> None:
        """Cancel the channel's consumers and requeue its unacked messages."""
        if self.closed:
            return
        self.closed = True
        ids = [(u.message_id, self.connection.id) for u in self.unacked.values()]
        self.unacked.clear()
        with self.store.transaction() as db:
            db.executemany("UPDATE messages SET owner = NULL, redelivered = 1 "
                           "WHERE id = ? AND owner = ?", ids)
            queues = [c.queue for c in self.consumers.values()]
            db.execute("DELETE FROM consumers WHERE connection = ? AND channel = ?",
                       (self.connection.id, self.number))
            auto_delete_queues(db, queues)
        self.consumers.clear()

    # --- internals ----------------------------------------------------------------------

    def _claim(self, queue: str, most: int, no_ack: bool) -> list[tuple]:
        """Take up to ``most`` ready messages of a queue, in delivery order."""
        now = time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM messages WHERE queue = ? AND owner IS NULL "
                       "AND expires IS NOT NULL AND expires <= ?", (queue, now))
            pick = ("SELECT id FROM messages WHERE queue = ? AND owner IS NULL "
                    "ORDER BY priority DESC, id LIMIT ?")
            returning = " RETURNING id, priority, body, properties, exchange, routing_key, " \
                        "redelivered"
            if no_ack:
                sql = f"DELETE FROM messages WHERE id IN ({pick})" + returning
                rows = db.execute(sql, (queue, most)).fetchall()
            else:
                sql = f"UPDATE messages SET owner = ? WHERE id IN ({pick})" + returning
                rows = db.execute(sql, (self.connection.id, queue, most)).fetchall()
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows

    def _tag(self, rows: list[tuple], queue: str, consumer: str | None) -> list[Delivery]:
        out = []
        props_cache: dict[str | None, object] = {}
        for mid, _prio, body, props, exchange, rk, redelivered in rows:
            tag = self.next_tag
            self.next_tag += 1
            if consumer is not None:
                self.unacked[tag] = _Unacked(mid, consumer or None)
            p = props_cache.get(props)
            if p is None:
                p = props_cache[props] = load_properties(props)
            out.append(Delivery(tag, body, p, exchange, rk, bool(redelivered), queue))  # type: ignore[arg-type]
        return out


