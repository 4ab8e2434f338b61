"""``amq move``: move messages from a queue to another queue, an exchange, another broker,
or back to the queues they were dead-lettered from (redrive), losing none.

Messages are taken from SOURCE in windows, published with ``mandatory`` and a publisher
confirm (``Backend.begin_each``, then ``end_each``: what became of each one), and
acknowledged on SOURCE only once the destination confirmed them; the next window is
published while one's confirms come in, so the destination never waits for amq. A
kill -9 at any instant loses nothing: what was not acknowledged goes back to SOURCE, so
at most the window in flight is in both places. A message returned (it reached no
queue) or nacked stays in SOURCE with every one not moved yet, and the command stops
(exit 7 or 10), saying which. Without ``--follow`` the move works through what SOURCE
held when it started, then ends. ``--where`` holds what it does not match (as redrive
holds messages without ``x-death``) until the end. From a local queue into the same
store, ``Backend.move_ready`` moves each window inside the engine instead: one store
transaction, all or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NamedTuple, TypeVar

import typer

from .. import config, errors
from ..amqp.model import DEFAULT_EXCHANGE, Delivery, Message, Properties, PublishOutcome
from ..backends.reconnect import Backoff, Consume, is_loss, long_running
from . import consumer_options as coptions
from .app import app, env_of
from .env import Environment

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..backends.reconnect import Resilient

MOVE_HELP = """Move messages from queue SOURCE to queue DEST (through the default
exchange), to an exchange with --to-exchange, to another broker with --to-url, or back to
where they were dead-lettered from with --to-origin (redrive). DEST must exist.

Each message is published with mandatory and a publisher confirm, and acknowledged on
SOURCE only after the confirm, in windows: nothing is lost, even on kill -9 (at most one
window is then in both queues). A message that comes back unroutable (exit 7) or is
nacked (exit 10) stays in SOURCE with every one not moved yet. Properties, headers and
order are kept. The move works through what SOURCE holds when it starts, then ends
(exit 0 even when it was empty); --follow keeps moving new arrivals until Ctrl+C. From a
stream, whose log keeps every message read, the messages are copied (from the first it
keeps), and the move says so.

With --where EXPR only the messages it matches are moved (--count counts those); the
others stay in SOURCE (held until the move ends, then back in their places, flagged
redelivered) and the final line counts them. Within one local store the engine moves
each window in one transaction: a kill -9 then leaves each message in one queue only."""

# Messages in flight at most (published, not yet acknowledged on SOURCE): what a kill -9
# may leave in both queues. Published in two halves, each while the other's confirms come
# in, so that the destination always has messages to take (two windows are held).
WINDOW = 1000
IDLE = 2.0  # seconds without a delivery after which a move that is not --follow ends
FOLLOW_WAIT = 1.0  # seconds per wait for new arrivals with --follow


T = TypeVar("T")


# --- flags to a plan (pure: tests/unit/test_move_plan.py) -------------------------------

class MovePlan(NamedTuple):
    source: str
    dest: str | None  # a queue, through the default exchange
    exchange: str | None  # --to-exchange
    key: str | None  # -k with --to-exchange (None: each message's own routing key)
    to_origin: bool
    to_url: str | None
    limit: int | None  # --count
    rate: float | None
    follow: bool
    window: int
    select: str | None = None  # --where: the CEL expression messages must match to go

    @property
    def publish_exchange(self) -> str:
        return self.exchange if self.exchange is not None else DEFAULT_EXCHANGE

    @property
    def where(self) -> str:
        """The destination in words, for the final line."""
        if self.to_origin:
            return "the queues they were dead-lettered from"
        if self.exchange is not None:
            key = f" with key '{self.key}'" if self.key is not None else ""
            return f"exchange '{self.exchange}'{key}"
        return f"'{self.dest}'"


def plan_move(source: str, dest: str | None = None, *, exchange: str | None = None,
              key: str | None = None, to_origin: bool = False, to_url: str | None = None,
              count: int | None = None, rate: float | None = None,
              follow: bool = False, select: str | None = None) -> MovePlan:
    """``amq move``'s flags as a plan, or the usage error the first bad flag gives."""
    if not source:
        raise errors.UsageError("SOURCE is empty: name the queue to move messages from")
    chosen = [dest is not None, exchange is not None, to_origin]
    if sum(chosen) != 1:
        raise errors.UsageError("say where to: a DEST queue, --to-exchange X, or "
                                "--to-origin (one of them)")
    if dest == "":
        raise errors.UsageError("DEST is empty: name a queue (or use --to-exchange)")
    if key is not None and exchange is None:
        raise errors.UsageError("-k/--key goes with --to-exchange")
    if dest == source and to_url is None:
        raise errors.UsageError(f"SOURCE and DEST are the same queue '{source}'")
    if rate is not None and rate <= 0:
        raise errors.UsageError("--rate must be more than 0 messages a second")
    window = WINDOW
    if rate is not None:  # a few windows a second: the pace stays even
        window = max(1, min(window, int(rate / 4)))
    if count is not None:
        window = min(window, count)
    return MovePlan(source, dest, exchange, key, to_origin, to_url, count, rate, follow,
                    window, select)


def origin_queue(properties: Properties) -> str | None:
    """The queue the newest ``x-death`` entry names (RabbitMQ puts the newest first), or
    None for a message that was never dead-lettered."""
    deaths = (properties.headers or {}).get("x-death")
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], dict):
        return None
    queue = deaths[0].get("queue")
    if isinstance(queue, bytes):
        queue = queue.decode("utf-8", "replace")
    return queue if isinstance(queue, str) and queue else None


def routing_key_for(plan: MovePlan, delivery: Delivery) -> str | None:
    """The routing key a delivery is published with (None: it stays in SOURCE)."""
    if plan.to_origin:
        return origin_queue(delivery.properties)
    if plan.exchange is not None:
        return plan.key if plan.key is not None else delivery.routing_key
    return plan.dest


# --- the command: I/O only ---------------------------------------------------------------

Source = Annotated[str, typer.Argument(metavar="SOURCE", help="The queue to move from.")]
Dest = Annotated[str | None, typer.Argument(
    metavar="[DEST]", show_default=False, help="The queue to move to (it must exist).")]
ToExchange = Annotated[str | None, typer.Option(
    "--to-exchange", metavar="NAME", help="Publish to this exchange instead (it must exist).")]
MoveKey = Annotated[str | None, typer.Option(
    "--key", "-k", metavar="KEY",
    help="With --to-exchange, the routing key (default: each message's own).")]
ToOrigin = Annotated[bool, typer.Option(
    "--to-origin", help="Redrive: each message back to the queue its newest x-death names.")]
ToURL = Annotated[str | None, typer.Option(
    "--to-url", metavar="URL", help="The destination's broker (default: SOURCE's).")]
MoveCount = Annotated[int | None, typer.Option(
    "--count", "-n", min=1, metavar="N", help="Move at most N messages.")]
Rate = Annotated[float | None, typer.Option(
    "--rate", metavar="N", help="At most N messages a second.")]
Follow = Annotated[bool, typer.Option(
    "--follow", "-f", help="Keep moving new arrivals until Ctrl+C.")]


@app.command("move", help=MOVE_HELP)
def move(ctx: typer.Context, source: Source, dest: Dest = None, exchange: ToExchange = None,
         key: MoveKey = None, to_origin: ToOrigin = False, to_url: ToURL = None,
         count: MoveCount = None, rate: Rate = None, follow: Follow = False,
         where: coptions.Where = None) -> None:
    env = env_of(ctx)
    plan = plan_move(source, dest, exchange=exchange, key=key, to_origin=to_origin,
                     to_url=to_url, count=count, rate=rate, follow=follow, select=where)
    Mover(env, plan).run()


class Tally:
    """What a move did so far, for its final line."""

    def __init__(self) -> None:
        self.moved = 0
        self.kept = 0  # left in SOURCE on purpose: no x-death (redrive)
        self.unmatched = 0  # left in SOURCE on purpose: not matching --where
        self.started = time.monotonic()

    def line(self, plan: MovePlan) -> str:
        noun = "message" if self.moved == 1 else "messages"
        text = f"moved {self.moved} {noun} from '{plan.source}' to {plan.where}"
        left = [f"{n} {why}" for n, why in ((self.kept, "without x-death"),
                                            (self.unmatched, "not matching --where")) if n]
        if left:
            text += f"; {' and '.join(left)} left in '{plan.source}'"
        return text


class Window(NamedTuple):
    """Messages published (``Backend.begin_each``) whose outcomes are not in yet."""

    going: list[Delivery]  # their deliveries, in order
    messages: list[Message]
    complete: bool  # the whole of their batch: nothing of it held


class Failure(NamedTuple):
    """The first message of a window that did not reach the destination."""

    position: int  # counted from the start of the move
    routing_key: str | None
    outcome: PublishOutcome
    failed: int  # how many of its window (and those after it) failed


class Mover:
    """One run of ``amq move``: the source's consumer, the destination, the loop."""

    def __init__(self, env: Environment, plan: MovePlan) -> None:
        self.env = env
        self.plan = plan
        self.tally = Tally()
        self.held: list[Delivery] = []  # kept unacknowledged in SOURCE: redrive's strays,
        self.unmatched = 0  # and (this many of them) those --where does not match
        from ..where import compile_where
        self.selected = compile_where(plan.select)  # compiled once: a bad one fails first
        self._own_dest: Backend | None = None
        self._last_props: Properties | None = None
        # A consumer's prefetch, fixed when it subscribes (with room for WINDOW held),
        # rather than a channel-wide limit: for a source that takes no channel-wide limit
        # (RabbitMQ's quorum queues), and for a move that holds nothing back (no --where,
        # no --to-origin), since RabbitMQ enforces a channel-wide limit by the channel and
        # the queue coordinating for every message ("slow on a single machine":
        # /docs/consumer-prefetch), where the queue alone counts a consumer's
        self.per_consumer = not (plan.to_origin or plan.select is not None)
        self.start = 0  # what SOURCE held when the move started
        self.stream = False  # SOURCE is a stream: copied, acks only move the credit
        self.last_offset: int | None = None  # a stream's, the last one copied
        self.ahead: list[Window] = []  # published, outcomes not in yet (oldest first)
        self.overlap = False  # a window published while the one before is confirmed
        self.step = plan.window  # the most messages published at once

    # --- set-up ---------------------------------------------------------------------

    def run(self) -> None:
        source = self.env.backend(long_running=True)  # heartbeats: a long move notices a dead peer
        start = self.start = source.declare_queue(self.plan.source,
                                                  passive=True).message_count
        if source.queue_type(self.plan.source) == "stream":
            start = self.start = self._copy_stream(source)
        if self.plan.to_url is not None:
            self._own_dest = self._open(config.resolve(self.plan.to_url, None))
        elif self.env.broker_url().scheme != "local":
            # RabbitMQ: publish on a connection of its own, as RabbitMQ advises (its flow
            # control throttles a publishing connection, not the consumer's; faster too)
            self._own_dest = self._open(self.env.broker_url())
        if self._own_dest is not None:  # (on SOURCE's connection, a window ends at once)
            self.overlap = True
            self.step = max(1, self.plan.window // 2)
        try:
            self._check_destination(self.dest_backend(source))
            if start == 0 and not self.plan.follow:
                self.env.say(self.tally.line(self.plan))
                return
            try:
                if self._in_engine():
                    self._move_ready(source)
                else:
                    self._consume_and_move(start)
            except KeyboardInterrupt:
                self.env.say(f"amq: interrupted: {self.tally.line(self.plan)}")
                raise
        finally:
            if self._own_dest is not None:
                self._own_dest.close()
        self.env.say(self.tally.line(self.plan))

    def _in_engine(self) -> bool:
        """Whether the local broker moves the messages itself (``Backend.move_ready``: one
        store transaction per window): from a local queue to the same store, every
        message going the same way (no --where, no --to-origin), and not --follow (which
        waits for arrivals as a consumer), and not from a stream (copied by a reader)."""
        plan = self.plan
        return (self._own_dest is None and self.env.broker_url().scheme == "local"
                and not (plan.to_origin or plan.select is not None or plan.follow
                         or self.stream))

    def _consume_and_move(self, start: int) -> None:
        sub = self._consumer()
        try:
            self._loop(sub, start)
        finally:
            sub.cancel()  # what was not acknowledged goes back to SOURCE

    def _open(self, url: config.BrokerURL) -> Backend:
        from ..backends import open_backend
        return open_backend(long_running(url))

    def dest_backend(self, source: Backend | None) -> Backend | None:
        return self._own_dest if self._own_dest is not None else source

    def _check_destination(self, dest: Backend | None) -> None:
        """A passive declare of DEST or the exchange: a typo must not create a queue, and
        nothing is taken from SOURCE for a destination that is not there."""
        assert dest is not None
        plan = self.plan
        try:
            if plan.dest is not None:
                dest.declare_queue(plan.dest, passive=True)
            elif plan.exchange is not None and plan.exchange != DEFAULT_EXCHANGE:
                dest.declare_exchange(plan.exchange, passive=True)
        except errors.NotFound as err:
            err.hint = "nothing was moved"
            raise

    def _consumer(self) -> Resilient:
        try:
            return self.env.consumer(self._subscribe)
        except errors.AMQPNotImplemented as err:
            if "global qos" not in str(err):
                raise
        # RabbitMQ closed the connection (540): a quorum queue takes no channel-wide
        # limit, so a consumer's prefetch, on a new connection
        self.per_consumer = True
        self.env.reopen(long_running=True)
        return self.env.consumer(self._subscribe)

    def _copy_stream(self, source: Backend) -> int:
        """A stream SOURCE is copied: reading removes nothing from its log. From its
        first message to its end (as the local broker knows it; on RabbitMQ until no
        message came for ``IDLE`` seconds), with a consumer's prefetch (a stream takes
        no channel-wide limit); how many messages that is at most."""
        self.stream = True
        self.per_consumer = True
        end = source.stream_end(self.plan.source)
        self.env.say(f"amq: '{self.plan.source}' is a stream: its messages are copied, "
                     "from the first it keeps (the log keeps them all)")
        return end if end is not None else 1 << 62

    def _subscribe(self, backend: Backend, again: bool) -> Consume:
        if self.stream:  # again: after the last offset copied
            after = self.last_offset
            offset = "first" if after is None else after + 1
            return Consume(self.plan.source, self.plan.window,
                           arguments={"x-stream-offset": offset})
        if again:  # what was held went back to SOURCE with the old connection
            self.held.clear()
            self.unmatched = 0
        if self.per_consumer:  # no more than is to be taken: requeues may reorder there
            return Consume(self.plan.source, max(1, min(3 * self.plan.window,
                                                        self._to_take())))
        return Consume(self.plan.source, 0, window=self._window())

    def _to_take(self) -> int:
        """How many messages the move may still take (held ones included)."""
        plan, taken = self.plan, self.tally.moved + len(self.held)
        left = [plan.window * 3]
        if not plan.follow:
            left.append(self.start - taken)
        if plan.limit is not None:
            left.append(plan.limit - self.tally.moved + len(self.held))
        return min(left)

    def _window(self) -> int:
        """The channel's limit on unacknowledged deliveries: two windows (one published
        while the next is delivered), beside what is held."""
        return 2 * self.plan.window + len(self.held)

    def _room(self) -> bool:
        """Whether more can be held: a consumer's fixed prefetch holds a window at most."""
        if self.per_consumer and len(self.held) >= self.plan.window:
            self.env.say(f"amq: {len(self.held)} messages held (not to be moved): '"
                         f"{self.plan.source}' takes no channel-wide limit (a quorum "
                         "queue?), so the move stops here; move them away to go on")
            return False
        return True

    # --- in the engine ----------------------------------------------------------------

    def _move_ready(self, backend: Backend) -> None:
        """Window by window, what SOURCE held at the start (``--count`` at most)."""
        plan, tally = self.plan, self.tally
        key = plan.dest if plan.dest is not None else plan.key
        while True:
            want = min(plan.window, self.start - tally.moved)
            if plan.limit is not None:
                want = min(want, plan.limit - tally.moved)
            if want <= 0:
                return
            outcomes = backend.move_ready(plan.source, want, plan.publish_exchange, key)
            if not outcomes:
                return
            failed: list[int] = []
            if outcomes.count(PublishOutcome.ROUTED) < len(outcomes):
                failed = [i for i, o in enumerate(outcomes) if o is not PublishOutcome.ROUTED]
            before = tally.moved
            tally.moved += len(outcomes) - len(failed)
            if failed:
                first = failed[0]
                raise self._failure(Failure(before + first + 1, key, outcomes[first],
                                            len(failed)))
            self._pace()

    # --- the loop -------------------------------------------------------------------

    def _loop(self, sub: Resilient, start: int) -> None:
        plan = self.plan
        wait = FOLLOW_WAIT if plan.follow else IDLE
        while True:
            want = self._want(start)
            if want <= 0 or not self._room():
                break
            # (a fetch that reconnected returns deliveries of the new connection: what
            # was held went back to SOURCE, and _subscribe forgot it)
            batch = sub.fetch(want, 0 if self.ahead else wait)
            if batch:
                self._move_batch(sub, batch)
            elif self.ahead:  # nothing more at once: the window out there first
                self._end(sub)
            elif plan.follow:
                self._rest()
                self._keep_dest()
            else:
                break
        while self.ahead:
            self._end(sub)

    def _want(self, start: int) -> int:
        """How many deliveries the next fetch may take: a step, within what is left to
        take (of what SOURCE held at the start, and of --count)."""
        plan, moved, flying = self.plan, self.tally.moved, self._flying()
        want = self.step
        if not plan.follow:
            want = min(want, start - moved - len(self.held) - flying)
        if plan.limit is not None:
            want = min(want, plan.limit - moved - flying)
        return want

    def _flying(self) -> int:
        """Messages published and not yet settled on SOURCE."""
        return sum(len(w.going) for w in self.ahead)

    def _move_batch(self, sub: Resilient, batch: list[Delivery]) -> None:
        """Publish what of a batch goes, once the windows out there leave room for it
        (a window at most in flight: what a kill -9 may duplicate)."""
        going, messages = self._messages(batch)
        if len(going) < len(batch):
            self.tally.kept = len(self.held) - self.unmatched
            self.tally.unmatched = self.unmatched
            if not self.per_consumer:
                sub.set_window(self._window())
        if not going:
            return
        while self.ahead and self._flying() + len(going) > self.plan.window:
            self._end(sub)

        def begin(dest: Backend) -> bool:
            dest.begin_each(self.plan.publish_exchange, messages)
            return True
        if self._to_dest(sub, begin):
            self.ahead.append(Window(going, messages, complete=len(going) == len(batch)))
            if not self.overlap:
                self._end(sub)
        # else the source's connection was lost: those come back, flagged

    def _messages(self, batch: list[Delivery]) -> tuple[list[Delivery], list[Message]]:
        """The deliveries that go and their messages; the others are held. Equal
        properties become one object: the local engine routes a run of messages with
        the same key and properties object once, and RabbitMQ's framing encodes them
        once."""
        plan = self.plan
        fixed = plan.dest if plan.dest is not None else plan.key
        last = self._last_props
        going: list[Delivery] = []
        messages: list[Message] = []
        selected = self.selected
        for d in batch:
            if selected is not None and not selected.matches(d):
                self.held.append(d)
                self.unmatched += 1
                continue
            key = fixed if fixed is not None else routing_key_for(plan, d)
            if key is None:
                self.held.append(d)
                continue
            props = d.properties
            if self.stream:  # the offset of SOURCE's log is not the copy's
                headers = {k: v for k, v in (props.headers or {}).items()
                           if k != "x-stream-offset"}
                props = props._replace(headers=headers or None)
            if props is not last:
                if props == last:
                    props = last
                else:
                    last = props
            going.append(d)
            messages.append(Message(d.body, props, key))
        self._last_props = last
        return going, messages

    def _to_dest(self, sub: Resilient, call: Callable[[Backend], T]) -> T | None:
        """``call`` on the destination. On a lost connection of its own (--to-url, and
        RabbitMQ's publisher) connect again, publish every window out there again (at
        least once) and call again; on the source's own connection, None: its deliveries
        are gone back to SOURCE, with every window out there."""
        backoff: Backoff | None = None
        again = False
        while True:
            dest = self.dest_backend(sub.backend)
            if dest is None:
                self.ahead.clear()
                return None
            try:
                if again:
                    for window in self.ahead:
                        dest.begin_each(self.plan.publish_exchange, window.messages)
                    again = False
                return call(dest)
            except errors.AmqError as err:
                if not is_loss(err):
                    raise
                if self._own_dest is None:
                    sub.lost(err)
                    self.ahead.clear()
                    return None
                backoff = backoff or Backoff()
                self.env.say(f"amq: connection to the destination lost: {err}; "
                             "reconnecting")
                self._reconnect_dest(backoff)
                again = True

    def _keep_dest(self) -> None:
        """While --follow waits: the destination's own connection answers heartbeats
        (else RabbitMQ drops an idle one), and is connected again when it was lost."""
        dest = self._own_dest
        if dest is not None and not dest.alive():
            self.env.say("amq: connection to the destination lost; reconnecting")
            self._reconnect_dest(Backoff())

    def _reconnect_dest(self, backoff: Backoff) -> None:
        assert self._own_dest is not None
        while True:
            time.sleep(backoff.next())
            try:
                self._own_dest.reconnect()
            except errors.BrokerUnreachable:
                continue
            self.env.say(f"amq: reconnected to the destination {self._own_dest.display_url}")
            return

    def _end(self, sub: Resilient) -> None:
        """Settle the oldest window out there by its outcomes; at a failure, settle every
        window out there too (what reached the destination is acknowledged), then stop."""
        first = self._settle_next(sub)
        if first is None:
            return
        failed = first.failed
        while self.ahead:
            more = self._settle_next(sub)
            failed += more.failed if more is not None else 0
        raise self._failure(first._replace(failed=failed))

    def _settle_next(self, sub: Resilient) -> Failure | None:
        outcomes = self._to_dest(sub, lambda dest: dest.end_each())
        if outcomes is None:
            return None  # the source's connection was lost: those come back, flagged
        return self._settle(sub, self.ahead.pop(0), outcomes)

    def _settle(self, sub: Resilient, window: Window,
                outcomes: list[PublishOutcome]) -> Failure | None:
        """Acknowledge what reached the destination; leave the failed ones in SOURCE,
        and say which was the first."""
        going = window.going
        failed: list[tuple[Delivery, PublishOutcome]] = [
            (d, o) for d, o in zip(going, outcomes, strict=True)
            if o is not PublishOutcome.ROUTED]
        if not failed and window.complete and not self.held:
            sub.ack(going[-1].delivery_tag, multiple=True)
        else:
            for d, o in zip(going, outcomes, strict=True):
                if o is PublishOutcome.ROUTED:
                    sub.ack(d.delivery_tag)
        before = self.tally.moved
        self.tally.moved += len(going) - len(failed)
        if self.stream and not failed:
            self.last_offset = (going[-1].properties.headers or {}).get("x-stream-offset")
        if not failed:
            self._pace()
            return None
        for d, _o in ([] if self.stream else failed):  # a stream keeps them anyway
            sub.nack(d.delivery_tag, requeue=True)
        first, outcome = failed[0]
        return Failure(before + going.index(first) + 1, routing_key_for(self.plan, first),
                       outcome, len(failed))

    def _failure(self, failure: Failure) -> errors.AmqError:
        """The error of a move stopped by ``failure``."""
        plan = self.plan
        key = f"routing key '{failure.routing_key}'" if failure.routing_key is not None \
            else "its own routing key"
        what = f"message {failure.position} ({key}) to exchange '{plan.publish_exchange}'"
        others = f" ({failure.failed} of its window)" if failure.failed > 1 else ""
        rest = f"{self.tally.line(plan)}; it and the rest stay in '{plan.source}'"
        if failure.outcome is PublishOutcome.UNROUTABLE:
            return errors.Unroutable(f"{what} reached no queue{others}, returned: {rest}")
        return errors.Nacked(f"{what} was refused by the broker (nack){others}: {rest}")

    def _rest(self) -> None:
        """--rate with --follow: time spent waiting for arrivals earns no burst after."""
        if self.plan.rate is not None:
            self.tally.started = time.monotonic() - self.tally.moved / self.plan.rate

    def _pace(self) -> None:
        """--rate: sleep until the moves so far are due."""
        rate = self.plan.rate
        if rate is None:
            return
        due = self.tally.started + self.tally.moved / rate
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)
