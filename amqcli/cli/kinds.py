"""What kind an exchange is, for the messages that depend on it (``send``'s unroutable
line, ``receive -e`` without ``-k``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors

if TYPE_CHECKING:
    from ..backends.base import Backend


def exchange_type(backend: Backend, name: str) -> str | None:
    """The exchange's type (``direct``, ``topic``, ...), or None when the broker cannot
    say (RabbitMQ without its management API) or there is no such exchange."""
    try:
        return next((str(x.type) for x in backend.list_exchanges() if x.name == name), None)
    except errors.AmqError:
        return None
