"""RabbitMQ's ``consumer_timeout`` for the served broker: a delivery that a client has not
acknowledged within the timeout closes its channel with 406 PRECONDITION_FAILED, and the
channel's unacknowledged messages go back to their queues, as with any closed channel.

As in RabbitMQ 3.10 (``rabbit_channel:evaluate_consumer_timeout``), what counts is the
oldest delivery a channel holds unacknowledged, whether a consumer's or a ``basic.get``'s
with manual ack (no-ack deliveries are never held), and it is checked on a periodic tick,
so a channel closes up to one tick after its delivery's time ran out. RabbitMQ's tick is
``channel_tick_interval`` (60 s by default: a 2 s timeout closed the channel after 60 s
there); here it is ``TICK`` (or half the timeout, if that is shorter).

One timer per server, armed only while some channel holds a delivery that needs an ack:
channels ``watch`` themselves when they hand one out, and each tick asks only those for
their oldest one. Clients of the local broker that do not go through the server
(``amq receive``) are not timed out.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channel import ServerChannel

DEFAULT = 1800.0  # seconds: RabbitMQ's default consumer_timeout (30 minutes)
TICK = 1.0  # seconds between checks, at most


def reply_text(channel: int, timeout_ms: int) -> str:
    """RabbitMQ 3.10's words, after ``PRECONDITION_FAILED - ``."""
    return (f"delivery acknowledgement on channel {channel} timed out. Timeout value used: "
            f"{timeout_ms} ms. This timeout value can be configured, see consumers doc "
            "guide to learn more")


class AckTimeout:
    """The server's watch over unacknowledged deliveries (``seconds`` None: off)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds or None
        self.tick = min(TICK, self.seconds / 2) if self.seconds else TICK
        self.watched: set[ServerChannel] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    @property
    def milliseconds(self) -> int:
        return round((self.seconds or 0) * 1000)

    def watch(self, channel: ServerChannel) -> None:
        """The channel handed out a delivery that needs an ack: check it from now on."""
        if self.seconds is None or self._stopped:
            return
        self.watched.add(channel)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)

    def stop(self) -> None:
        self._stopped = True
        self.watched.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        assert self.seconds is not None
        deadline = time.monotonic() - self.seconds
        for channel in list(self.watched):
            since = channel.oldest_unacked()
            if since is None:
                self.watched.discard(channel)  # nothing held: watched again on its next one
            elif since < deadline:
                self.watched.discard(channel)
                channel.connection.ack_timed_out(
                    channel, reply_text(channel.number, self.milliseconds))
        if self.watched and not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)
