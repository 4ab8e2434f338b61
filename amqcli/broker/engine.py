"""The local broker: RabbitMQ's semantics over the shared SQLite store.

``Broker`` opens a store; ``Broker.connect()`` gives a ``Connection``, the equivalent of
one AMQP connection: it owns its exclusive queues and (through its channels, see
``channel.py``) its consumers and unacknowledged deliveries. A connection of a process
that died (kill -9 included) is cleaned up by the next process that sweeps: its unacked
messages go back to their queues flagged redelivered, its exclusive queues are deleted.

A rule the AMQP server relies on: a method that raises a ``BrokerError`` does so before
it has written anything, so a failed call leaves the store (and the caller's enclosing
transaction) as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import errors
from ..amqp.model import (
    Binding,
    DeclareOk,
    DestinationType,
    Exchange,
    ExchangeType,
    Message,
    Properties,
    PublishOutcome,
    Queue,
)
from ..amqp.names import check_name, server_name, where
from ..amqp.streams import check_stream_declare, is_stream
from . import process, streams, trace
from .dispatch import dispatch, limit_deliveries
from .publishing import MAX_MESSAGE_SIZE, Router, check_size, enqueue, routes_of
from .rows import (
    auto_delete_exchanges,
    auto_delete_queues,
    bump_bindings_version,
    counts,
    delete_exchange_rows,
    delete_queue_rows,
    dump_table,
    get_exchange,
    load_table,
    queue_row,
    touch_queues,
)
from .store import SWEEPER, Store

if TYPE_CHECKING:
    from ..amqp import routing
    from .channel import Channel
    from .doorbell import Bell

SWEEP_INTERVAL = 1.0  # seconds between checks for dead connections, by the sweeper


def locked(name: str) -> errors.BrokerError:
    return errors.ResourceLocked(
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be "
        "originally declared on another connection or the exclusive property value does not "
        "match that of the original declaration.")


def identical(a: Any, b: Any) -> bool:
    """Equal, with the same types and the same order all the way down: Python's ``==``
    holds 1, 1.0 and True equal, {"a": 1, "b": 2} and {"b": 2, "a": 1}, Decimal("1.0")
    and Decimal("1.00"); an AMQP table does not."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(identical, a, b))
    if hasattr(a, "as_tuple"):  # a Decimal (not imported for this: start-up time)
        return bool(a.as_tuple() == b.as_tuple())
    return bool(a == b)


class Broker:
    """The local broker on one store file (``None``: in memory, for one process)."""

    def __init__(self, path: str | os.PathLike[str] | None,
                 max_message_size: int = MAX_MESSAGE_SIZE, vhost: str = "/",
                 vhost_id: int = 1) -> None:
        self.store = Store(path)
        # The vhost this store file is (``vhosts.py``): the engine's texts say '/', and
        # the edges (the server, the local backend) say this one (``BrokerError.in_vhost``).
        self.vhost, self.vhost_id = vhost, vhost_id
        # Another vhost's: whether it was deleted since (``vhosts.py``), asked while waiting
        # at most once a second, so that a waiting consumer ends as RabbitMQ's does (320).
        self.deleted: Callable[[], bool] | None = None
        self._next_vhost_check = 0.0
        self.store.on_commit = self._dispatch
        self.max_message_size = max_message_size  # larger bodies are refused with 406
        self.routes = routes_of(self.store)  # routing state kept across transactions
        self.tracing = trace.Switch()  # the firehose's switch, as last read (trace.py)
        self._last_sweep = 0.0
        self.sweeper: Bell | None = None  # held: this process runs the store's timers
        self._next_election = 0.0
        self._deadline: float | None = None  # the next expiry known to the sweeper (epoch)
        self._next_deadline = 0.0  # when to look for it again (monotonic)

    def _dispatch(self, db: sqlite3.Connection, queues: set[str]) -> None:
        for queue in queues:
            dispatch(db, self.store, queue)

    def connect(self, name: str = "", sweep: bool = True) -> Connection:
        """A new connection. ``sweep=False`` for a server opening many: it sweeps on its
        own schedule (the store's sweeper, ``timers``) instead of once per connection.

        Its row in ``connections`` is written when something first needs its id (an
        exclusive queue, a consumer, a delivery held): a connection that only publishes,
        like ``amq send``'s, writes none, and saves two transactions."""
        if sweep:
            self.sweep()
        return Connection(self, name)

    def _register(self, name: str) -> int:
        pid, started = process.identity()
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO connections (pid, started, name, created) VALUES (?, ?, ?, ?)",
                (pid, started, name, time.time()))
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

    def sweep(self) -> int:
        """Clean up after connections whose process has died (how many there were), and
        expire what is due: message TTLs at queue heads, unused x-expires queues."""
        self._last_sweep = time.monotonic()
        self.store.gone_rung = False
        rows = self.store.read("SELECT id, pid, started FROM connections")
        dead = [cid for cid, pid, started in rows if not process.alive(pid, started)]
        if dead:
            with self.store.transaction() as db:
                for cid in dead:
                    release_connection(db, self.store, cid)
        if self.store.read("SELECT 1 FROM queues WHERE expiring = 1 "
                           "OR arguments LIKE '%x-expires%' LIMIT 1"):
            from . import lifecycle  # here: a start that publishes expires nothing
            with self.store.transaction() as db:
                lifecycle.expire(db, self.store)
        return len(dead)

    def connection_rows(self) -> list[tuple[int, str, int]]:
        """The store's registered connections of live processes: (pid, name, how many
        consumers), in registration order. A process registers when it first needs to
        (a consumer, an exclusive queue, a delivery held): one that only publishes does
        not."""
        rows = self.store.read(
            "SELECT c.pid, c.started, c.name, (SELECT COUNT(*) FROM consumers k "
            "WHERE k.connection = c.id) FROM connections c ORDER BY c.id")
        return [(pid, name, consumers) for pid, started, name, consumers in rows
                if process.alive(pid, started)]

    def ready_queues(self, names: Sequence[str]) -> dict[str, bool]:
        """Of these queues, those that exist, each with whether it has ready messages (a
        stream that keeps any: its readers may be behind)."""
        found: dict[str, bool] = {}
        for i in range(0, len(names), 500):
            chunk = list(names[i:i + 500])
            found.update((name, bool(ready)) for name, ready in self.store.read(
                "SELECT name, EXISTS (SELECT 1 FROM messages m WHERE m.queue = q.name "
                "AND m.owner IS NULL) OR EXISTS (SELECT 1 FROM streams s WHERE "
                "s.queue = q.name AND s.next_offset > s.first_offset) FROM queues q "
                f"WHERE q.name IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def handed(self, bell: str) -> set[int]:
        """The consumers ringing ``bell`` that have messages handed to them, not taken."""
        return {cid for (cid,) in self.store.read(
            "SELECT id FROM consumers WHERE bell = ? AND waiting > 0", (bell,))}

    def new_bell(self) -> Bell:
        """A doorbell for a consumer of this process to sleep on (``doorbell.py``)."""
        from .doorbell import Bell
        return Bell(self.store.bell_prefix)

    def wait(self, bells: list[Bell], timeout: float | None,
             watch: int | None = None) -> set[int]:
        """Sleep until a bell rings, ``watch`` reports an error or ``timeout`` passes,
        running the store's timers meanwhile if this process is its sweeper (one per
        store: the first waiting process to claim the name; the others try again each
        ``SWEEP_INTERVAL``, and take over when it ends). The descriptors that had news."""
        from . import doorbell
        if self.deleted is not None and time.monotonic() >= self._next_vhost_check:
            self._next_vhost_check = time.monotonic() + 1.0
            if self.deleted():
                raise errors.ConnectionForced(f"vhost '{self.vhost}' is deleted")
        if self.store.gone_rung:
            self.sweep()
        limit = self.timers()
        if timeout is None or timeout > limit:
            timeout = limit
        ready = doorbell.wait([*bells, self.sweeper] if self.sweeper else bells,
                              timeout, watch)
        if self.sweeper is not None and self.sweeper.fileno() in ready:
            self._deadline = None  # rung: a deadline may have moved; look again
            self._next_deadline = 0.0
        return ready

    def timers(self) -> float:
        """Run what is due if this process is the sweeper; seconds until it next must."""
        now = time.monotonic()
        if self.sweeper is None:
            if now < self._next_election:
                return self._next_election - now
            from .doorbell import Bell
            self.sweeper = Bell.claim(self.store.bell_prefix, SWEEPER)
            self._next_election = now + SWEEP_INTERVAL
            if self.sweeper is None:
                return SWEEP_INTERVAL
            self._next_deadline = 0.0
        wall = time.time()
        due = now - self._last_sweep >= SWEEP_INTERVAL or (
            self._deadline is not None and wall >= self._deadline)
        if due:
            self.sweep()
            # The one process that runs the timers also copies the write-ahead log into
            # the store file, in a thread (``store.Checkpointer``), so that a sender or a
            # receiver seldom pays for it inside a commit.
            self.store.checkpoint()
            self._next_deadline = 0.0
        if now >= self._next_deadline:
            from .lifecycle import next_deadline
            self._deadline = next_deadline(self.store)
            self._next_deadline = now + SWEEP_INTERVAL
        left = self._last_sweep + SWEEP_INTERVAL - time.monotonic()
        if self._deadline is not None:
            left = min(left, self._deadline - time.time())
        return max(0.0, left)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.close()
            self.sweeper = None
        self.store.close()


# --- helpers on an open transaction -------------------------------------------------

def release_connection(db: sqlite3.Connection, store: Store, cid: int,
                       dead: bool = True) -> None:
    """What RabbitMQ does when a connection closes: requeue its unacked deliveries, drop its
    consumers (deleting auto-delete queues left without one) and its exclusive queues.

    A live connection closing has requeued its deliveries channel by channel, by id; for a
    dead one (``dead``), the messages it held are found by a scan. Those handed to its
    consumers and never taken go back as they were; the others are redelivered.
    """
    if dead:
        rows = db.execute(
            "UPDATE messages SET owner = NULL, "
            "redelivered = CASE WHEN consumer IS NULL THEN 1 ELSE redelivered END, "
            "deliveries = deliveries + (consumer IS NULL), consumer = NULL "
            "WHERE owner = ? RETURNING id, queue", (cid,)).fetchall()
        held = Counter(q for _id, q in rows)
        db.executemany("UPDATE queues SET unacked = max(0, unacked - ?) WHERE name = ?",
                       [(n, q) for q, n in held.items()])
        for q in held:
            store.touch(q)
        if held:
            limit_deliveries(db, store, held, [i for i, _q in rows])
    queues = [r[0] for r in db.execute(
        "SELECT queue FROM consumers WHERE connection = ?", (cid,))]
    db.execute("DELETE FROM consumers WHERE connection = ?", (cid,))
    touch_queues(db, queues)
    auto_delete_queues(db, queues)
    for q in queues:
        store.touch(q)
    for (name,) in db.execute("SELECT name FROM queues WHERE exclusive_owner = ?",
                              (cid,)).fetchall():
        delete_queue_rows(db, name)
    db.execute("DELETE FROM connections WHERE id = ?", (cid,))


class Connection:
    """One client of the local broker, as one AMQP connection: see the module docstring."""

    def __init__(self, broker: Broker, name: str = "") -> None:
        self.broker = broker
        self.store = broker.store
        self.name = name
        self._id: int | None = None  # no row yet: see Broker.connect
        self.closed = False
        self._channels: dict[int, Channel] = {}

    @property
    def id(self) -> int:
        """The connection's row id, the row written on first use."""
        if self._id is None:
            self._id = self.broker._register(self.name)
        return self._id

    # --- channels ---------------------------------------------------------------------

    def channel(self, number: int = 1) -> Channel:
        from .channel import Channel  # here: `amq send` opens no channel
        ch = self._channels.get(number)
        if ch is None or ch.closed:
            ch = self._channels[number] = Channel(self, number)
        return ch

    def close(self) -> None:
        """Close every channel (requeueing their unacked messages) and the connection."""
        if self.closed:
            return
        for ch in self._channels.values():
            ch.close()
        self.closed = True
        if self._id is not None:
            with self.store.transaction() as db:
                release_connection(db, self.store, self._id, dead=False)

    # --- queues -----------------------------------------------------------------------

    def _check_owner(self, name: str, row: dict[str, Any] | None) -> None:
        if row is not None and row["owner"] is not None and row["owner"] != self._id:
            raise locked(name)

    def require_queue(self, db: sqlite3.Connection, name: str) -> dict[str, Any]:
        row = queue_row(db, name)
        if row is None:
            raise errors.NotFound(f"no queue '{name}' in vhost '/'")
        self._check_owner(name, row)
        return row

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareOk:
        name = check_name("queue", name)
        arguments = dict(arguments or {})
        if not name and not passive:
            name = server_name("amq.gen-")
        elif not passive and name.startswith("amq."):
            raise errors.AccessRefused(
                f"queue name '{name}' contains reserved prefix 'amq.*'")
        from ..amqp import args as qargs  # before the transaction: not while holding the lock
        with self.store.transaction() as db:
            row = queue_row(db, name)
            if passive:
                self.require_queue(db, name)
            elif row is not None:
                self._check_owner(name, row)
                if (row["owner"] is not None) != exclusive:
                    raise locked(name)
                wanted = {"durable": durable and not exclusive, "auto_delete": auto_delete}
                qargs.check_queue_equivalent(name, row["arguments"], row, arguments, wanted)
            else:
                stream = is_stream(arguments)
                check = check_stream_declare if stream else \
                    qargs.validate_queue_arguments
                check(name, arguments, durable=durable, exclusive=exclusive,
                      auto_delete=auto_delete)
                if stream:
                    streams.create(db, name)
                db.execute(
                    "INSERT INTO queues (name, durable, exclusive_owner, auto_delete, "
                    "arguments, last_used) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, durable and not exclusive, self.id if exclusive else None,
                     auto_delete, dump_table(arguments), time.time()))
            db.execute("UPDATE queues SET last_used = ? WHERE name = ?", (time.time(), name))
            ready, _unacked, consumers = counts(db, name)
        return DeclareOk(name, ready, consumers)

    def ensure_queue(self, name: str) -> None:
        """Declare ``name`` with default flags unless it exists (whatever its arguments)."""
        name = check_name("queue", name)
        if self.store.read("SELECT 1 FROM queues WHERE name = ?", (name,)):
            return
        try:
            self.declare_queue(name)
        except errors.PreconditionFailed:
            pass  # declared meanwhile by another process, with other flags: use it as it is

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        name = check_name("queue", name)
        with self.store.transaction() as db:
            row = queue_row(db, name)
            if row is None:
                return 0
            self._check_owner(name, row)
            ready, _unacked, consumers = counts(db, name)
            if if_unused and consumers:
                raise errors.PreconditionFailed(f"{where('queue', name)} in use")
            if if_empty and ready:
                raise errors.PreconditionFailed(f"{where('queue', name)} not empty")
            for (bell,) in db.execute("SELECT DISTINCT bell FROM consumers WHERE queue = ?",
                                      (name,)).fetchall():
                self.store.to_ring.add(bell)  # its consumers learn they are cancelled
            return delete_queue_rows(db, name)

    def purge_queue(self, name: str) -> int:
        name = check_name("queue", name)
        with self.store.transaction() as db:
            row = self.require_queue(db, name)
            if is_stream(row["arguments"]):
                raise streams.not_for_streams("queue.purge", name)
            return db.execute("DELETE FROM messages WHERE queue = ? AND owner IS NULL",
                              (name,)).rowcount

    # --- exchanges --------------------------------------------------------------------

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        name = check_name("exchange", name)
        arguments = dict(arguments or {})
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        with self.store.transaction() as db:
            current = get_exchange(db, name)
            if passive:
                if current is None:
                    raise errors.NotFound(f"no exchange '{name}' in vhost '/'")
                return
            if type not in ExchangeType.__members__.values():
                raise errors.PreconditionFailed(f"unknown exchange type '{type}'")
            wanted = {"type": type, "durable": durable, "auto_delete": auto_delete,
                      "internal": internal, "arguments": arguments}
            if current is not None:
                have = {"type": current.type.value, "durable": current.durable,
                        "auto_delete": current.auto_delete, "internal": current.internal,
                        "arguments": current.arguments}
                from ..amqp import args as qargs
                qargs.check_exchange_equivalent(name, have, wanted)
                return
            if name.startswith("amq."):
                raise errors.AccessRefused(
                    f"exchange name '{name}' contains reserved prefix 'amq.*'")
            db.execute(
                "INSERT INTO exchanges (name, type, durable, auto_delete, internal, arguments) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, type, durable, auto_delete, internal, dump_table(arguments)))
            bump_bindings_version(db)  # a new exchange can change where messages go (an AE)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        name = check_name("exchange", name)
        if name == "":
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise errors.AccessRefused(
                f"deletion of system exchange '{name}' in vhost '/' not allowed")
        with self.store.transaction() as db:
            if get_exchange(db, name) is None:
                return
            if if_unused and db.execute("SELECT 1 FROM bindings WHERE source = ? LIMIT 1",
                                        (name,)).fetchone():
                raise errors.PreconditionFailed(f"{where('exchange', name)} in use")
            delete_exchange_rows(db, name)

    # --- bindings ---------------------------------------------------------------------

    def _binding_ends(self, db: sqlite3.Connection, source: str, destination: str,
                      dtype: DestinationType) -> Exchange:
        if source == "" or (dtype is DestinationType.EXCHANGE and destination == ""):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if dtype is DestinationType.QUEUE:
            self.require_queue(db, destination)
        elif get_exchange(db, destination) is None:
            raise errors.NotFound(f"no exchange '{destination}' in vhost '/'")
        x = get_exchange(db, source)
        if x is None:
            raise errors.NotFound(f"no exchange '{source}' in vhost '/'")
        return x

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None:
        source, destination = check_name("exchange", source), check_name("queue", destination)
        arguments = dict(arguments or {})
        with self.store.transaction() as db:
            x = self._binding_ends(db, source, destination, destination_type)
            if x.type is ExchangeType.HEADERS:
                from ..amqp import routing
                mode = arguments.get("x-match", "all")
                if mode not in routing.X_MATCH_MODES:
                    shown = mode if isinstance(mode, str) else repr(mode)
                    raise errors.PreconditionFailed(
                        f'Invalid x-match field value <<"{shown}">>; expected all, any, '
                        "all-with-x, or any-with-x")
            if db.execute(
                    "INSERT OR IGNORE INTO bindings (source, destination, destination_type, "
                    "routing_key, arguments) VALUES (?, ?, ?, ?, ?)",
                    (source, destination, destination_type.value, routing_key,
                     dump_table(arguments))).rowcount:
                bump_bindings_version(db)

    def unbind(self, source: str, destination: str, routing_key: str = "",
               arguments: dict[str, Any] | None = None,
               destination_type: DestinationType = DestinationType.QUEUE) -> None:
        """Remove a binding. As in RabbitMQ 3.10, a binding that does not exist is no
        error, even when its queue or exchanges do not exist either (clients' cleanup
        relies on it); only the default exchange (403) and, for a binding that exists,
        an exclusive queue of another connection (405) are refused."""
        source, destination = check_name("exchange", source), check_name("queue", destination)
        if source == "" or (destination_type is DestinationType.EXCHANGE and destination == ""):
            raise errors.AccessRefused("operation not permitted on the default exchange")
        key = (source, destination, destination_type.value, routing_key,
               dump_table(dict(arguments or {})))
        match = ("source = ? AND destination = ? AND destination_type = ? AND "
                 "routing_key = ? AND arguments = ?")
        with self.store.transaction() as db:
            if not db.execute(f"SELECT 1 FROM bindings WHERE {match}", key).fetchone():
                return
            if destination_type is DestinationType.QUEUE:
                self.require_queue(db, destination)
            db.execute(f"DELETE FROM bindings WHERE {match}", key)
            bump_bindings_version(db)
            auto_delete_exchanges(db, [source])

    # --- publishing -------------------------------------------------------------------

    def publish(self, exchange: str, messages: Sequence[Message]) -> list[PublishOutcome]:
        """Route and enqueue messages published to one exchange, in one transaction.

        Returns one ``PublishOutcome`` per message: ``ROUTED``, ``UNROUTABLE`` (dropped; the caller
        reports or returns it) or ``REJECTED`` (refused by a queue: a nack). Consecutive
        messages with the same routing key and equal properties are routed once, and
        stored by one statement (messages parsed one by one, from JSON lines or off the
        wire, each have properties of their own that are often equal).
        """
        groups: list[tuple[str, Properties, list[bytes]]] = []
        key: str | None = None
        props: Properties | None = None
        for m in messages:
            if m.routing_key != key or (m.properties is not props
                                        and not identical(m.properties, props)):
                key, props = m.routing_key, m.properties
                groups.append((key, props, []))
            groups[-1][2].append(m.body)
        return self._publish(exchange, groups)

    def publish_bodies(self, exchange: str, routing_key: str, properties: Properties,
                       bodies: Sequence[bytes]) -> list[PublishOutcome]:
        """``publish`` for many bodies with one routing key and one set of properties."""
        return self._publish(exchange, [(routing_key, properties, bodies)])

    def _publish(self, exchange: str,
                 groups: Sequence[tuple[str, Properties, Sequence[bytes]]]) -> list[PublishOutcome]:
        exchange = check_name("exchange", exchange)
        limit = self.broker.max_message_size
        for i, (key, props, bodies) in enumerate(groups):
            if max(map(len, bodies), default=0) > limit:  # as on RabbitMQ: those before
                n = next(j for j, body in enumerate(bodies) if len(body) > limit)  # it stand
                before = [*groups[:i], (key, props, bodies[:n])] if n else groups[:i]
                if before:
                    self._enqueue(exchange, before)
                check_size(len(bodies[n]), limit)
        return self._enqueue(exchange, groups)

    def _enqueue(self, exchange: str,
                 groups: Sequence[tuple[str, Properties, Sequence[bytes]]]) -> list[PublishOutcome]:
        with self.store.transaction() as db:
            router = Router(db, exchange, routes=self.broker.routes)
            outcomes = enqueue(db, self.store, router, groups)
            if self.broker.tracing(db):
                trace.published(db, self.store, self.broker.routes, exchange, groups, router,
                                self.name, 1)
        if self.store.gone_rung:  # handed to a consumer whose process is gone
            self.broker.sweep()
        return outcomes

    # --- listing ----------------------------------------------------------------------

    def list_queues(self) -> list[Queue]:
        self.broker.sweep()
        rows = self.store.read(
            "SELECT q.name, q.durable, q.exclusive_owner, q.auto_delete, q.arguments, "
            "(SELECT COUNT(*) FROM messages m WHERE m.queue = q.name AND m.owner IS NULL), "
            "q.unacked, "
            "(SELECT COUNT(*) FROM consumers c WHERE c.queue = q.name), "
            "s.first_offset, s.next_offset, s.bytes "
            "FROM queues q LEFT JOIN streams s ON s.queue = q.name ORDER BY q.name")
        out = []
        for n, d, o, a, args, r, u, c, first, nxt, size in rows:
            q = Queue(n, bool(d), o is not None, bool(a), load_table(args), r, u, c)
            if nxt is not None:  # a stream: its log's length, bytes and offsets
                q = q._replace(messages=nxt - first, bytes=size,
                               first_offset=first if nxt > first else None,
                               last_offset=nxt - 1 if nxt > first else None)
            out.append(q)
        return out

    def queue_type(self, name: str) -> str | None:
        """``classic``, ``quorum`` or ``stream`` (None: no such queue)."""
        rows = self.store.read("SELECT arguments FROM queues WHERE name = ?", (name,))
        if not rows:
            return None
        return str(load_table(rows[0][0]).get("x-queue-type") or "classic")

    def stream_end(self, name: str) -> int | None:
        """The offset the next message appended to stream ``name`` gets."""
        return streams.end(self.store, name)

    def queue_counters(self) -> dict[str, tuple[int, int]]:
        """Each queue's messages enqueued and delivered, in all (``amq top``'s rates)."""
        return {q: (p, d) for q, p, d in self.store.read(
            "SELECT queue, published, delivered FROM queue_stats")}

    def list_exchanges(self) -> list[Exchange]:
        rows = self.store.read(
            "SELECT name, type, durable, auto_delete, internal, arguments FROM exchanges "
            "ORDER BY name")
        return [Exchange(n, ExchangeType(t), bool(d), bool(a), bool(i), load_table(args))
                for n, t, d, a, i, args in rows]

    def list_bindings(self) -> list[Binding]:
        """Every binding, with the default exchange's implicit one to each queue first."""
        implicit = [Binding("", q, DestinationType.QUEUE, q) for (q,) in self.store.read(
            "SELECT name FROM queues ORDER BY name")]
        rows = self.store.read(
            "SELECT source, destination, destination_type, routing_key, arguments "
            "FROM bindings ORDER BY source, destination_type, destination, routing_key")
        return implicit + [Binding(s, d, DestinationType(t), k, load_table(a))
                           for s, d, t, k, a in rows]

    def route(self, exchange: str, routing_key: str,
              headers: dict[str, Any] | None = None) -> routing.Route:
        """Where a message would go, without publishing it."""
        with self.store.transaction() as db:
            return Router(db, check_name("exchange", exchange),
                          routes=self.broker.routes).explain(routing_key, headers)
