"""RabbitMQ's disk alarm: while the store's file system has less free space than the
limit (``--disk-free-limit``, RabbitMQ's default 50 MB), publishers are blocked.

Checked once a second. When the alarm goes on, every open connection whose client has the
``connection.blocked`` capability is sent ``connection.blocked`` "low on disk"; a
connection that then publishes has its socket read no further (what it published before
stands; nothing is dropped) until the alarm clears, when the notified ones get
``connection.unblocked`` and the held ones are read again. Consumers and connections that
do not publish go on. A limit above the free space is allowed (how a test sets it off).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errors

if TYPE_CHECKING:
    from .connection import AMQPConnection

log = logging.getLogger("amq.server")

DEFAULT_LIMIT = 50_000_000  # bytes: RabbitMQ's disk_free_limit.absolute, 50 MB
INTERVAL = 1.0  # seconds between checks
REASON = "low on disk"
UNITS = {"": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_limit(text: str) -> int:
    """``--disk-free-limit``: bytes, or a number with kB/MB/GB/TB (or KiB/MiB/...)."""
    found = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in UNITS:
        raise errors.UsageError(f"--disk-free-limit: expected BYTES, or a number with kB, "
                                f"MB, GB or TB, got {text!r}")
    return int(found.group(1)) * UNITS[unit]


class DiskAlarm:
    """The alarm of one server: ``on`` while the free space is below ``limit``."""

    def __init__(self, path: str | None, limit: int,
                 free: Callable[[str], int] = lambda p: shutil.disk_usage(p).free) -> None:
        self.directory = os.path.dirname(os.path.abspath(path)) if path else None
        self.limit = limit
        self.free = free
        self.on = False
        self.held: set[AMQPConnection] = set()  # publishers whose socket is not read
        self._timer: asyncio.TimerHandle | None = None

    def start(self, connections: set[AMQPConnection]) -> None:
        """Check now and every second (a store in memory has no disk to watch)."""
        if self.directory is None:
            return
        self._check(connections)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self, connections: set[AMQPConnection]) -> None:
        try:
            free = self.free(self.directory or ".")
        except OSError as err:
            log.warning("cannot read the free disk space of %s: %s", self.directory, err)
            free = self.limit
        if (free < self.limit) != self.on:
            self.on = not self.on
            log.warning("disk alarm %s: free disk space %d bytes, limit %d bytes",
                        "set" if self.on else "cleared", free, self.limit)
            for conn in list(connections):
                conn.alarm_changed(self.on)
            if not self.on:
                self.held.clear()
        self._timer = asyncio.get_running_loop().call_later(
            INTERVAL, self._check, connections)
