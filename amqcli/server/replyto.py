"""RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``), kept in the server.

A client consumes (no-ack) from the pseudo-queue ``amq.rabbitmq.reply-to`` and publishes
its requests with that ``reply_to``; the server rewrites it to a name of its own,
``amq.rabbitmq.reply-to.<token>``, and a reply published to the default exchange with
that routing key goes straight to the consumer, through no queue and not into the store.
As in RabbitMQ, a reply to a consumer that has gone is dropped (returned if mandatory).
Only clients of this server can reply this way: ``amq send`` in another process cannot.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from ..amqp.model import Message

if TYPE_CHECKING:
    from .channel import ServerChannel

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"
PREFIX = PSEUDO_QUEUE + "."


def is_reply(exchange: str, routing_key: str) -> bool:
    return exchange == "" and routing_key.startswith(PREFIX)


class ReplyTo:
    """The direct reply-to consumers of one server, by the name replies are sent to."""

    def __init__(self) -> None:
        self.consumers: dict[str, tuple[ServerChannel, str]] = {}

    def register(self, channel: ServerChannel, tag: str) -> str:
        name = PREFIX + secrets.token_urlsafe(18)
        self.consumers[name] = (channel, tag)
        return name

    def forget(self, name: str) -> None:
        self.consumers.pop(name, None)

    def deliver(self, message: Message) -> bool:
        """Hand a reply to its consumer; False if there is none (any more)."""
        found = self.consumers.get(message.routing_key)
        if found is None or found[0].closing:
            return False
        channel, tag = found
        channel.deliver_direct(tag, message)
        return True
