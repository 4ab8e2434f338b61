"""The environment a command runs in: its streams, whether they are terminals, its broker.

Commands never touch ``sys.stdout`` or open a broker themselves: they ask the
``Environment``, which the shell keeps across commands and tests can build by hand.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from .. import config


@dataclass
class Environment:
    stdin_fd: int = 0
    stdout_fd: int = 1
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool = field(default_factory=lambda: os.isatty(0))
    stdout_isatty: bool = field(default_factory=lambda: os.isatty(1))
    stderr_isatty: bool = field(default_factory=lambda: os.isatty(2))
    url: str | None = None  # --url; None: AMQ_URL or the default
    _backend: Any = None
    keep_open: bool = False  # the shell keeps one connection for the session

    def broker_url(self) -> config.BrokerURL:
        return config.resolve(self.url)

    def backend(self) -> Any:
        """The broker connection, opened on first use."""
        if self._backend is None:
            from ..backends import open_backend
            self._backend = open_backend(self.broker_url())
        return self._backend

    def close(self) -> None:
        if self._backend is not None and not self.keep_open:
            backend, self._backend = self._backend, None
            backend.close()

    def say(self, text: str) -> None:
        """A line for a person on stderr (never mixed into the data on stdout)."""
        print(text, file=self.stderr, flush=True)

    def console(self, stderr: bool = False) -> Any:
        from rich.console import Console
        return Console(stderr=stderr, highlight=False, soft_wrap=True)
