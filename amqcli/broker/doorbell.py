"""Doorbells: how a process that commits wakes the processes its commit concerns.

A waiting consumer sleeps in the kernel on a Unix datagram socket of its own, bound in
Linux's abstract namespace under a name derived from the store's path (no file to leave
behind, no path-length limit; the name goes when the process does). A commit that hands
messages to a consumer rings that consumer's bell after it commits: one datagram. A ring
that finds no socket means the process is gone: the ringer sweeps the store at once.

One more name per store is the sweeper's: the one process that holds it (the first
waiting process to bind it; the next one when that process ends) runs the store's timers
(TTL, ``x-expires``, dead processes) for everybody, so that N waiting processes cost one
timer, not N. Rings at the sweeper's name tell it that a deadline may have moved.

Where abstract sockets do not exist (not Linux), ``Bell`` falls back to waking every
``FALLBACK_POLL`` seconds, the old polling, and rings go nowhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import sys
import uuid

FALLBACK_POLL = 0.02  # seconds between looks where no bell can be bound
ABSTRACT = sys.platform.startswith("linux")


def prefix(store_path: str) -> str:
    """The part of every bell name of one store: the same for every process opening it."""
    if store_path == ":memory:":  # private to this process: a name of its own
        return f"amq-mem-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    real = os.path.realpath(store_path)
    return "amq-" + hashlib.blake2s(real.encode("utf-8", "surrogateescape"),
                                    digest_size=8).hexdigest()


def _address(name: str) -> bytes:
    return b"\0" + name.encode()


class Bell:
    """A socket to sleep on until rung. ``name`` None: a fresh unique one."""

    def __init__(self, store_prefix: str, name: str | None = None) -> None:
        self.name = f"{store_prefix}-{name or uuid.uuid4().hex[:12]}"
        self.sock: socket.socket | None = None
        if ABSTRACT:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(_address(self.name))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self.sock = sock

    @classmethod
    def claim(cls, store_prefix: str, name: str) -> Bell | None:
        """The bell of a well-known ``name`` if no other process holds it, else None."""
        if not ABSTRACT:
            return None
        try:
            return cls(store_prefix, name)
        except OSError:  # EADDRINUSE: held by a live process
            return None

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def drain(self) -> bool:
        """Take every ring waiting; whether there was one."""
        rung = False
        if self.sock is None:
            return False
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return rung
            except OSError:
                return rung
            rung = True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait(bells: list[Bell], timeout: float | None, watch: int | None = None) -> set[int]:
    """Sleep until one of ``bells`` rings, ``watch`` (a file descriptor) reports an error
    or hang-up, or ``timeout`` passes; drain the bells; the descriptors that had news."""
    poller = select.poll()
    fds = [b.fileno() for b in bells if b.sock is not None]
    for fd in fds:
        poller.register(fd, select.POLLIN)
    if watch is not None:
        poller.register(watch, 0)  # POLLERR and POLLHUP are always reported
    if not fds:  # no bell could be bound: poll the store the old way
        timeout = FALLBACK_POLL if timeout is None else min(timeout, FALLBACK_POLL)
    ms = -1 if timeout is None else max(0, int(timeout * 1000 + 0.999))
    try:
        events = poller.poll(ms)
    except InterruptedError:
        events = []
    for bell in bells:
        bell.drain()
    return {fd for fd, _ev in events}


class Ringer:
    """Rings bells by name (one unbound socket per process)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def ring(self, name: str) -> bool:
        """Ring a bell; False when nobody holds it (its process is gone)."""
        if not ABSTRACT or not name:
            return True
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        try:
            self._sock.sendto(b"!", _address(name))
        except (BlockingIOError, InterruptedError):
            return True  # its queue of rings is full: it has been rung already
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
