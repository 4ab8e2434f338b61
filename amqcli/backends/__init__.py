"""The two brokers behind one interface: ``base.Backend``; ``open_backend`` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import BrokerURL

if TYPE_CHECKING:
    from .base import Backend


def open_backend(url: BrokerURL) -> Backend:
    """Connect to the broker a resolved URL names."""
    if url.scheme == "local":
        from .local import open_local
        return open_local(url.path, url.vhost)
    from .rabbitmq import RabbitMQBackend
    return RabbitMQBackend(url)
