"""Which broker a command talks to: ``--url`` > ``AMQ_URL`` > the default local store.

URLs: ``local`` (the store in the user's data directory), ``local:PATH``, ``amqp://...``
and ``amqps://...``. Passwords never leave this module unmasked except to the backend.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple


from . import errors

ENV_URL = "AMQ_URL"


def default_store_path() -> str:
    """``amq/local.db`` under the user's data directory ($XDG_DATA_HOME on Linux)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        # platformdirs' rule for these, without its import cost on every start
        base = os.environ.get("XDG_DATA_HOME", "").strip() or \
            os.path.expanduser("~/.local/share")
    else:
        from platformdirs import user_data_dir
        base = user_data_dir(appauthor=False)
    return os.path.join(base, "amq", "local.db")


class BrokerURL(NamedTuple):
    scheme: str  # "local", "amqp" or "amqps"
    url: str  # as given (for amqp: with the password)
    path: str | None = None  # local: the store file

    @property
    def display(self) -> str:
        return mask_password(self.url)


def mask_password(url: str) -> str:
    """The URL with its password replaced by ``****``."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc[1]}"))


def resolve(url: str | None) -> BrokerURL:
    """Turn ``--url`` (or the environment, or the default) into a BrokerURL."""
    text = url or os.environ.get(ENV_URL) or "local"
    if text == "local":
        return BrokerURL("local", text, default_store_path())
    if text.startswith("local:"):
        path = os.path.expanduser(text[len("local:"):])
        if not path:
            raise errors.UsageError("local: needs a path, as in local:/tmp/amq.db")
        return BrokerURL("local", text, os.path.abspath(path))
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("amqp", "amqps"):
        return BrokerURL(scheme, text)
    raise errors.UsageError(
        f"unsupported broker URL {mask_password(text)!r}: use local, local:PATH, "
        "amqp://user:pass@host:port/vhost or amqps://...")
