"""The shell's history without secrets: every line is stored with the passwords of its
URLs masked (``connect amqp://user:****@host/``, ``--url ...``), in a file only its owner
can read.

Masking uses the display form of ``config.mask_password``, so the history shows a URL
exactly as the toolbar and the error lines do. A history file written before masking
existed is rewritten masked when the shell starts. A masked line recalled from history
does not reconnect: passwords belong in profiles or ``AMQ_URL``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from ..config import mask_password

FILE_MODE = 0o600
# A URL in a raw line: a scheme, "://", then up to a space.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def mask_line(line: str) -> str:
    """The line with the password of every URL in it masked, the rest as typed."""
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote: mask what looks like a URL in the raw text
        words = []
    for word in words:
        masked = _mask_word(word)
        if masked == word:
            continue
        if word in line:
            line = line.replace(word, masked)
        else:  # the URL was typed with escapes: the words, quoted again
            line = shlex.join([_mask_word(w) for w in words])
            break
    return _URL.sub(lambda found: mask_password(found.group()), line)


def _mask_word(word: str) -> str:
    """A shell word (``--url=amqp://u:p@h``, or a quoted URL with spaces) masked."""
    found = re.search(r"[A-Za-z][A-Za-z0-9+.-]*://", word)
    if found is None:
        return word
    return word[:found.start()] + mask_password(word[found.start():])


class _Masked(History):
    """A history that masks passwords before a line is kept, in memory or on disk."""

    def append_string(self, string: str) -> None:
        super().append_string(mask_line(string))

    def load_history_strings(self) -> Iterable[str]:
        return [mask_line(s) for s in super().load_history_strings()]


class MaskedFileHistory(_Masked, FileHistory):
    pass


class MaskedMemoryHistory(_Masked, InMemoryHistory):
    pass


def secure_history_file(path: str) -> None:
    """Create the file readable by its owner only (or make it so), and rewrite it with
    the passwords masked if an older amq kept them in clear. Raises ``OSError``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    masked = "".join("+" + mask_line(line[1:]) if line.startswith("+") else line
                     for line in text.splitlines(keepends=True))
    if masked != text:
        _replace(path, masked.encode("utf-8", "surrogateescape"))


def _replace(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a new file of mode 0600, then a rename)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def open_history(path: str) -> tuple[History, str | None]:
    """The history in ``path``; if the file cannot be used, one in memory and why."""
    try:
        secure_history_file(path)
    except OSError as err:
        return MaskedMemoryHistory(), f"cannot write {path}: {err.strerror}"
    return MaskedFileHistory(path), None
