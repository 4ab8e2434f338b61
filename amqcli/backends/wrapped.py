"""A Subscription over another, passing everything through, for those that change only
what ``fetch`` hands out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..amqp.model import Delivery
    from .base import Subscription


class Wrapped:
    """A Subscription over another that passes everything through: a base for those that
    change only what ``fetch`` hands out (``tap --where``'s filter, a stream read that
    stops at its end)."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.queue = sub.queue

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        return self.sub.fetch(most, timeout)

    def watch(self, fd: int) -> bool:
        return self.sub.watch(fd)

    def keep_alive(self) -> None:
        self.sub.keep_alive()

    def set_window(self, most: int) -> None:
        self.sub.set_window(most)

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.sub.ack(delivery_tag, multiple)

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self.sub.nack(delivery_tag, multiple, requeue)

    def cancel(self) -> None:
        self.sub.cancel()
