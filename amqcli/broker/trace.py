"""The firehose: while tracing is on (``amq broker trace on``), every publish and every
delivery is copied to the topic exchange ``amq.rabbitmq.trace``, as RabbitMQ's
``rabbit_trace`` does: routing key ``publish.EXCHANGE`` or ``deliver.QUEUE``, the message's
body, and headers ``exchange_name``, ``routing_keys``, ``properties`` (a table), ``node``,
then for a publish ``vhost``, ``connection``, ``channel``, ``user``, ``routed_queues``, for
a delivery ``redelivered`` (0 or 1), ``vhost``, ``connection``, ``channel``, ``user``.
Messages of the trace exchange itself are never traced (a tap of it would feed itself).

The switch is a row of ``meta`` (``trace``); each process reads it at most once a second
(``Switch``), so turning it on takes effect everywhere within a second. The copies are
written in the transaction of the publish or the claim they trace.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..amqp.codec import load_properties
from ..amqp.model import Properties
from .publishing import Group, Router, Routes, enqueue

if TYPE_CHECKING:
    from .store import Store

TRACE_EXCHANGE = "amq.rabbitmq.trace"
LOOK_EVERY = 1.0  # seconds a process trusts what it read of the switch
NODE = f"amq@{os.uname().nodename}"  # the host name, without importing socket (start-up)
USER = "guest"  # the local broker's CLI has no users; the server's are its own


def set_tracing(db: sqlite3.Connection, on: bool) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES ('trace', ?) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (int(on),))


def tracing(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT value FROM meta WHERE key = 'trace'").fetchone()
    return bool(row and row[0])


class Switch:
    """Whether tracing is on, as this process last read it (within ``LOOK_EVERY``)."""

    def __init__(self) -> None:
        self.on = False
        self.read_at = float("-inf")

    def __call__(self, db: sqlite3.Connection) -> bool:
        now = time.monotonic()
        if now - self.read_at > LOOK_EVERY:
            self.on, self.read_at = tracing(db), now
        return self.on

    def forget(self) -> None:
        self.read_at = float("-inf")


def _common(exchange: str, keys: list[str], props: Properties) -> dict[str, Any]:
    return {"exchange_name": exchange, "routing_keys": keys,
            "properties": props.as_dict(), "node": NODE}


def _who(connection: str, channel: int) -> dict[str, Any]:
    return {"vhost": "/", "connection": connection or f"amq[{os.getpid()}]",
            "channel": channel, "user": USER}


def published(db: sqlite3.Connection, store: Store, routes: Routes, exchange: str,
              groups: Sequence[Group], router: Router, connection: str,
              channel: int) -> None:
    """Copies of a client's publish (``groups`` to ``exchange``) into the trace exchange."""
    if exchange == TRACE_EXCHANGE:
        return
    from ..amqp.routing import routing_keys  # here: loaded only while tracing
    copies: list[Group] = []
    for key, props, bodies in groups:
        headers = {**_common(exchange, routing_keys(key, props.headers), props),
                   **_who(connection, channel),
                   "routed_queues": router.queues(key, props.headers)}
        copies.append((f"publish.{exchange}", Properties(headers=headers), bodies))
    _copy(db, store, routes, copies)


def delivered(db: sqlite3.Connection, store: Store, routes: Routes, queue: str,
              rows: Sequence[tuple[Any, ...]], connection: str, channel: int) -> None:
    """Copies of claimed rows (``channel._COLUMNS``) into the trace exchange."""
    copies: list[Group] = []
    for _mid, _expires, body, props, exchange, key, redelivered, _n in rows:
        if exchange == TRACE_EXCHANGE:
            continue
        p = load_properties(props)
        headers = {**_common(exchange, [key], p), "redelivered": int(bool(redelivered)),
                   **_who(connection, channel)}
        copies.append((f"deliver.{queue}", Properties(headers=headers), [body]))
    if copies:
        _copy(db, store, routes, copies)


def _copy(db: sqlite3.Connection, store: Store, routes: Routes, copies: list[Group]) -> None:
    router = Router(db, TRACE_EXCHANGE, checked=False, routes=routes)
    if not router.missing:
        enqueue(db, store, router, copies)
