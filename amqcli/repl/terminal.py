"""Where background threads (subscriptions) write: above the prompt while it is shown,
without breaking the line being typed, and straight to stdout while a command runs.

While the prompt is up, writes go through a prompt-toolkit ``StdoutProxy``, which prints
them with ``run_in_terminal`` and redraws the prompt. The switch and every write hold one
lock, so nothing is written to a proxy that has been closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from prompt_toolkit.patch_stdout import StdoutProxy


class Terminal:
    def __init__(self, stdout: TextIO, is_terminal: bool) -> None:
        self.stdout = stdout
        self.is_terminal = is_terminal  # colours and styles for the messages
        self._lock = threading.Lock()
        self._proxy: StdoutProxy | None = None

    @contextmanager
    def prompting(self) -> Iterator[None]:
        """While the prompt is shown (in the body), writes go above it."""
        from prompt_toolkit.patch_stdout import StdoutProxy
        proxy = StdoutProxy(raw=True)
        with self._lock:
            self._proxy = proxy
        try:
            yield
        finally:
            with self._lock:
                self._proxy = None
            proxy.close()  # flushes what was written while the prompt was up

    def write(self, text: str) -> None:
        """Write whole lines (``text`` ends with a newline)."""
        with self._lock:
            out = self._proxy if self._proxy is not None else self.stdout
            out.write(text)
            out.flush()
