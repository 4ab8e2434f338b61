"""The two brokers behind one interface: ``base.Backend``; ``open_backend`` picks one."""

from __future__ import annotations

from ..config import BrokerURL
from .base import Backend


def open_backend(url: BrokerURL) -> Backend:
    """Connect to the broker a resolved URL names."""
    if url.scheme == "local":
        from .local import LocalBackend
        return LocalBackend(url.path)
    from .rabbitmq import RabbitMQBackend
    return RabbitMQBackend(url)
