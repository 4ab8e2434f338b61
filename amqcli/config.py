"""Which broker a command talks to: ``--url`` > ``AMQ_URL`` > the default local store.

URLs: ``local`` (the store in the user's data directory), ``local:PATH``, ``amqp://...``
and ``amqps://...``. Passwords never leave this module unmasked except to the backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from . import errors

ENV_URL = "AMQ_URL"


def default_store_path() -> str:
    """``amq/local.db`` under the user's data directory (XDG on Linux)."""
    from platformdirs import user_data_dir
    return os.path.join(user_data_dir("amq", appauthor=False), "local.db")


@dataclass(frozen=True, slots=True)
class BrokerURL:
    scheme: str  # "local", "amqp" or "amqps"
    url: str  # as given (for amqp: with the password)
    path: str | None = None  # local: the store file

    @property
    def display(self) -> str:
        return mask_password(self.url)


def mask_password(url: str) -> str:
    """The URL with its password replaced by ``****``."""
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
