"""The vhosts ``amq broker serve`` serves: each a store file (``broker/vhosts.py``) with
its own turn and dispatcher, opened when a client first asks for it.

Every vhost in the store's registry is served, including those that ``amq vhost add``
makes while the server runs. A vhost deleted meanwhile (``amq vhost delete``, from any
process) is noticed within ``CHECK_INTERVAL``: its connections are closed with RabbitMQ's
``320 CONNECTION_FORCED - vhost 'x' is deleted``, and a vhost of the same name added again
is a new one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..broker.vhosts import DEFAULT, Registry, not_found
from .dispatch import Dispatcher
from .turn import Turn

if TYPE_CHECKING:
    from ..broker.engine import Broker
    from .connection import AMQPConnection

log = logging.getLogger("amq.server")

CHECK_INTERVAL = 1.0  # seconds between looks at the registry for deleted vhosts


class Host:
    """One vhost being served."""

    def __init__(self, name: str, broker: Broker) -> None:
        self.name = name
        self.broker = broker
        self.turn = Turn(broker.store)
        self.dispatcher = Dispatcher(broker, self.turn)
        self.connections: set[AMQPConnection] = set()
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.dispatcher.start()

    def close(self) -> None:
        if self.started:
            self.dispatcher.stop()
        self.turn.close()
        self.broker.close()


class Hosts:
    """The served vhosts, by name; ``/`` is the store the server was given."""

    def __init__(self, broker: Broker) -> None:
        self.registry = Registry(broker.store)
        self.max_message_size = broker.max_message_size
        self.default = Host(DEFAULT, broker)
        self.open: dict[str, Host] = {DEFAULT: self.default}
        self._timer: asyncio.TimerHandle | None = None
        self._running = False

    def start(self) -> None:
        self._running = True
        for host in self.open.values():
            host.start()
        self._timer = asyncio.get_running_loop().call_later(CHECK_INTERVAL, self._check)

    def get(self, name: str) -> Host:
        """The served vhost ``name`` (opened now if it is new to this server); the 530 of
        RabbitMQ if the registry has no such vhost."""
        host = self.open.get(name)
        if name == DEFAULT and host is not None:
            return host
        row = self.registry.get(name)
        if row is None:
            raise not_found(name)
        if host is not None and host.broker.vhost_id == row.id:
            return host
        if host is not None:  # deleted and added again: the old one is gone
            self._retire(host)
        broker = self.registry.open(name)
        broker.max_message_size = self.max_message_size
        host = self.open[name] = Host(name, broker)
        if self._running:
            host.start()
        log.info("serving vhost '%s'", name)
        return host

    def ensure(self, name: str) -> Broker:
        """The broker of vhost ``name``, added to the registry if it is not there
        (``--vhost NAME``, a definitions file's ``vhosts``)."""
        self.registry.add(name)
        return self.get(name).broker

    def _check(self) -> None:
        self._timer = None
        try:
            ids = {v.name: v.id for v in self.registry.list()}
            for name, host in list(self.open.items()):
                if name != DEFAULT and ids.get(name) != host.broker.vhost_id:
                    self._retire(host)
        except Exception:  # a store hiccup: look again later
            log.exception("reading the vhosts of the store failed")
        if self._running:
            self._timer = asyncio.get_running_loop().call_later(CHECK_INTERVAL, self._check)

    def _retire(self, host: Host) -> None:
        """A vhost deleted from the registry: close its connections as RabbitMQ does."""
        log.info("vhost '%s' was deleted: closing its %d connections", host.name,
                 len(host.connections))
        if self.open.get(host.name) is host:
            del self.open[host.name]
        for conn in list(host.connections):
            conn.forced(f"CONNECTION_FORCED - vhost '{host.name}' is deleted")
        # its store file is unlinked already: what is left in it goes with it
        asyncio.get_running_loop().call_later(1.0, host.close)

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        for host in self.open.values():
            host.close()
        self.open.clear()
