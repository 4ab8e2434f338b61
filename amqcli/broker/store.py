"""The SQLite file that holds the local broker: schema, transactions, change notification.

One database in WAL mode, shared by every process that opens it. Each broker operation is
one ``BEGIN IMMEDIATE`` transaction (one writer at a time, readers never blocked); bulk
operations batch many messages per transaction. ``synchronous=NORMAL``: a committed
transaction survives the death of any process (kill -9), though not a power cut.

Waiting consumers do not poll: the transaction that hands them messages rings their
doorbells after it commits (``to_ring``, ``doorbell.py``); the queues a transaction makes
messages ready in, or room for, are dispatched just before it commits (``touch``,
``on_commit``: ``dispatch.py``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import config, errors

if TYPE_CHECKING:
    from .doorbell import Ringer

SWEEPER = "sweeper"  # the doorbell name of the store's one sweeper

# The schema as version 1 wrote it. A later change is a migration (``MIGRATIONS``), never
# an edit of this text: users' store files of every earlier version must keep opening.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_message_id', 1);
CREATE TABLE IF NOT EXISTS exchanges (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    durable INTEGER NOT NULL DEFAULT 0,
    auto_delete INTEGER NOT NULL DEFAULT 0,
    internal INTEGER NOT NULL DEFAULT 0,
    arguments TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    durable INTEGER NOT NULL DEFAULT 0,
    exclusive_owner INTEGER,            -- connections.id, for exclusive queues
    auto_delete INTEGER NOT NULL DEFAULT 0,
    arguments TEXT NOT NULL DEFAULT '{}',
    had_consumer INTEGER NOT NULL DEFAULT 0,
    unacked INTEGER NOT NULL DEFAULT 0,   -- its messages held by consumers (owner set)
    expiring INTEGER NOT NULL DEFAULT 0,  -- it has held messages with an expiry time
    last_used REAL NOT NULL DEFAULT 0   -- for x-expires
);
CREATE TABLE IF NOT EXISTS bindings (
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    destination_type TEXT NOT NULL,     -- 'queue' or 'exchange'
    routing_key TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, destination_type, destination, routing_key, arguments)
);
CREATE INDEX IF NOT EXISTS bindings_destination ON bindings (destination_type, destination);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,              -- FIFO order, from meta.next_message_id
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    owner INTEGER,                        -- connections.id holding it unacked, NULL when ready
                                          -- (not indexed: claims and acks name rows by id)
    redelivered INTEGER NOT NULL DEFAULT 0,
    expires REAL,                         -- epoch seconds, from TTLs
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    properties TEXT,                      -- JSON (codec.py), NULL when none are set
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, priority DESC, id)
    WHERE owner IS NULL;
CREATE TABLE IF NOT EXISTS connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,                -- process start time, to tell a reused pid
    name TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS consumers (
    connection INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    tag TEXT NOT NULL,
    queue TEXT NOT NULL,
    exclusive INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connection, channel, tag)
);
CREATE INDEX IF NOT EXISTS consumers_queue ON consumers (queue);
"""



# Version 2: the consumer registry. Consumers are rows the broker dispatches to (prefetch,
# priority, what each holds, whose turn it is, the doorbell of its process), and a message
# handed to a consumer names it until that consumer's process takes it (``consumer``).
# ``deliveries`` counts returns to the queue, for ``x-delivery-limit``.
CONSUMERS_V2 = """
CREATE TABLE consumers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- registration order (single active consumer)
    connection INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    tag TEXT NOT NULL,
    queue TEXT NOT NULL,
    exclusive INTEGER NOT NULL DEFAULT 0,
    no_ack INTEGER NOT NULL DEFAULT 0,
    prefetch INTEGER NOT NULL DEFAULT 0,          -- basic.qos global=false (0: no limit)
    channel_prefetch INTEGER NOT NULL DEFAULT 0,  -- basic.qos global=true of its channel
    priority INTEGER NOT NULL DEFAULT 0,          -- x-priority
    held INTEGER NOT NULL DEFAULT 0,              -- handed to it, not yet settled
    waiting INTEGER NOT NULL DEFAULT 0,           -- handed to it, not yet taken by its process
    waiting_bytes INTEGER NOT NULL DEFAULT 0,     -- their bodies' bytes
    served INTEGER NOT NULL DEFAULT 0,            -- when it was last handed one (round robin)
    bell TEXT NOT NULL DEFAULT '',                -- the doorbell of its process
    UNIQUE (connection, channel, tag)
);
CREATE INDEX consumers_queue ON consumers (queue);
"""


def _to_v2(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE consumers")  # rows of running older processes: they re-register
    for statement in CONSUMERS_V2.split(";\n"):
        if statement.strip():
            db.execute(statement)
    db.execute("ALTER TABLE messages ADD COLUMN consumer INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX messages_handed ON messages (consumer, priority DESC, id) "
               "WHERE consumer IS NOT NULL")


def _to_v3(db: sqlite3.Connection) -> None:
    """RabbitMQ's firehose exchange, predeclared as in RabbitMQ (topic, durable, internal),
    and its switch, off (``trace.py``)."""
    db.execute("INSERT OR IGNORE INTO exchanges (name, type, durable, internal) "
               "VALUES ('amq.rabbitmq.trace', 'topic', 1, 1)")
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('trace', 0)")


def _to_v4(db: sqlite3.Connection) -> None:
    """Per-queue counters of messages in and out, for the rates of ``amq top``: each
    publish transaction adds what it enqueued, each claim what it delivered (one row
    written per queue and transaction, not per message)."""
    db.execute("CREATE TABLE queue_stats (queue TEXT PRIMARY KEY, "
               "published INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0)")


def _to_v5(db: sqlite3.Connection) -> None:
    """Streams (``streams.py``): each stream's counters, its segments (retention drops
    whole ones) and its messages in chunks, keyed by (queue, first offset): an
    append-only log."""
    schema = """
    CREATE TABLE streams (
        queue TEXT PRIMARY KEY,
        next_offset INTEGER NOT NULL DEFAULT 0,   -- what the next message gets
        first_offset INTEGER NOT NULL DEFAULT 0,  -- the oldest kept
        last_chunk INTEGER NOT NULL DEFAULT 0,    -- the first offset of the last publish batch
        last_ts REAL NOT NULL DEFAULT 0,          -- the time of the newest message
        bytes INTEGER NOT NULL DEFAULT 0          -- the bodies kept
    );
    CREATE TABLE stream_segments (
        queue TEXT NOT NULL,
        first_offset INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,             -- one past its last message
        bytes INTEGER NOT NULL,
        last_ts REAL NOT NULL,
        PRIMARY KEY (queue, first_offset)
    );
    CREATE TABLE stream_chunks (
        queue TEXT NOT NULL,
        first_offset INTEGER NOT NULL,
        count INTEGER NOT NULL,
        ts REAL NOT NULL,                         -- epoch seconds, never less than before
        exchange TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        properties TEXT,
        sizes BLOB NOT NULL,                      -- the bodies' lengths, 4 bytes each
        bodies BLOB NOT NULL                      -- the bodies, one after another
    );
    CREATE UNIQUE INDEX stream_chunks_offset ON stream_chunks (queue, first_offset);
    CREATE INDEX stream_chunks_time ON stream_chunks (queue, ts)
    """
    for statement in schema.split(";\n"):
        if statement.strip():
            db.execute(statement)


def _to_v6(db: sqlite3.Connection) -> None:
    """Virtual hosts (``vhosts.py``): the registry, in the store of vhost ``/``, which holds
    that one; each other vhost is a store file of its own, named by ``file``. ``id`` tells
    a vhost deleted and added again from the one a process opened."""
    db.execute("CREATE TABLE vhosts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "name TEXT NOT NULL UNIQUE, file TEXT NOT NULL, "
               "description TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '', "
               "created REAL NOT NULL)")
    db.execute("INSERT INTO vhosts (name, file, created) VALUES ('/', '', ?)", (time.time(),))


def _migrations() -> dict[int, Callable[[sqlite3.Connection], None]]:
    """The step to each schema version after 1, from the one before it: ``{2: step, ...}``.
    A step runs inside the transaction that opens an older store (all steps commit
    together, or none does); a table or index it creates goes into ``MIGRATED_OBJECTS``."""
    return {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5, 6: _to_v6}


MIGRATIONS = _migrations()
SCHEMA_VERSION = max(MIGRATIONS, default=1)
MIGRATED_OBJECTS: frozenset[str] = frozenset({  # what migrations add
    "messages_handed", "queue_stats", "streams", "stream_segments", "stream_chunks",
    "stream_chunks_offset", "stream_chunks_time", "vhosts"})

# The tables and indexes of a store, by name (SQLite's own are named sqlite_*).
STORE_OBJECTS = frozenset(
    word.split("(")[0] for line in SCHEMA.splitlines()
    if line.startswith(("CREATE TABLE", "CREATE INDEX"))
    for word in [line.split(" IF NOT EXISTS ")[1].split()[0]]) | MIGRATED_OBJECTS
OPEN_RETRY = 10.0  # seconds to retry the first open of a new store that others open too
BUSY_WAIT = 30.0  # seconds a write transaction waits for another writer before failing


class Store:
    """One open SQLite database, shared by the threads of this process."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        """Open (creating if needed) the store at ``path``; ``None`` is a private in-memory one."""
        self.path = str(path) if path is not None else ":memory:"
        self._lock = threading.RLock()
        self._in_transaction = False
        self.created = False  # this open made a new store (the file was new or empty)
        self.db = self._open()
        self.to_ring: set[str] = set()  # bells to ring once the open transaction commits
        self.touched: set[str] = set()  # queues to dispatch before it commits
        # The engine's dispatch (``dispatch.py``), run on the touched queues before a commit.
        self.on_commit: Callable[[sqlite3.Connection, set[str]], None] | None = None
        self.gone_rung = False  # a ring found no process: the engine sweeps soon
        # Bells of this process that its own commits need not ring (``amq broker serve``
        # delivers what its commits hand its consumers in the same turn); ``quiet_rung``
        # says that one would have been rung.
        self.quiet: set[str] = set()
        self.quiet_rung = False
        self._prefix: str | None = None
        self._ringer: Ringer | None = None
        self._checkpointer: Checkpointer | None = None

    @property
    def bell_prefix(self) -> str:
        """The start of the names of this store's doorbells (``doorbell.py``)."""
        if self._prefix is None:
            from .doorbell import prefix
            self._prefix = prefix(self.path)
        return self._prefix

    def touch(self, queue: str) -> None:
        """Within a transaction: ``queue`` has new ready messages or consumers with room."""
        self.touched.add(queue)

    def dispatch_now(self, db: sqlite3.Connection) -> None:
        """Dispatch the queues touched so far in this transaction (and those that
        dispatching touches: a dead-letter on expiry)."""
        while self.touched and self.on_commit is not None:
            touched, self.touched = self.touched, set()
            self.on_commit(db, touched)
        self.touched.clear()

    def ring_sweeper(self) -> None:
        """After this transaction, tell the store's sweeper that a deadline may have moved."""
        self.to_ring.add(f"{self.bell_prefix}-{SWEEPER}")

    def _ring(self) -> None:
        bells, self.to_ring = self.to_ring, set()
        if self._ringer is None:
            from .doorbell import Ringer
            self._ringer = Ringer()
        sweeper = f"{self.bell_prefix}-{SWEEPER}"
        for name in bells:
            if name in self.quiet:
                self.quiet_rung = True
            elif not self._ringer.ring(name) and name != sweeper:
                self.gone_rung = True

    def _check_path(self) -> None:
        """Refuse what cannot be a store before SQLite makes sense of it: a missing folder
        (only the default store's is created), a directory, a device (``/dev/null``)."""
        folder = os.path.dirname(self.path) or "."
        if not os.path.isdir(folder):
            if self.path != config.default_store_path():
                raise errors.StoreError(
                    f"local store {self.path}: the folder {folder} does not exist (create it, "
                    "or give another path)")
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as err:
                raise errors.StoreError(
                    f"cannot create the folder of the store {self.path}: {err.strerror}") from err
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return
        except OSError as err:
            raise errors.StoreError(f"local store {self.path}: {err.strerror}") from err
        if stat.S_ISDIR(mode):
            raise errors.StoreError(f"local store {self.path}: it is a directory, not a store "
                                    "file")
        if not stat.S_ISREG(mode):
            raise errors.StoreError(f"local store {self.path}: not a store file (not a regular "
                                    "file)")

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            self._check_path()
        deadline = time.monotonic() + OPEN_RETRY
        while True:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
                try:
                    db.execute("PRAGMA busy_timeout = 30000")
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    if version != SCHEMA_VERSION:
                        self._upgrade(db, version)
                    db.execute("PRAGMA synchronous = NORMAL")
                    db.execute("PRAGMA busy_timeout = 0")  # waits are ours: see _begin
                except BaseException:
                    db.close()
                    raise
                return db
            except sqlite3.OperationalError as err:
                # Processes creating one new store at once: switching it to WAL can fail
                # with "locked" without waiting (SQLite calls no busy handler there).
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise self.error(err) from err
                time.sleep(0.01)
            except sqlite3.Error as err:
                raise self.error(err) from err

    def _upgrade(self, db: sqlite3.Connection, version: int) -> None:
        """Bring a new (version 0) or older store to ``SCHEMA_VERSION``, in one transaction."""
        if version > SCHEMA_VERSION:
            raise errors.StoreError(
                f"local store {self.path}: written by a newer amq (schema version {version}; "
                f"this amq knows up to {SCHEMA_VERSION}): upgrade amq to use it")
        self._refuse_foreign(db)  # before WAL mode, which would change such a file
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another may have
            if version == 0:
                self._refuse_foreign(db)
                self.created = True
                for statement in SCHEMA.split(";\n"):  # no ";" inside a statement
                    if statement.strip():
                        db.execute(statement)
                from ..amqp.model import PREDECLARED_EXCHANGES
                db.executemany(
                    "INSERT OR IGNORE INTO exchanges (name, type, durable) VALUES (?, ?, 1)",
                    PREDECLARED_EXCHANGES.items())
                version = 1
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _refuse_foreign(self, db: sqlite3.Connection) -> None:
        """An SQLite file with tables that are not amq's is another program's: leave it."""
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if {n for n in names if not n.startswith("sqlite_")} - STORE_OBJECTS:
            raise errors.StoreError(f"local store {self.path}: an SQLite database of something "
                                    "else, not an amq store")

    def error(self, err: sqlite3.Error) -> errors.StoreError:
        """A one-line StoreError naming the file, for any sqlite3 failure."""
        text = str(err)
        if "not a database" in text or "malformed" in text:
            text = "the file is not an amq store or is corrupt"
        elif "readonly" in text or "read-only" in text:
            text = "the file or its folder is read-only"
        elif "unable to open" in text:
            text = "cannot open the file (check that it and its folder are readable and writable)"
        return errors.StoreError(f"local store {self.path}: {text}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one.
        Waiting consumers are woken by the doorbells its dispatch rings (``to_ring``)."""
        with self._lock:
            if self._in_transaction:
                yield self.db
                return
            try:
                if self.db.in_transaction:  # left open by an interrupted transaction
                    self._rollback()
                self._begin()
                self._in_transaction = True
                yield self.db
                if self.touched:
                    self.dispatch_now(self.db)
                self.db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise self.error(err) from err
            except BaseException:
                self._rollback()
                raise
            finally:
                self._in_transaction = False
            if self.to_ring:
                self._ring()
            if self._checkpointer is not None:
                self._checkpointer.poke()

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another writer in steps (from 0.1 ms, growing
        to 50 ms; ``BUSY_WAIT`` in all). SQLite's own busy handler sleeps 1, 2, 5, 10 ...
        100 ms between tries: a process that commits in a loop (a receiver that takes
        and acks one message at a time) then keeps the lock and starves the others, and
        round robin among consumers becomes whoever-is-fastest."""
        self._retry(lambda: self.db.execute("BEGIN IMMEDIATE"))

    def _retry(self, call: Callable[[], Any]) -> Any:
        """``call()``, again while another process holds the lock, after sleeps growing
        from 0.1 ms to 50 ms (sleeping, not spinning: spinning waiters would take the CPU
        from the process that holds the lock)."""
        delay, deadline = 0.0001, None
        while True:
            try:
                return call()
            except sqlite3.OperationalError as err:
                text = str(err)
                if "locked" not in text and "busy" not in text:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + BUSY_WAIT
                elif now > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def _rollback(self) -> None:
        self.to_ring.clear()
        self.touched.clear()
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    @staticmethod
    def next_message_id(db: sqlite3.Connection) -> int:
        """The id the next message gets (read inside the write transaction that uses it).

        Ids only grow and are never reused, even after the newest message is deleted, so a
        stale delivery can never name a newer message: cheaper than AUTOINCREMENT, which
        keeps its books per row, where ``set_next_message_id`` runs once per batch.
        """
        return db.execute("SELECT value FROM meta WHERE key = 'next_message_id'").fetchone()[0]

    @staticmethod
    def set_next_message_id(db: sqlite3.Connection, value: int) -> None:
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_message_id'", (value,))

    def read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query outside any write transaction."""
        with self._lock:
            try:
                return self._retry(lambda: self.db.execute(sql, params).fetchall())
            except sqlite3.Error as err:
                raise self.error(err) from err

    def checkpoint(self) -> None:
        """Have the write-ahead log copied into the store file soon, by a thread of this
        process (``Checkpointer``), which from now on also follows this process's commits."""
        if self.path == ":memory:":
            return
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.path)
        self._checkpointer.poke()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._ringer is not None:
            self._ringer.close()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.close()


class Checkpointer:
    """A thread that copies the write-ahead log into the store file, on its own connection.

    SQLite does it inside the commit that finds 1,000 pages in the log (2-6 ms, and an
    ``fsync``), so every few hundred messages one publish or claim would take that long. The
    store's sweeper (one waiting process, or ``amq broker serve``) runs this thread instead:
    poked by each commit of its process and by each sweep, at most every ``PAUSE`` seconds
    it copies what the log holds without waiting for anybody (``PASSIVE``: it never holds
    the write lock, so no writer waits for its ``fsync``); at low rates the next writer then
    starts the log over (past about 1,000 commits a second SQLite's writers seldom do, and
    SQLite's own checkpoint, which stays on, finds little left to copy). sqlite3 lets other
    threads run while it works, so the process's loop goes on.
    """

    PAUSE = 0.01  # seconds between checkpoints at most

    def __init__(self, path: str) -> None:
        self.path = path
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amq-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=0)
        except sqlite3.Error:
            return
        try:
            db.execute("PRAGMA busy_timeout = 0")
            while True:
                self._wanted.wait()
                if self._stop.is_set():
                    return
                self._wanted.clear()
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if self._stop.wait(self.PAUSE):
                    return
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        self._thread.join(1.0)
