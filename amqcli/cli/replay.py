"""``amq replay [FILE|DIR ...]``: republish a capture (``--format json`` lines, or a
``--save`` folder; stdin by default) to each message's own exchange and routing key, or
``-e``/``-k``, or another broker (``--to-url``): as fast as it goes, in batches, or at the
capture's own pace with ``--speed FACTOR`` (the gaps between ``received_at`` times,
divided by FACTOR). Published with ``mandatory``: a message that reaches no queue is
named at the end (exit 7); ``--confirm`` waits for publisher confirms.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from .. import capture, errors
from ..amqp.model import Delivery, Message
from . import consumer_options as coptions
from . import options
from .app import app, env_of
from .send import interrupted_line, unroutable_target

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..where import Where
    from .env import Environment
    from .progress import Progress

BATCH = 500  # messages published at once when not pacing
NAMED = 3  # unroutable messages named in the error line

REPLAY_HELP = """Republish captured messages: JSON lines as `receive`/`tap --format json`
write them (FILE, or stdin), or folders written by --save. Each goes to its own exchange
and routing key (or -e, -k; --to-url for another broker), with mandatory: those that
reach no queue are named at the end (exit 7).

As fast as possible by default; --speed FACTOR keeps the capture's pace from its
received_at times (1: real time, 10: ten times faster). --where EXPR replays only what
matches; --confirm waits for the broker's confirms. Ctrl+C says how far it got."""

Paths = Annotated[list[str] | None, typer.Argument(
    metavar="[FILE|DIR]...", show_default=False,
    help="Captures to replay (default: stdin).")]
ReplayKey = Annotated[str | None, typer.Option(
    "--routing-key", "-k", metavar="KEY", help="Publish with this routing key instead.")]
ReplayExchange = Annotated[str | None, typer.Option(
    "--exchange", "-e", metavar="NAME", help="Publish to this exchange instead.")]
Speed = Annotated[float | None, typer.Option(
    "--speed", metavar="FACTOR", show_default=False,
    help="Keep the capture's pace, FACTOR times faster (1: real time).")]
ToUrl = Annotated[str | None, typer.Option(
    "--to-url", metavar="URL", show_default=False,
    help="Publish to this broker (local, local:PATH, amqp://...) instead of --url's.")]


class Unroutable:
    """The messages that reached no queue: how many, and the first few by name."""

    def __init__(self) -> None:
        self.count = 0
        self.named: list[str] = []

    def add(self, what: str) -> None:
        self.count += 1
        if len(self.named) < NAMED:
            self.named.append(what)


class Player:
    """Publishes records, in batches or paced, and keeps the tally."""

    def __init__(self, backend: Backend, confirm: bool, speed: float | None,
                 progress: Progress | None = None) -> None:
        self.backend = backend
        self.confirm = confirm
        self.speed = speed
        self.progress = progress
        self.batch: list[tuple[Message, str]] = []
        self.sent = 0
        self.in_flight = 0
        self.nacked = 0
        self.unroutable = Unroutable()
        self.start: tuple[float, float] | None = None  # (capture time, monotonic) of the first

    def add(self, m: Message, where: str, at: float | None) -> None:
        if self.speed is not None:
            first = self.start is None and at is not None
            self._wait(at)
            self.batch.append((m, where))
            self.flush()
            if first:  # the clock starts once the first is out (its publish may be slow)
                self.start = (at or 0.0, time.monotonic())
            return
        if self.batch and self.batch[-1][0].exchange != m.exchange:
            self.flush()
        self.batch.append((m, where))
        if len(self.batch) >= BATCH:
            self.flush()

    def _wait(self, at: float | None) -> None:
        if at is None:
            return  # no time: no gap
        if self.start is None:
            return  # the first: at once
        first, began = self.start
        left = began + (at - first) / (self.speed or 1.0) - time.monotonic()
        if left > 0:
            time.sleep(left)

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        exchange = batch[0][0].exchange
        self.in_flight = len(batch)
        result = self.backend.publish(exchange, [m for m, _ in batch], confirm=self.confirm)
        self.in_flight = 0
        self.sent += result.published
        self.nacked += result.nacked
        if result.unroutable:
            self._name_unroutable(batch, result.unroutable)
        if self.progress is not None:
            self.progress.advance(result.published)

    def _name_unroutable(self, batch: list[tuple[Message, str]], count: int) -> None:
        """Which of a batch reached no queue: the one, or those ``route`` finds going
        nowhere (on RabbitMQ that needs the management API: else the batch's range)."""
        if len(batch) == 1:
            self.unroutable.add(self._named(*batch[0]))
            return
        try:
            lost = [(m, w) for m, w in batch
                    if not self.backend.route(m.exchange, m.routing_key,
                                              m.properties.headers).queues]
        except errors.AmqError:
            lost = []
        if len(lost) != count:
            for _ in range(count):
                self.unroutable.add(f"among {batch[0][1]} to {batch[-1][1]}")
            return
        for m, w in lost:
            self.unroutable.add(self._named(m, w))

    def _named(self, m: Message, where: str) -> str:
        from .kinds import exchange_type
        target = unroutable_target(m.exchange, m.routing_key, m.properties.headers,
                                   lambda name: exchange_type(self.backend, name))
        return f"{where} ({target})"

    def finish(self) -> None:
        self.flush()
        if self.nacked and self.confirm:
            raise errors.Nacked(f"the broker refused {self.nacked} of {self.sent} "
                                "message(s) (a queue is full: x-overflow reject-publish)")
        u = self.unroutable
        if u.count:
            more = f", and {u.count - len(u.named)} more" if u.count > len(u.named) else ""
            raise errors.Unroutable(
                f"312 NO_ROUTE - {u.count} of {self.sent} message(s) reached no queue and "
                f"were dropped: {'; '.join(u.named)}{more}")


def _records(env: Environment, paths: list[str] | None, exchange: str | None,
             key: str | None, where: Where | None) -> Iterator[tuple[Message, str, float | None]]:
    from ..formats import message_from_object
    for rec in capture.records(paths or [], env.stdin_fd):
        try:
            m = message_from_object(rec.obj, exchange, key, rec.body)
        except errors.UsageError as err:
            raise errors.UsageError(f"{rec.where}: {err}") from None
        if where is not None and not where.matches(Delivery(
                0, m.body, m.properties, m.exchange, m.routing_key,
                rec.obj.get("redelivered") is True)):
            continue
        yield m, rec.where, rec.received_at


@app.command("replay", help=REPLAY_HELP)
def replay(
    ctx: typer.Context,
    paths: Paths = None,
    exchange: ReplayExchange = None,
    key: ReplayKey = None,
    speed: Speed = None,
    confirm: options.Confirm = False,
    where: coptions.Where = None,
    to_url: ToUrl = None,
    quiet: options.Quiet = False,
) -> None:
    from ..where import compile_where
    env = env_of(ctx)
    if speed is not None and not speed > 0:
        raise errors.UsageError(f"--speed must be more than 0, not {speed:g}")
    selected = compile_where(where)
    with _target(env, to_url) as backend:
        from . import progress
        bar = progress.for_send(env, True)
        player = Player(backend, confirm, speed, bar)
        try:
            with bar:
                for m, at_where, at in _records(env, paths, exchange, key, selected):
                    player.add(m, at_where, at)
                player.flush()
        except KeyboardInterrupt:
            env.say(interrupted_line(player.sent, player.in_flight + len(player.batch),
                                     confirm).replace(" sent", " replayed", 1))
            raise
        player.finish()
    if not quiet and env.stderr_isatty:
        env.say(f"replayed {player.sent} message{'' if player.sent == 1 else 's'}")


@contextlib.contextmanager
def _target(env: Environment, to_url: str | None) -> Iterator[Backend]:
    """The broker to publish to: --to-url's (closed at the end), or the session's."""
    if to_url is None:
        yield env.backend()
        return
    from .. import config
    from ..backends import open_backend
    backend = open_backend(config.resolve(to_url))
    try:
        yield backend
    finally:
        backend.close()
