"""``amq tap EXCHANGE[:KEY] ...``: print a copy of every message published to exchanges
from now on, taking nothing from the queues bound there.

Each tap is a fresh server-named, exclusive, auto-delete queue bound to the exchange,
consumed with auto-ack, gone when tap ends: ``receive -e``'s machinery (``receive._consume``),
with a key chosen for the exchange's type. ``--firehose`` taps ``amq.rabbitmq.trace``, which
gets a copy of every publish and delivery of the vhost while tracing is on (RabbitMQ's
firehose, or ``amq broker trace on`` in the local broker). ``--where`` keeps what matches.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from .. import errors
from ..backends.reconnect import Consume
from ..backends.wrapped import Wrapped
from ..formats import OutputFormat
from ..output import is_pipe
from . import consumer_options as options
from .app import app, env_of
from .receive import _consume, consumer_prefetch, output_format

if TYPE_CHECKING:
    from ..amqp.model import Delivery
    from ..backends.base import Backend, Subscription
    from ..where import Where
    from .env import Environment

TRACE_EXCHANGE = "amq.rabbitmq.trace"

TAP_HELP = """Print a copy of every message published to each EXCHANGE from now on, taking
nothing from the queues bound there. EXCHANGE:KEY binds with KEY (split at the first
':'; with -k KEY the names are taken whole). Without a key: '#' (everything on a topic
exchange, and on fanout and headers exchanges, which ignore it); a direct exchange needs a
key. Each tap is a fresh exclusive, auto-delete queue, gone when tap ends.

--firehose taps amq.rabbitmq.trace: every publish and delivery of the vhost, while tracing
is on (RabbitMQ: `rabbitmqctl trace_on`; the local broker: `amq broker trace on`).

Formats as for receive: pretty (terminal default), raw (pipe default), body, nul, json."""

Taps = Annotated[list[str] | None, typer.Argument(
    metavar="EXCHANGE[:KEY]...", show_default=False, help="The exchanges to tap.")]
TapKeys = Annotated[list[str] | None, typer.Option(
    "--key", "-k", metavar="KEY",
    help="Bind with KEY (repeat); the EXCHANGE names are then taken whole.")]
Firehose = Annotated[bool, typer.Option(
    "--firehose", help="Tap amq.rabbitmq.trace: every publish and delivery of the vhost.")]


class Tap(NamedTuple):
    exchange: str
    key: str | None  # None: the exchange's default ('#', or refused on direct)


def plan_taps(words: list[str] | None, keys: list[str] | None, firehose: bool) -> list[Tap]:
    """The bindings tap makes, from its words (pure), or the usage error."""
    words = list(words or [])
    if firehose:
        words.append(TRACE_EXCHANGE)
    if not words:
        raise errors.UsageError("name an EXCHANGE to tap (or --firehose)")
    taps: list[Tap] = []
    for word in words:
        if keys:
            taps.extend(Tap(word, k) for k in keys)
            continue
        exchange, colon, key = word.partition(":")
        taps.append(Tap(exchange, key if colon else None))
    for t in taps:
        if t.exchange == "":
            raise errors.AccessRefused(
                "cannot tap the default exchange: nothing may bind to it",
                hint="--firehose sees every publish, to the default exchange too")
    return taps


class Subscribed(NamedTuple):
    queue: str
    taps: list[Tap]  # the keys filled in


def subscribe(env: Environment, backend: Backend, taps: list[Tap]) -> Subscribed:
    """One fresh exclusive auto-delete queue bound as ``taps`` say (after checking every
    exchange exists: 404 before anything is made)."""
    from .kinds import exchange_type
    bound = []
    for t in taps:
        backend.declare_exchange(t.exchange, passive=True)
        key = t.key
        if key is None:
            kind = None if t.exchange == TRACE_EXCHANGE else exchange_type(backend, t.exchange)
            if kind == "direct":
                raise errors.UsageError(
                    f"'{t.exchange}' is a direct exchange: give the key to tap "
                    f"({t.exchange}:KEY, or -k KEY)")
            if kind is None and t.exchange != TRACE_EXCHANGE:
                env.say(f"amq: the type of '{t.exchange}' is unknown (no management API): "
                        f"tapping with '#', which copies everything from a topic, fanout or "
                        f"headers exchange; on a direct exchange give the key "
                        f"({t.exchange}:KEY)")
            key = "#"
        bound.append(t._replace(key=key))
    if any(t.exchange == TRACE_EXCHANGE for t in taps):
        _firehose_check(env, backend)
    queue = backend.declare_queue("", exclusive=True, auto_delete=True).queue
    for t in bound:
        backend.bind(t.exchange, queue, t.key or "")
    return Subscribed(queue, bound)


def _firehose_check(env: Environment, backend: Backend) -> None:
    """Say how to turn tracing on when it is off (the tap waits all the same)."""
    if backend.tracing() is False:
        env.say(f"amq: tracing is off, so {TRACE_EXCHANGE} gets nothing: "
                f"{backend.trace_hint()}")


class TapSource:
    """Tap's ``subscribe`` hook (``backends/reconnect.py``): a fresh queue bound as the taps
    say, again after a reconnect (saying that what was published meanwhile was not seen);
    consumed with auto-ack."""

    def __init__(self, env: Environment, taps: list[Tap], prefetch: int) -> None:
        self.env = env
        self.taps = taps
        self.prefetch = prefetch

    def __call__(self, backend: Backend, again: bool) -> Consume:
        found = subscribe(self.env, backend, self.taps)
        self.taps = found.taps  # the keys chosen, kept for the next time
        if again:
            self.env.say(f"amq: tapping again through a new queue '{found.queue}': messages "
                         "published while disconnected were not seen")
        return Consume(found.queue, self.prefetch, no_ack=True)


class Filtered(Wrapped):
    """A Subscription whose ``fetch`` hands out only what ``where`` matches (tap consumes
    with auto-ack: what is left out needs no settling)."""

    def __init__(self, sub: Subscription, where: Where) -> None:
        super().__init__(sub)
        self.where = where

    def fetch(self, most: int, timeout: float | None) -> list[Delivery]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            batch = self.sub.fetch(most, left)
            if not batch:
                return []
            kept = [d for d in batch if self.where.matches(d)]
            if kept or left == 0.0:
                return kept


@app.command("tap", help=TAP_HELP)
def tap(
    ctx: typer.Context,
    exchanges: Taps = None,
    keys: TapKeys = None,
    firehose: Firehose = False,
    where: options.Where = None,
    count: options.Count = None,
    timeout: options.Timeout = None,
    format: options.Format[OutputFormat] = None,
    null: options.NulFormat = False,
    save: options.Save = None,
    no_reconnect: options.NoReconnect = False,
) -> None:
    from ..where import compile_where
    env = env_of(ctx)
    taps = plan_taps(exchanges, keys, firehose)
    selected = compile_where(where)
    fmt = OutputFormat.NUL if null else output_format(format, env.stdout_isatty)
    prefetch = consumer_prefetch(None, None, False, is_pipe(env.stdout_fd))
    sub: Subscription = env.consumer(TapSource(env, taps, prefetch),
                                     reconnect=not no_reconnect)
    if selected is not None:
        sub = Filtered(sub, selected)
    received = _consume(env, sub, fmt, count, timeout, prefetch, 0, True, False, save)
    if received == 0 and timeout is not None:
        raise errors.NothingReceived(f"no message arrived within {timeout:g}s")
