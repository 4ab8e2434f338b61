"""The built-in local broker: RabbitMQ's model over one SQLite file shared by processes.

Nothing here imports the CLI, rich or pika.
"""

from .engine import Broker, Connection

__all__ = ["Broker", "Connection"]
