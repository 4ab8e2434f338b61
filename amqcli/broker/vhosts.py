"""Virtual hosts of the local broker, as RabbitMQ has them: separate worlds of queues,
exchanges and bindings, one of which (``/``) every store has.

The registry is a table of the store file (``vhosts``, schema version 6); vhost ``/`` is
that file itself, and every other vhost is a store file of its own in a folder beside it
(``STORE.vhosts/``), named in the registry. A vhost is then isolated the way RabbitMQ
isolates them, by construction: no statement of one can see another's rows, and each keeps
the engine, the dispatch and the doorbells of a store unchanged. Nothing in AMQP crosses
vhosts, so no transaction needs to span two files.

``id`` is new each time a name is added: a process that opened vhost ``x`` can tell that
``x`` was deleted, or deleted and added again, since (the server closes its connections
to it with 320, as RabbitMQ does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from .. import errors
from ..amqp.names import check_name

if TYPE_CHECKING:
    from .engine import Broker
    from .store import Store

DEFAULT = "/"
FILE_SUFFIXES = ("", "-wal", "-shm")  # an SQLite store in WAL mode, on disk


@dataclass(frozen=True)
class VHost:
    id: int
    name: str
    file: str  # the store file's name in the vhosts folder ('' for '/': the store itself)
    description: str = ""
    tags: str = ""  # comma-separated, as RabbitMQ's management API lists them


def folder(store_path: str) -> str:
    """The folder of a store's other vhosts' files."""
    return f"{store_path}.vhosts"


def file_name(name: str) -> str:
    """A file name for vhost ``name``: readable where the name allows, a hash where it is
    long (a vhost name can be 255 bytes; a file name too, before quoting)."""
    quoted = quote(name, safe="")
    if len(quoted) > 100 or quoted.startswith("."):
        quoted = "h-" + hashlib.sha256(name.encode("utf-8")).hexdigest()
    return f"{quoted}.db"


def not_found(name: str) -> errors.NotAllowed:
    """RabbitMQ's answer to a connection.open of a vhost it does not have."""
    return errors.NotAllowed(f"vhost {name} not found")


class Registry:
    """The vhosts of one store (its file, or ``None`` in memory)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self) -> list[VHost]:
        return [VHost(*row) for row in self.store.read(
            "SELECT id, name, file, description, tags FROM vhosts ORDER BY name")]

    def get(self, name: str) -> VHost | None:
        rows = self.store.read(
            "SELECT id, name, file, description, tags FROM vhosts WHERE name = ?", (name,))
        return VHost(*rows[0]) if rows else None

    def path(self, vhost: VHost) -> str | None:
        """The store file of a vhost (``None``: a store in memory has its vhosts in memory)."""
        if self.store.path == ":memory:":
            return None
        if vhost.name == DEFAULT:
            return self.store.path
        return os.path.join(folder(self.store.path), vhost.file)

    def open(self, name: str) -> Broker:
        """The broker of vhost ``name`` (``not_found`` if the registry has no such vhost);
        ``/`` is this store's own."""
        from .engine import Broker
        vhost = self.get(name)
        if vhost is None:
            raise not_found(name)
        return Broker(self.path(vhost), vhost=vhost.name, vhost_id=vhost.id)

    def add(self, name: str, description: str = "", tags: str = "") -> bool:
        """Add vhost ``name`` (False: it was there already, left as it is, as RabbitMQ's
        ``add_vhost`` of an existing one changes nothing)."""
        name = check_name("vhost", name)
        if not name:
            raise errors.UsageError("a vhost name cannot be empty")
        if self.store.path != ":memory:":
            try:
                os.makedirs(folder(self.store.path), exist_ok=True)
            except OSError as err:
                raise errors.StoreError(
                    f"cannot create the folder of the vhosts of {self.store.path}: "
                    f"{err.strerror}") from err
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM vhosts WHERE name = ?", (name,)).fetchone():
                return False
            db.execute("INSERT INTO vhosts (name, file, description, tags, created) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (name, file_name(name), description, tags, time.time()))
        return True

    def delete(self, name: str) -> None:
        """Delete vhost ``name`` and everything in it (its store file). ``/`` cannot be:
        RabbitMQ allows it, but a store without it would have no registry."""
        if name == DEFAULT:
            raise errors.PreconditionFailed(
                "vhost '/' holds the store's registry of vhosts: the local broker does not "
                "delete it (delete its queues and exchanges instead)")
        vhost = self.get(name)
        if vhost is None:
            raise errors.NotFound(f"no vhost '{name}'")
        with self.store.transaction() as db:
            db.execute("DELETE FROM vhosts WHERE id = ?", (vhost.id,))
        path = self.path(vhost)
        if path is not None:
            for suffix in FILE_SUFFIXES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)


def open_broker(path: str, name: str) -> Broker:
    """The broker of vhost ``name`` of the store at ``path`` (``not_found`` if the store
    has no such vhost)."""
    from .engine import Broker
    if name == DEFAULT:
        return Broker(path)
    from .store import Store
    home = Store(path)
    try:
        return Registry(home).open(name)
    finally:
        home.close()
