"""Consumers that survive a lost connection: the one reconnect loop of the long-running
commands (``receive``, ``receive --exec``, ``rpc serve``, ``rpc call``, the shell's
subscriptions).

A ``Resilient`` subscription is a ``Subscription`` over a connection that it opens again
when the broker drops it (closed by an operator or a node going down, a cut socket,
missed heartbeats). It says so in one line, then tries again with jittered exponential
backoff (capped at ``BACKOFF_CAP`` seconds) from inside ``fetch``: a fetch while
disconnected waits (its timeout at most) and returns nothing, so the caller's loop goes
on as when no message comes (an idle ``--timeout`` counts the time spent disconnected;
Ctrl+C and ended commands are noticed). Once connected again it calls the command's
``subscribe`` hook, which re-declares what the command declared itself and returns the
``Consume`` arguments to subscribe with (the hook is where a stream reader will resume
after the last offset it wrote), and consumes again.

What the broker had delivered and not seen acknowledged comes back to the queue, flagged
redelivered: at least once. Delivery tags handed out after a reconnect are shifted by
``TAG_SPAN`` per connection, so an ack for a delivery of a connection gone is dropped
(``holds`` tells), never sent on the new channel as an unknown tag.

The local broker has no connection to lose (its store is a file that every process opens
itself): its errors are not losses, so there nothing is retried.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import errors
from ..amqp.model import Delivery, Message, PublishResult
from ..config import BrokerURL

if TYPE_CHECKING:
    from .base import Backend, Subscription

HEARTBEAT = 10  # seconds asked for by long-running commands, unless the URL says
BACKOFF_FIRST = 1.0  # seconds before the first retry (then doubling, jittered)
BACKOFF_CAP = 30.0
# Internal, for tests: the first backoff delay in seconds (a short one keeps tests fast).
BACKOFF_ENV = "AMQ_RECONNECT_BACKOFF"
TAG_SPAN = 1 << 48  # delivery tags of one connection stay below this


def is_loss(err: errors.AmqError) -> bool:
    """Whether an error means the connection is gone (and another may work): a socket
    lost, heartbeats missed, or closed by the broker with 320 CONNECTION_FORCED."""
    return isinstance(err, errors.ConnectionLost | errors.ConnectionForced)


def long_running(url: BrokerURL, heartbeat: int = HEARTBEAT) -> BrokerURL:
    """The URL with ``heartbeat=`` in its query unless it has one (a RabbitMQ URL only), so
    that a dead peer is noticed in two or three heartbeats rather than minutes."""
    if url.scheme not in ("amqp", "amqps"):
        return url

    def asking(one: str) -> str:
        base, _, query = one.partition("?")
        if any(part.partition("=")[0] == "heartbeat" for part in query.split("&")):
            return one
        return f"{base}?{query}&heartbeat={heartbeat}" if query else \
            f"{base}?heartbeat={heartbeat}"
    # on each host's URL (what the backend connects to), not on the URL shown to the user
    if not url.hosts:
        return url._replace(url=asking(url.url))
    return url._replace(hosts=tuple(asking(h) for h in url.hosts))


class Backoff:
    """Delays between tries: doubling from ``first`` up to ``cap``, each one jittered
    (between half and all of it), so that many clients of a restarted broker spread out."""

    def __init__(self, first: float | None = None, cap: float = BACKOFF_CAP,
                 rng: Callable[[], float] | None = None) -> None:
        if first is None:
            try:
                first = float(os.environ.get(BACKOFF_ENV) or BACKOFF_FIRST)
            except ValueError:
                first = BACKOFF_FIRST
        self.first = max(0.0, first)
        self.cap = cap
        self.rng = rng
        self.tries = 0

    def next(self) -> float:
        if self.rng is None:
            import random  # not at start-up: only after a loss
            self.rng = random.random
        delay = min(self.cap, self.first * 2 ** min(self.tries, 30))
        self.tries += 1
        return delay * (0.5 + self.rng() / 2)

    def reset(self) -> None:
        self.tries = 0


class Consume(NamedTuple):
    """The arguments of one ``Backend.consume``: what a ``subscribe`` hook returns."""

    queue: str
    prefetch: int = 0
    no_ack: bool = False
    exclusive: bool = False
    window: int = 0
    priority: int = 0
    arguments: dict[str, Any] | None = None  # the consume's (x-stream-offset)


# The command's hook: declare what it needs on a backend (again: after a reconnect) and
# say how to consume. It may publish (rpc call sends its request again) and say things.
Subscribe = Callable[["Backend", bool], Consume]


class Resilient:
    """A ``Subscription`` that reconnects (see the module docstring); ``backend`` is the
    connection in use (None while disconnected) for what the command publishes."""

    def __init__(self, backend: Backend, connect: Callable[[], Backend],
                 subscribe: Subscribe, note: Callable[[str], None], *,
                 reconnect: bool = True, backoff: Backoff | None = None) -> None:
        """Subscribe on ``backend`` now (errors are the command's, as without
        reconnecting); ``connect`` opens a new connection after a loss."""
        self.backend: Backend | None = backend
        self.connect = connect
        self.subscribe = subscribe
        self.note = note
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.generation = 0  # connections lost so far
        self.retry_at = 0.0
        self._window: int | None = None  # the last set_window, kept across connections
        self._watched: int | None = None
        self._display = getattr(backend, "display_url", "the broker")
        self.sub: Subscription | None = self._consume(backend, again=False)
        self.queue = self.sub.queue

    # --- the connection -------------------------------------------------------------

    def _consume(self, backend: Backend, again: bool) -> Subscription:
        args = self.subscribe(backend, again)
        window = args.window if self._window is None else self._window
        sub = backend.consume(args.queue, prefetch=args.prefetch, no_ack=args.no_ack,
                              exclusive=args.exclusive, window=window,
                              priority=args.priority, arguments=args.arguments)
        self.queue = args.queue
        if self._watched is not None:
            sub.watch(self._watched)
        return sub

    def lost(self, err: errors.AmqError) -> None:
        """After an error from the broker: re-raise it unless it is a loss to survive;
        else say so once, drop the connection and plan the first try."""
        if not self.reconnect or not is_loss(err):
            raise err
        if self.sub is None and self.backend is None:
            return  # already known
        self.note(f"amq: connection lost: {err}; reconnecting to {self._display} "
                  "(unacknowledged messages come back, flagged redelivered)")
        self._drop()
        self.generation += 1
        self.backoff.reset()
        self.retry_at = time.monotonic() + self.backoff.next()

    def _drop(self) -> None:
        sub, self.sub = self.sub, None
        backend, self.backend = self.backend, None
        if sub is not None:
            try:
                sub.cancel()
            except errors.AmqError:
                pass
        if backend is not None:
            try:
                backend.close()
            except errors.AmqError:
                pass

    def _restore(self, timeout: float | None) -> bool:
        """While disconnected: wait for the next try (no longer than ``timeout``, None:
        until connected), try; whether connected now."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.sub is None:
            now = time.monotonic()
            wait = self.retry_at - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() >= self.retry_at:
                self._try()
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self.sub is not None

    def _try(self) -> None:
        backend: Backend | None = None
        try:
            backend = self.connect()
            self.backend = backend
            self.sub = self._consume(backend, again=True)
        except errors.AmqError as err:
            if not isinstance(err, errors.BrokerUnreachable | errors.ConnectionForced):
                raise  # refused logins, a queue deleted under --no-declare: not for retries
            self.sub = None
            if backend is not None:
                self.backend = None
                try:
                    backend.close()
                except errors.AmqError:
                    pass
            self.retry_at = time.monotonic() + self.backoff.next()
            return
        self._display = getattr(backend, "display_url", self._display)  # another host?
        self.note(f"amq: reconnected to {self._display}: consuming from '{self.queue}' again")

    # --- the Subscription -----------------------------------------------------------

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        """``Subscription.fetch``; while disconnected, or once the connection is lost
        during the wait, it tries to reconnect for what is left of ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self.sub is None and not self._restore(left):
                return []
            assert self.sub is not None
            try:
                batch = self.sub.fetch(most, left)
                break
            except errors.AmqError as err:
                self.lost(err)
            if deadline is not None and time.monotonic() >= deadline:
                return []
        if self.generation == 0 or not batch:
            return batch
        shift = self.generation * TAG_SPAN
        return [d._replace(delivery_tag=d.delivery_tag + shift) for d in batch]

    def holds(self, delivery_tag: int) -> bool:
        """Whether a delivery is of the connection in use (it can still be settled)."""
        return self.sub is not None and delivery_tag // TAG_SPAN == self.generation

    def watch(self, fd: int) -> bool:
        self._watched = fd
        return self.sub.watch(fd) if self.sub is not None else False

    def keep_alive(self) -> None:
        if self.sub is not None:
            try:
                self.sub.keep_alive()
            except errors.AmqError as err:
                self.lost(err)

    def set_window(self, most: int) -> None:
        self._window = most
        if self.sub is not None:
            try:
                self.sub.set_window(most)
            except errors.AmqError as err:
                self.lost(err)

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge; a delivery of a lost connection is not (it comes back)."""
        self._settle(delivery_tag, lambda sub, tag: sub.ack(tag, multiple))

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self._settle(delivery_tag, lambda sub, tag: sub.nack(tag, multiple, requeue))

    def _settle(self, delivery_tag: int,
                action: Callable[[Subscription, int], None]) -> None:
        sub = self.sub
        if sub is None or (delivery_tag and not self.holds(delivery_tag)):
            return
        try:
            action(sub, delivery_tag - self.generation * TAG_SPAN if delivery_tag else 0)
        except errors.AmqError as err:
            self.lost(err)

    def publish(self, exchange: str, messages: Sequence[Message]) -> PublishResult | None:
        """Publish on the connection in use; None when there is none (or it was lost on
        the way: the caller does not settle what it answers, which comes back)."""
        if self.backend is None:
            return None
        try:
            return self.backend.publish(exchange, messages)
        except errors.AmqError as err:
            self.lost(err)
            return None

    def cancel(self) -> None:
        if self.sub is not None:
            try:
                self.sub.cancel()
            except errors.AmqError as err:
                if not is_loss(err):
                    raise
            self.sub = None
