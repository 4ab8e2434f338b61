"""The environment a command runs in: its streams, whether they are terminals, its broker.

Commands never touch ``sys.stdout`` or open a broker themselves: they ask the
``Environment``, which the shell keeps across commands and tests can build by hand.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

from .. import config

if TYPE_CHECKING:
    from rich.console import Console

    from ..backends.base import Backend
    from ..backends.reconnect import Resilient, Subscribe
    from .app import CommandLine


class Environment:
    """Streams (by file descriptor), whether they are terminals, and the broker in use.

    A plain class rather than a dataclass: every ``amq`` start builds one, and the
    dataclasses module is a measurable part of a start.
    """

    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1, stderr: IO[str] | None = None,
                 stdin_isatty: bool | None = None, stdout_isatty: bool | None = None,
                 stderr_isatty: bool | None = None, url: str | None = None) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr = stderr if stderr is not None else sys.stderr
        self.stdin_isatty = os.isatty(stdin_fd) if stdin_isatty is None else stdin_isatty
        self.stdout_isatty = os.isatty(stdout_fd) if stdout_isatty is None else stdout_isatty
        self.stderr_isatty = os.isatty(2) if stderr_isatty is None else stderr_isatty
        self.url = url  # --url; None: AMQ_URL or the default
        self.broker: str | None = None  # --broker: a profile of the config file
        self._backend: Backend | None = None
        self.keep_open = False  # the shell keeps one connection for the session
        self.command_line: CommandLine | None = None  # set by cli.run: what the shell runs

    def broker_url(self) -> config.BrokerURL:
        return config.resolve(self.url, self.broker)

    def connection_url(self, long_running: bool = False) -> config.BrokerURL:
        """The URL a connection opens: a long-running command's asks for heartbeats of
        ``reconnect.HEARTBEAT`` seconds unless the URL says otherwise (not the shell's
        own connection: idle at the prompt, nothing answers its heartbeats)."""
        url = self.broker_url()
        if not long_running or self.keep_open:
            return url
        from ..backends.reconnect import long_running as with_heartbeat
        return with_heartbeat(url)

    def backend(self, long_running: bool = False) -> Backend:
        """The broker connection, opened on first use (``long_running``: for a command
        that waits, see ``connection_url``). The shell's, kept open between commands, is
        looked at first: one the broker dropped meanwhile is opened again."""
        if self._backend is not None and self.keep_open and not self._backend.alive():
            self.say(f"amq: the connection to {self._backend.display_url} was lost: "
                     "reconnecting")
            self.drop_backend()
        if self._backend is None:
            from ..backends import open_backend
            self._backend = backend = open_backend(self.connection_url(long_running))
            created = getattr(backend, "created_store", None)
            if created:  # a typo in a store path must not go unnoticed
                self.say(f"amq: created a new store at {created}")
            return backend
        return self._backend

    def drop_backend(self) -> None:
        """Forget the connection (closing it quietly): the next ``backend()`` opens one."""
        backend, self._backend = self._backend, None
        if backend is not None:
            from .. import errors
            try:
                backend.close()
            except errors.AmqError:
                pass

    def reopen(self, long_running: bool = False) -> Backend:
        """A new connection in place of the one in use (after it was lost): the same
        backend connected again (``Backend.reconnect``: on a multi-host URL the host after
        the one it had is tried first) when it was opened on the URL wanted, else a new
        one."""
        backend = self._backend
        if backend is not None and getattr(backend, "url", None) == \
                self.connection_url(long_running):
            backend.reconnect()
            return backend
        self.drop_backend()
        return self.backend(long_running)

    def close(self) -> None:
        if self._backend is not None and not self.keep_open:
            backend, self._backend = self._backend, None
            backend.close()

    def consumer(self, subscribe: Subscribe, reconnect: bool = True) -> Resilient:
        """A long-running command's consumer: subscribed now by ``subscribe`` on this
        environment's connection (its errors are the command's), and again on a new one
        after a loss unless not ``reconnect`` (``backends/reconnect.py``)."""
        from ..backends.reconnect import Resilient
        return Resilient(self.backend(long_running=True),
                         lambda: self.reopen(long_running=True), subscribe, self.say,
                         reconnect=reconnect)

    def say(self, text: str) -> None:
        """A line for a person on stderr (never mixed into the data on stdout)."""
        print(text, file=self.stderr, flush=True)

    def console(self, stderr: bool = False) -> Console:
        from rich.console import Console
        return Console(stderr=stderr, highlight=False, soft_wrap=True)
