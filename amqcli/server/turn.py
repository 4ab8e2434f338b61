"""One store transaction per turn of the event loop, with the output held until it commits.

Everything the server does to the store while handling the reads of one loop turn
(publishes, acks, declares, on every connection) and the delivery pass that follows goes
into one transaction: one commit instead of one per operation, which is most of the cost
of a message at low rates. The turn ends with a callback scheduled when it began; that
callback runs the delivery pass if one was asked for, commits, and only then writes what
the turn produced to the sockets, so that no client hears of a publish, an ack or a
delivery the store might still lose (a confirm is sent after the commit, never before).

Acknowledgements need no reply, so a read that holds nothing but ``basic.ack`` frames opens
no turn: its acks wait (``defer_acks``) for the next turn that commits anyway, a publish's
as a rule, or at most ``ACKS_WITHIN`` seconds (a turn of their own). One commit less per
message for a consumer that acks each one; a crash meanwhile redelivers them, never loses
them. A channel whose consumer was full writes its acks at once (its room is news).

If something other than an AMQP error went wrong in the turn (a bug, a failing store),
the transaction is rolled back and the connections that took part are dropped: their
in-memory state no longer matches the store, and dropping them requeues what they held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

    from ..broker.store import Store
    from .connection import AMQPConnection
    from .frames import Part

log = logging.getLogger("amq.server")

ACKS_WITHIN = 0.005  # seconds that deferred acks wait for a turn, at most


class Turn:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.on_pass: Callable[[], None] = lambda: None  # the dispatcher's delivery pass
        self._open: AbstractContextManager[sqlite3.Connection] | None = None
        self._scheduled = False
        self._pass_wanted = False
        self._failed: BaseException | None = None
        self.held: dict[AMQPConnection, list[Part]] = {}
        self.large: set[AMQPConnection] = set()  # held output with large bodies in it
        self.involved: set[AMQPConnection] = set()
        self._acks: set[AMQPConnection] = set()  # connections with deferred acks
        self._acks_timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def active(self) -> bool:
        return self._open is not None

    def begin(self, conn: AMQPConnection | None = None) -> None:
        """Before store work: open the turn's transaction if it is not open yet."""
        if conn is not None:
            self.involved.add(conn)
        if self._open is None and not self._closed:
            self._begin()
            self._schedule()
            self._write_acks()  # what this turn does sees them

    def defer_acks(self, conn: AMQPConnection) -> None:
        """``conn`` has acks to write: in this turn if one is open, else in the next one,
        within ``ACKS_WITHIN`` seconds."""
        self._acks.add(conn)
        if self._open is None and self._acks_timer is None and not self._closed:
            self._acks_timer = asyncio.get_running_loop().call_later(
                ACKS_WITHIN, self._acks_due)

    def _acks_due(self) -> None:
        self._acks_timer = None
        if self._acks:
            self.begin()

    def _write_acks(self) -> None:
        while self._acks and self._open is not None:
            conn = self._acks.pop()
            self.involved.add(conn)
            try:
                conn.write_acks()
            except Exception as err:  # noqa: BLE001 - the store failed: roll the turn back
                self.fail(err)

    def want_pass(self) -> None:
        """Ask for a delivery pass at the end of this turn (or of the next one)."""
        self._pass_wanted = True
        self._schedule()

    def hold(self, conn: AMQPConnection, data: bytes) -> bool:
        """Keep output for after the commit; False when no transaction is open."""
        if self._open is None:
            return False
        self.held.setdefault(conn, []).append(data)
        return True

    def hold_parts(self, conn: AMQPConnection, parts: list[Part], large: bool) -> bool:
        """``hold`` for output in pieces; ``large`` when a piece is a large body's view,
        written as it is rather than copied into one buffer."""
        if self._open is None:
            return False
        self.held.setdefault(conn, []).extend(parts)
        if large:
            self.large.add(conn)
        return True

    def fail(self, err: BaseException) -> None:
        """Something went wrong mid-turn: roll the turn back when it ends."""
        if self._open is not None and self._failed is None:
            self._failed = err

    # --- the end of a turn ------------------------------------------------------------

    def close(self) -> None:
        """The server is stopping: end the open turn now (with the acks still deferred),
        start no other."""
        self._pass_wanted = False
        if self._acks_timer is not None:
            self._acks_timer.cancel()
            self._acks_timer = None
        if self._acks and self._open is None:
            self._begin()
        self._write_acks()
        self._commit()
        self._closed = True

    def _schedule(self) -> None:
        if not self._scheduled and not self._closed:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._end)

    def _begin(self) -> None:
        opened = self.store.transaction()
        opened.__enter__()
        self._open = opened

    def _end(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        self._write_acks()
        if self._pass_wanted:
            self._pass_wanted = False
            if self._open is None:
                self._begin()
            self.on_pass()  # may want another pass: that one ends the next turn
        self._commit()

    def _commit(self) -> None:
        opened, self._open = self._open, None
        held, self.held = self.held, {}
        large, self.large = self.large, set()
        involved, self.involved = self.involved, set()
        failed, self._failed = self._failed, None
        if opened is None:
            return
        try:
            if failed is None:
                opened.__exit__(None, None, None)
            else:
                opened.__exit__(type(failed), failed, failed.__traceback__)
        except BaseException as err:
            if err is not failed:
                log.error("committing to the store failed", exc_info=err)
            failed = failed or err
        if failed is not None:
            for conn in involved | set(held):
                conn.abandon()
            return
        for conn, parts in held.items():
            if conn in large:
                conn.send_parts(parts)
            else:
                conn.send_held(b"".join(parts))
