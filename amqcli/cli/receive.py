"""``amq receive``: consume from a queue, or subscribe to an exchange, and write messages out.

A message is acknowledged only once delivered: to a file, a terminal or a socket, after it
has been written; into a pipe, once the reader has taken it out of the pipe and is still
there a moment later (``output.PipeOutput``). A crash redelivers rather than loses it, and
what the reader may not have used goes back to the queue when the reader goes away.
"""

import time
from typing import TYPE_CHECKING, NamedTuple

import typer

from .. import errors
from ..amqp.model import Delivery
from ..backends.reconnect import Consume
from ..formats import OutputFormat
from ..output import HOLD, DeliveryWriter, PipeOutput, ReaderGone, is_pipe
from . import consumer_options as options
from . import progress
from .app import app, env_of
from .consumer_options import DEFAULT_PREFETCH, PIPE_PREFETCH
from .env import Environment
from .streams import Reading, StreamPlan, Until, plan_stream
from .workers import OnFailure, Settings, exec_each, exec_settings

if TYPE_CHECKING:
    from ..backends.base import Backend, Subscription
    from ..capture import SaveWriter

RECEIVE_HELP = """Receive messages from QUEUE (declared first, like the tutorial's
receive.py), or with -e from an exchange through a fresh exclusive queue bound with the
-k keys. Waits for messages until Ctrl+C, unless --count or --timeout say otherwise.

Each message is acknowledged once written out; into a pipe, once the reader has taken it
and is still there a moment later (what it may not have used goes back when it exits).
Formats: pretty (terminal default), raw
(one body per line: pipe default), body (bodies byte for byte), nul (NUL after each
body), json (one object per line; `amq send --format json` reads it back).

--exec CMD runs CMD for each message instead (body on stdin, metadata in AMQ_*
variables), --prefetch N of them at once, and acks each message whose CMD exits 0.

A stream (declare queue --type stream) is read without consuming: from --offset (first,
last, next, N or a TIME; default next) and, with --to-end, up to its end as it was when
the read started; --format json gives each message's stream_offset."""

# Into a pipe the default prefetch is PIPE_PREFETCH (consumer_options.py), but no more than
# this many bytes of messages: the channel's window (basic.qos global) starts at
# WINDOW_START and follows the size of the messages seen (``_Window``).
PIPE_BYTES = 64 << 20
WINDOW_START = 100
PIPE_BATCH = 1000  # deliveries per fetch into a pipe: claims overlap the hold of others
PENDING_LIMIT = 1 << 20  # bytes received and not yet written before fetching waits
IDLE_LOOK = 0.2  # seconds between looks at a pipe's reader while no message comes
WATCHED_LOOK = 10.0  # the same where the subscription's own wait watches the pipe


# --- flags to a plan (pure: tests/unit/test_plans.py) -----------------------------------

def output_format(format: OutputFormat | None, stdout_isatty: bool) -> OutputFormat:
    """The format asked for, else pretty on a terminal and raw in a pipe."""
    return format or (OutputFormat.PRETTY if stdout_isatty else OutputFormat.RAW)


class ReceivePlan(NamedTuple):
    """What ``amq receive`` consumes, how it takes messages and writes them out."""

    queue: str | None  # None: subscribe to `exchange`
    exchange: str | None
    keys: list[str] | None
    declare: bool  # declare QUEUE first (never with -e)
    format: OutputFormat
    work: Settings | None  # --exec: run a command per message instead of writing it
    prefetch: int  # the consumer's (0: unlimited)
    window: int  # the channel's (basic.qos global) into a pipe, following sizes; 0: none
    limit: int | None  # --count (a field named count would hide tuple.count)
    timeout: float | None
    no_ack: bool
    requeue: bool
    banner: bool  # say " [*] Waiting for messages" on stderr
    priority: int = 0  # the consumer's x-priority
    stream: StreamPlan | None = None  # --offset, --to-end


def plan_receive(queue: str | None = None, *, exchange: str | None = None,
                 keys: list[str] | None = None, count: int | None = None,
                 timeout: float | None = None, no_ack: bool = False, requeue: bool = False,
                 prefetch: int | None = None, format: OutputFormat | None = None,
                 null: bool = False, no_declare: bool = False, exec_: str | None = None,
                 on_failure: OnFailure | None = None, stdout_isatty: bool = False,
                 stderr_isatty: bool = False, stdout_is_pipe: bool = False,
                 priority: int = 0, offset: str | None = None,
                 to_end: bool = False) -> ReceivePlan:
    """``amq receive``'s flags as a plan, or the usage error the first bad flag gives."""
    _check_source(queue, exchange, keys)
    stream = plan_stream(offset, to_end)
    if stream is not None and exchange is not None:
        raise errors.UsageError("--offset and --to-end read a stream: give its QUEUE, not -e")
    if requeue and no_ack:
        raise errors.UsageError("--requeue and --no-ack exclude each other")
    work = _work(exec_, on_failure, prefetch, count, timeout,
                 writes=[no_ack, requeue, null, format is not None])
    fmt = OutputFormat.NUL if null else output_format(format, stdout_isatty)
    declare = exchange is None and not no_declare
    if work is not None:
        return ReceivePlan(queue, exchange, keys, declare, fmt, work, work.prefetch, 0, count,
                           timeout, no_ack, requeue, banner=False, priority=priority,
                           stream=stream)
    pipe_default = prefetch is None and stdout_is_pipe
    chosen = consumer_prefetch(prefetch, count, requeue, pipe_default)
    window = min(chosen, WINDOW_START) if pipe_default and not (requeue or no_ack) else 0
    banner = fmt is OutputFormat.PRETTY and stderr_isatty and count is None
    return ReceivePlan(queue, exchange, keys, declare, fmt, None, chosen, window, count,
                       timeout, no_ack, requeue, banner, priority, stream)


def _work(exec_: str | None, on_failure: OnFailure | None, prefetch: int | None,
          count: int | None, timeout: float | None, writes: list[bool]) -> Settings | None:
    """--exec's settings (None without --exec or --on-failure); ``writes``: the flags that
    choose how messages are written or taken, which --exec refuses."""
    if exec_ is None and on_failure is None:
        return None
    return exec_settings(exec_, prefetch, count, timeout, on_failure, any(writes))


def _check_source(queue: str | None, exchange: str | None, keys: list[str] | None) -> None:
    if (queue is None) == (exchange is None):
        raise errors.UsageError("give a QUEUE, or -e EXCHANGE to subscribe (not both)")
    if queue == "":
        raise errors.UsageError('QUEUE is empty: name a queue, or use -e EXCHANGE')
    if keys and exchange is None:
        raise errors.UsageError("-k/--key goes with -e EXCHANGE")


def consumer_prefetch(prefetch: int | None, count: int | None, requeue: bool,
                      pipe: bool = False) -> int:
    """--prefetch, or the default (``pipe``: into a pipe, where messages are held longer);
    no more than --count; with --requeue everything seen is held (and put back at the
    end), so --count or unlimited (0)."""
    if requeue:
        return count or 0
    chosen = prefetch or (PIPE_PREFETCH if pipe else DEFAULT_PREFETCH)
    return chosen if count is None else min(chosen, count)


# --- the command: I/O only -----------------------------------------------------------------

@app.command("receive", help=RECEIVE_HELP)
def receive(
    ctx: typer.Context,
    queue: options.Queue = None,
    exchange: options.SubscribeExchange = None,
    keys: options.Keys = None,
    count: options.Count = None,
    timeout: options.Timeout = None,
    no_ack: options.NoAck = False,
    requeue: options.Requeue = False,
    prefetch: options.Prefetch = None,
    priority: options.Priority = 0,
    format: options.Format[OutputFormat] = None,
    null: options.NulFormat = False,
    no_declare: options.NoDeclare = False,
    exec_: options.Exec = None,
    on_failure: options.OnFailure[OnFailure] = None,
    no_reconnect: options.NoReconnect = False,
    save: options.Save = None,
    offset: options.StreamOffset = None,
    to_end: options.ToEnd = False,
) -> None:
    env = env_of(ctx)
    if save is not None and (exec_ is not None or on_failure is not None):
        raise errors.UsageError("--save and --exec exclude each other")
    plan = plan_receive(queue, exchange=exchange, keys=keys, count=count, timeout=timeout,
                        no_ack=no_ack, requeue=requeue, prefetch=prefetch, format=format,
                        null=null, no_declare=no_declare, exec_=exec_, on_failure=on_failure,
                        stdout_isatty=env.stdout_isatty, stderr_isatty=env.stderr_isatty,
                        stdout_is_pipe=is_pipe(env.stdout_fd), priority=priority,
                        offset=offset, to_end=to_end)
    source = Source(env, plan)
    resilient = env.consumer(source, reconnect=not no_reconnect)
    reading = source.reading
    if plan.work is not None:  # with --to-end: until idle (a pool settles out of order)
        exec_each(env, resilient, plan.work._replace(timeout=reading.idle(plan.work.timeout)))
        return
    sub: Subscription = Until(resilient, reading) if reading.stream else resilient
    timeout = reading.idle(plan.timeout)
    if plan.banner:
        env.say(f" [*] Waiting for messages on '{sub.queue}'. To exit press CTRL+C")
    received = _consume(env, sub, plan.format, plan.limit, timeout, plan.prefetch,
                        0 if reading.stream else plan.window, plan.no_ack, plan.requeue, save,
                        stream=reading.stream)
    if received == 0 and plan.timeout is not None:
        raise errors.NothingReceived(
            f"no message arrived on '{sub.queue}' within {plan.timeout:g}s")


class Source:
    """Receive's ``subscribe`` hook (``backends/reconnect.py``): declares QUEUE (unless
    --no-declare), or a fresh queue bound to -e EXCHANGE; again after a reconnect, saying
    that an exchange's messages published meanwhile were not seen."""

    def __init__(self, env: Environment, plan: ReceivePlan) -> None:
        self.env = env
        self.plan = plan
        self.keys = plan.keys
        self.reading = Reading(plan.stream)  # a stream's: where to start, resume, stop

    def __call__(self, backend: "Backend", again: bool) -> Consume:
        plan = self.plan
        if plan.exchange is not None:
            queue, self.keys = _subscribe(self.env, backend, plan.exchange, self.keys)
            if again:
                self.env.say(f"amq: subscribed to '{plan.exchange}' again through a new "
                             f"queue '{queue}': messages published while disconnected "
                             "were not seen")
        else:
            assert plan.queue is not None
            queue = plan.queue
            if plan.declare:
                backend.ensure_queue(queue)
            reject = plan.work is not None and plan.work.on_failure is OnFailure.REJECT
            self.reading.check(backend, queue, requeue=plan.requeue, reject=reject,
                               window=bool(plan.window))
        prefetch = plan.work.prefetch if plan.work is not None else plan.prefetch
        window = 0 if self.reading.stream else plan.window  # streams take no global qos
        return Consume(queue, prefetch, plan.no_ack, window=window,
                       priority=plan.priority, arguments=self.reading.arguments())


def _subscribe(env: Environment, backend: "Backend", exchange: str,
               keys: list[str] | None) -> tuple[str, list[str]]:
    """A server-named exclusive queue bound to the exchange with each key, and the keys.
    Without -k: on a topic exchange '#' (everything, said on stderr); on fanout and
    headers exchanges the empty key, which they ignore (a headers binding without
    arguments matches every message); on a direct exchange the empty key, saying what
    that receives."""
    backend.declare_exchange(exchange, passive=True)
    if not keys:
        keys = [_default_key(env, backend, exchange)]
    name = backend.declare_queue("", exclusive=True).queue
    for key in keys:
        backend.bind(exchange, name, key)
    return name, keys


def _default_key(env: Environment, backend: "Backend", exchange: str) -> str:
    from .kinds import exchange_type
    kind = exchange_type(backend, exchange)
    if kind == "topic":
        env.say(f"amq: no -k given: bound with '#', every message of topic exchange "
                f"'{exchange}'")
        return "#"
    if kind not in ("fanout", "headers"):
        env.say(f"amq: no -k given: bound with the empty key, which receives only messages "
                f"sent to '{exchange}' with routing key '' (give -k KEY)")
    return ""


def _consume(env: Environment, sub: "Subscription", fmt: OutputFormat, count: int | None,
             timeout: float | None, prefetch: int, window: int, no_ack: bool,
             requeue: bool, save: str | None = None, stream: bool = False) -> int:
    """Write what ``sub`` delivers to stdout (or with ``save`` into that folder, a body
    file and a metadata file per message: ``capture.SaveWriter``); how many. Into a pipe,
    a stream's message is acknowledged once the reader has taken it, without the hold of
    a queue's (``output.HOLD``): an ack of a stream moves its credit and removes nothing,
    so nothing goes back to the stream if the reader goes, and the hold would only cap
    the rate at the prefetch each tenth of a second."""
    writer: DeliveryWriter | SaveWriter
    if save is not None:
        from .. import capture
        writer = capture.SaveWriter(save)
    else:
        writer = DeliveryWriter(env.stdout_fd, fmt,
                                env.console() if fmt is OutputFormat.PRETTY else None)
    bar = progress.for_receive(env, count)
    settle = not no_ack and not requeue
    received = 0
    try:
        if isinstance(writer, DeliveryWriter) and is_pipe(env.stdout_fd):
            out = PipeOutput(writer, hold=0.0 if stream else HOLD)
            try:
                received = _into_pipe(sub, out, bar, count, timeout, prefetch, settle,
                                      _Window(sub, prefetch, window))
            except KeyboardInterrupt:
                if settle:
                    _settle_last(sub, out)
                raise
        else:
            received = _into_file(sub, writer, bar, count, timeout, prefetch, settle)
    finally:
        bar.close()
        if requeue:
            try:
                sub.nack(0, multiple=True, requeue=True)
            except errors.AmqError:
                pass  # the cancel below requeues them too
        sub.cancel()
    return received


def _into_file(sub: "Subscription", writer: "DeliveryWriter | SaveWriter", bar: progress.Progress,
               count: int | None, timeout: float | None, prefetch: int, settle: bool) -> int:
    """To a file, a terminal or a socket: each batch acknowledged once written."""
    received = 0
    while count is None or received < count:
        batch = sub.fetch(_want(prefetch, count, received), timeout)
        if not batch:
            break
        written = writer.write(batch)
        received += written
        bar.advance(written)
        if written and settle:
            sub.ack(batch[written - 1].delivery_tag, multiple=True)
        if written < len(batch):
            raise ReaderGone
    return received


def _into_pipe(sub: "Subscription", out: PipeOutput, bar: progress.Progress, count: int | None,
               timeout: float | None, prefetch: int, settle: bool, window: "_Window") -> int:
    """Into a pipe: written without blocking while the connection is serviced, each
    message acknowledged once settled (``output.PipeOutput``); ends when the reader goes
    (``ReaderGone``: what is unsettled goes back to the queue with the cancel), or
    once every message received is settled."""
    received = 0
    last_arrival = time.monotonic()
    look = WATCHED_LOOK if sub.watch(out.fd) else IDLE_LOOK  # a reader gone ends a wait
    while True:
        now = time.monotonic()
        idle_left = None if timeout is None else last_arrival + timeout - now
        more = (count is None or received < count) and (idle_left is None or idle_left > 0)
        if not more and not out.pending and not (settle and out.busy):
            return received
        batch: list[Delivery] = []
        if more and len(out.pending) < PENDING_LIMIT:
            wait = 0.0 if out.pending else min(out.next_look(), look,
                                               look if idle_left is None else idle_left)
            batch = sub.fetch(min(PIPE_BATCH, _want(prefetch, count, received)), wait)
        else:
            sub.keep_alive()
        if batch:
            last_arrival = time.monotonic()
            received += len(batch)
            bar.advance(len(batch))
            out.add(batch)
            window.update(batch)
        out.pump()
        if out.pending:
            out.wait(min(out.next_look(), IDLE_LOOK))
            out.pump()
        elif not batch and not more:
            out.wait(min(out.next_look(), IDLE_LOOK))
        settled = out.settle()
        if settled and settle:
            sub.ack(settled[0], multiple=True)
        if out.gone():
            raise ReaderGone


class _Window:
    """Keeps the bytes held unacknowledged into a pipe near ``PIPE_BYTES``: RabbitMQ sends
    up to the prefetch count whatever the size of the messages, so the channel's window
    (``basic.qos`` global, live) follows their mean size, within the prefetch. A window of
    0 stays off."""

    def __init__(self, sub: "Subscription", prefetch: int, start: int) -> None:
        self.sub = sub
        self.prefetch = prefetch
        self.size = start
        self.seen = 0
        self.bytes = 0

    def update(self, batch: list[Delivery]) -> None:
        if not self.size:
            return
        self.seen += len(batch)
        self.bytes += sum(len(d.body) for d in batch)
        fits = PIPE_BYTES * self.seen // max(1, self.bytes)
        target = max(1, min(self.prefetch, fits))
        if 5 * target < 4 * self.size or target > 2 * self.size or (
                target == self.prefetch != self.size):
            self.sub.set_window(target)
            self.size = target


def _settle_last(sub: "Subscription", out: PipeOutput) -> None:
    """On Ctrl+C: what the reader has taken is acknowledged once its hold is over (a tenth
    of a second at most) if the reader is still there; the rest goes back to the queue."""
    try:
        for last in (False, True):
            settled = out.settle()
            if settled:
                sub.ack(settled[0], multiple=True)
            if last or not out.taken:
                return
            time.sleep(max(0.0, out.taken[-1][0] + HOLD - time.monotonic()))
    except (ReaderGone, errors.AmqError):
        pass  # the cancel requeues what is not acknowledged


def _want(prefetch: int, count: int | None, received: int) -> int:
    want = prefetch or DEFAULT_PREFETCH
    return want if count is None else min(want, count - received)
