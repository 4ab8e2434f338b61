"""The local broker's streams: append-only logs in the store, read again from any offset.

A stream queue's messages are stored in chunks, as RabbitMQ stores them: each publish
batch (in runs of at most ``CHUNK_BYTES``) is one row of ``stream_chunks``, keyed by
(queue, first offset), holding its bodies one after another and their sizes; the offsets
are numbered from 0 as RabbitMQ numbers them, and reading removes nothing. One row per
chunk rather than per message is what makes appends and reads fast (SQLite's cost is
per row). ``streams.last_chunk`` is where ``last`` starts. Times only grow along a
stream (a clock stepping back writes the time before it again); an index of chunks by
time finds a moment: neither an offset nor a time scans.

Retention is RabbitMQ's: the log is cut into segments of ``x-stream-max-segment-size-bytes``
(``stream_segments``), and when an append leaves more than ``x-max-length-bytes`` kept,
or segments older than ``x-max-age``, whole segments go, oldest first, never the open one:
offsets never move. Readers are rows of ``consumers`` like any consumer (counted, released
when their process dies); an append rings their doorbells after its commit.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.names import where
from ..amqp.streams import Limits, Offset
from .rows import literal

if TYPE_CHECKING:
    from .store import Store

CHUNK_BYTES = 1 << 20  # bodies in one chunk, at most (or one body)
READ_CHUNKS = 16  # chunks a read takes at once

assert array("I").itemsize == 4  # the sizes of a chunk's bodies: 4 bytes each


def not_for_streams(what: str, queue: str) -> errors.BrokerError:
    """RabbitMQ 3.10's 540 for what a stream does not do (get, purge, nack, no-ack)."""
    return errors.AMQPNotImplemented(
        f"{what} not supported by stream queues {where('queue', queue)}")


class State(NamedTuple):
    """A stream's counts (``amq list queues``)."""

    messages: int
    bytes: int
    first: int  # the oldest offset kept
    next: int  # the offset the next message gets


def create(db: sqlite3.Connection, queue: str) -> None:
    db.execute("INSERT OR IGNORE INTO streams (queue) VALUES (?)", (queue,))


def state(db: sqlite3.Connection, queue: str) -> State | None:
    row = db.execute("SELECT first_offset, next_offset, bytes FROM streams WHERE queue = ?",
                     (queue,)).fetchone()
    if row is None:
        return None
    first, nxt, size = row
    return State(nxt - first, size, first, nxt)


def append(db: sqlite3.Connection, store: Store, queue: str, arguments: dict[str, Any],
           exchange: str, routing_key: str, properties: str | None,
           bodies: Sequence[bytes], now: float) -> None:
    """Append one publish batch (chunks of at most ``CHUNK_BYTES``); apply retention;
    ring the readers."""
    row = db.execute("SELECT next_offset, last_ts FROM streams WHERE queue = ?",
                     (queue,)).fetchone()
    if row is None:
        create(db, queue)
        row = (0, 0.0)
    first, last_ts = row
    ts = max(now, last_ts)
    limits = Limits.of(arguments)
    offset, chunks = first, []
    for part in _chunks(bodies):
        chunks.append((offset, len(part), array("I", map(len, part)).tobytes(),
                       b"".join(part)))
        offset += len(part)
    shared = ", ".join(literal(v) for v in (queue, ts, exchange, routing_key, properties))
    db.executemany("INSERT INTO stream_chunks (first_offset, count, sizes, bodies, queue, ts, "
                   f"exchange, routing_key, properties) VALUES (?, ?, ?, ?, {shared})", chunks)
    _segment(db, queue, limits.segment_bytes, [(c[0], c[1], len(c[3])) for c in chunks], ts)
    db.execute("UPDATE streams SET next_offset = ?, last_chunk = ?, last_ts = ?, "
               "bytes = bytes + ? WHERE queue = ?",
               (offset, chunks[-1][0], ts, sum(len(c[3]) for c in chunks), queue))
    if limits.max_bytes is not None or limits.max_age is not None:
        retain(db, queue, limits, ts)
    for (bell,) in db.execute("SELECT DISTINCT bell FROM consumers WHERE queue = ?",
                              (queue,)):
        store.to_ring.add(bell)


def _chunks(bodies: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    """The bodies in runs of at most ``CHUNK_BYTES`` (or one body)."""
    start, used = 0, 0
    for i, body in enumerate(bodies):
        if used and used + len(body) > CHUNK_BYTES:
            yield bodies[start:i]
            start, used = i, 0
        used += len(body)
    if start < len(bodies):
        yield bodies[start:]


def _segment(db: sqlite3.Connection, queue: str, most: int,
             chunks: list[tuple[int, int, int]], ts: float) -> None:
    """Count chunks (first offset, messages, bytes) into the open segment, rolling to a
    new one when it is full: a chunk is never split, as in RabbitMQ."""
    seg = db.execute("SELECT first_offset, bytes FROM stream_segments WHERE queue = ? "
                     "ORDER BY first_offset DESC LIMIT 1", (queue,)).fetchone()
    start, used = seg if seg is not None else (chunks[0][0], 0)
    rows: dict[int, list[int]] = {}  # first offset -> [bytes, next offset]
    for first, count, size in chunks:
        if used and used + size > most:
            start, used = first, 0
        used += size
        rows[start] = [used, first + count]
    db.executemany(
        "INSERT INTO stream_segments (queue, first_offset, next_offset, bytes, last_ts) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (queue, first_offset) DO UPDATE SET "
        "next_offset = excluded.next_offset, bytes = excluded.bytes, last_ts = excluded.last_ts",
        [(queue, s, nxt, n, ts) for s, (n, nxt) in rows.items()])


def retain(db: sqlite3.Connection, queue: str, limits: Limits, now: float) -> None:
    """Drop whole segments, oldest first and never the open one, while the stream keeps
    more than ``x-max-length-bytes`` or its oldest segment is older than ``x-max-age``."""
    segments = db.execute("SELECT first_offset, next_offset, bytes, last_ts FROM "
                          "stream_segments WHERE queue = ? ORDER BY first_offset",
                          (queue,)).fetchall()
    total = sum(s[2] for s in segments)
    for start, nxt, size, last_ts in segments[:-1]:
        too_big = limits.max_bytes is not None and total > limits.max_bytes
        too_old = limits.max_age is not None and last_ts < now - limits.max_age
        if not (too_big or too_old):
            break
        db.execute("DELETE FROM stream_chunks WHERE queue = ? AND first_offset >= ? AND "
                   "first_offset < ?", (queue, start, nxt))
        db.execute("DELETE FROM stream_segments WHERE queue = ? AND first_offset = ?",
                   (queue, start))
        total -= size
        db.execute("UPDATE streams SET first_offset = ?, bytes = bytes - ? WHERE queue = ?",
                   (nxt, size, queue))


# --- reading -----------------------------------------------------------------------------

def start(db: sqlite3.Connection, queue: str, offset: Offset) -> int:
    """The offset a reader starting at ``offset`` reads first."""
    row = db.execute("SELECT first_offset, next_offset, last_chunk FROM streams "
                     "WHERE queue = ?", (queue,)).fetchone()
    first, nxt, chunk = row if row is not None else (0, 0, 0)
    if offset.kind == "first":
        return first
    if offset.kind == "last":
        return max(first, chunk) if nxt > first else nxt
    if offset.kind == "next":
        return nxt
    if offset.kind == "offset":
        return max(first, min(int(offset.value), nxt))
    return max(first, _at_time(db, queue, nxt, offset.value))


def _at_time(db: sqlite3.Connection, queue: str, high: int, when: float) -> int:
    """The first offset of the first chunk written at ``when`` or later (``high``, the
    next offset, if none), through the index by time."""
    found = db.execute("SELECT first_offset FROM stream_chunks WHERE queue = ? AND ts >= ? "
                       "ORDER BY ts, first_offset LIMIT 1", (queue, when)).fetchone()
    return high if found is None else found[0]


# A message read from a stream: (offset, exchange, routing key, properties JSON, body).
Read = tuple[int, str, str, "str | None", bytes]
_FROM = ("SELECT first_offset, count, exchange, routing_key, properties, sizes, bodies "
         "FROM stream_chunks WHERE queue = ? AND first_offset ")


def read(store: Store, queue: str, offset: int, most: int,
         max_bytes: int) -> tuple[list[Read], bool]:
    """Up to ``most`` messages from ``offset`` on (those retention dropped are skipped),
    their bodies at most ``max_bytes`` in all (always one); and whether that bound left
    some out. The chunk holding ``offset`` first, then those after it."""
    chunks = store.read(_FROM + "<= ? ORDER BY first_offset DESC LIMIT 1", (queue, offset))
    out: list[Read] = []
    total = 0
    while True:
        for first, _count, exchange, routing_key, props, sizes, bodies in chunks:
            lengths = array("I")
            lengths.frombytes(sizes)
            start = 0
            for n, size in enumerate(lengths, first):
                end = start + size
                if n >= offset:
                    total += size
                    if out and total > max_bytes:
                        return out, True
                    out.append((n, exchange, routing_key, props, bodies[start:end]))
                    if len(out) >= most:
                        return out, False
                start = end
            offset = max(offset, first + len(lengths))
        chunks = store.read(_FROM + ">= ? ORDER BY first_offset LIMIT ?",
                            (queue, offset, READ_CHUNKS))
        if not chunks:
            return out, False


def end(store: Store, queue: str) -> int:
    """The offset the next message will get: where a read ``--to-end`` stops."""
    rows = store.read("SELECT next_offset FROM streams WHERE queue = ?", (queue,))
    return rows[0][0] if rows else 0
