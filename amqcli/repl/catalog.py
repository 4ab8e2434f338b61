"""The names the shell completes: queues and exchanges of the session's broker, refreshed
in a background thread (on its own connection) so that the prompt never waits.

Between refreshes the completer reads the last listing. When listing fails (a RabbitMQ
without its management API, a broker gone away), the names seen in this session's command
lines are offered instead.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from ..cli.names import Kind, NameSource, list_names, profile_names
from ..config import BrokerURL

if TYPE_CHECKING:
    from ..backends.base import Backend

REFRESH_EVERY = 10.0  # seconds between listings when nothing asks for one sooner
LISTED_KINDS = (Kind.QUEUE, Kind.EXCHANGE)


class Catalog(NameSource):
    """Thread-safe names for completion: the latest listing, else the names seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listed: dict[Kind, tuple[str, ...]] = {}  # the last good listing
        self._fresh = False  # did the last listing work?
        self._seen: dict[Kind, set[str]] = {kind: set() for kind in LISTED_KINDS}
        self._profiles: list[str] | None = None

    def clear(self) -> None:
        """Forget the names (another broker)."""
        with self._lock:
            self._listed, self._fresh = {}, False
            self._seen = {kind: set() for kind in LISTED_KINDS}

    def names(self, kind: Kind) -> list[str]:
        if kind is Kind.BROKER:
            if self._profiles is None:
                self._profiles = profile_names()
            return list(self._profiles)
        with self._lock:
            listed = self._listed.get(kind, ())
            if self._fresh:
                return list(listed)
            return sorted(self._seen.get(kind, set()).union(listed))

    def listed(self, names: dict[Kind, list[str]]) -> None:
        """A fresh listing from the broker."""
        with self._lock:
            self._listed = {kind: tuple(sorted(found)) for kind, found in names.items()}
            self._fresh = True

    def listing_failed(self) -> None:
        """The broker could not list: offer the names seen (and the last listing)."""
        with self._lock:
            self._fresh = False

    def saw(self, kind: Kind, name: str) -> None:
        """A name used on a command line of this session."""
        if kind in self._seen and name:
            with self._lock:
                self._seen[kind].add(name)


class Refresher:
    """Lists the broker's names into a catalog now and then, and whenever poked."""

    def __init__(self, url: BrokerURL, catalog: Catalog, every: float = REFRESH_EVERY) -> None:
        self.url = url
        self.catalog = catalog
        self.every = every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amq-names", daemon=True)

    def start(self) -> Refresher:
        self._thread.start()
        return self

    def poke(self) -> None:
        """List again soon (after a command that may have changed the names)."""
        self._wake.set()

    def stop(self, wait: float = 1.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(wait)

    def _run(self) -> None:
        backend: Backend | None = None
        try:
            while not self._stop.is_set():
                backend = self._refresh(backend)
                self._wake.wait(self.every)
                self._wake.clear()
        finally:
            _close_quietly(backend)

    def _refresh(self, backend: Backend | None) -> Backend | None:
        """One listing; the backend to use next time (None after a failure)."""
        from ..backends import open_backend
        try:
            if backend is None:
                backend = open_backend(self.url)
            names = {kind: list_names(backend, kind) for kind in LISTED_KINDS}
            if not self._stop.is_set():  # a stopped refresher's names are another broker's
                self.catalog.listed(names)
            return backend
        except Exception:  # noqa: BLE001 - a background helper: never a traceback
            self.catalog.listing_failed()
            _close_quietly(backend)
            return None


def _close_quietly(backend: Backend | None) -> None:
    if backend is not None:
        with contextlib.suppress(Exception):
            backend.close()
