"""``amq receive``: consume from a queue, or subscribe to an exchange, and write messages out.

A message is acknowledged only after it has been written out (and flushed), so a crash
redelivers rather than loses it; what could not be written goes back to the queue.
"""


import os
from typing import NamedTuple

import typer

from .. import errors
from ..broker.model import Delivery
from ..formats import OutputFormat, encode_batch
from . import app, env_of, progress
from . import consumer_options as options
from .consumer_options import DEFAULT_PREFETCH
from .env import Environment
from .workers import OnFailure, Settings, exec_each, exec_settings

RECEIVE_HELP = """Receive messages from QUEUE (declared first, like the tutorial's
receive.py), or with -e from an exchange through a fresh exclusive queue bound with the
-k keys. Waits for messages until Ctrl+C, unless --count or --timeout say otherwise.

Each message is acknowledged once written out. Formats: pretty (terminal default), raw
(one body per line: pipe default), body (bodies byte for byte), nul (NUL after each
body), json (one object per line; `amq send --format json` reads it back).

--exec CMD runs CMD for each message instead (body on stdin, metadata in AMQ_*
variables), --prefetch N of them at once, and acks each message whose CMD exits 0."""


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
    count: int | None
    timeout: float | None
    no_ack: bool
    requeue: bool
    banner: bool  # say " [*] Waiting for messages" on stderr


def plan_receive(queue: str | None = None, *, exchange: str | None = None,
                 keys: list[str] | None = None, count: int | None = None,
                 timeout: float | None = None, no_ack: bool = False, requeue: bool = False,
                 prefetch: int | None = None, format: OutputFormat | None = None,
                 null: bool = False, no_declare: bool = False, exec_: str | None = None,
                 on_failure: OnFailure | None = None, stdout_isatty: bool = False,
                 stderr_isatty: bool = False) -> ReceivePlan:
    """``amq receive``'s flags as a plan, or the usage error the first bad flag gives."""
    _check_source(queue, exchange, keys)
    if requeue and no_ack:
        raise errors.UsageError("--requeue and --no-ack exclude each other")
    work = _work(exec_, on_failure, prefetch, count, timeout,
                 writes=[no_ack, requeue, null, format is not None])
    fmt = OutputFormat.NUL if null else output_format(format, stdout_isatty)
    declare = exchange is None and not no_declare
    if work is not None:
        return ReceivePlan(queue, exchange, keys, declare, fmt, work, work.prefetch, count,
                           timeout, no_ack, requeue, banner=False)
    banner = fmt is OutputFormat.PRETTY and stderr_isatty and count is None
    return ReceivePlan(queue, exchange, keys, declare, fmt, None,
                       consumer_prefetch(prefetch, count, requeue), count, timeout, no_ack,
                       requeue, banner)


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


def consumer_prefetch(prefetch: int | None, count: int | None, requeue: bool) -> int:
    """--prefetch, or the default; no more than --count; with --requeue everything seen is
    held (and put back at the end), so --count or unlimited (0)."""
    if requeue:
        return count or 0
    chosen = prefetch or DEFAULT_PREFETCH
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
    format: options.Format[OutputFormat] = None,
    null: options.NulFormat = False,
    no_declare: options.NoDeclare = False,
    exec_: options.Exec = None,
    on_failure: options.OnFailure[OnFailure] = None,
) -> None:
    env = env_of(ctx)
    plan = plan_receive(queue, exchange=exchange, keys=keys, count=count, timeout=timeout,
                        no_ack=no_ack, requeue=requeue, prefetch=prefetch, format=format,
                        null=null, no_declare=no_declare, exec_=exec_, on_failure=on_failure,
                        stdout_isatty=env.stdout_isatty, stderr_isatty=env.stderr_isatty)
    backend = env.backend()
    queue = _source(env, backend, plan)
    if plan.work is not None:
        exec_each(env, backend, queue, plan.work)
        return
    if plan.banner:
        env.say(f" [*] Waiting for messages on '{queue}'. To exit press CTRL+C")
    received = _consume(env, backend, queue, plan.format, plan.count, plan.timeout,
                        plan.prefetch, plan.no_ack, plan.requeue)
    if received == 0 and plan.timeout is not None:
        raise errors.NothingReceived(
            f"no message arrived on '{queue}' within {plan.timeout:g}s")


def _source(env: Environment, backend, plan: ReceivePlan) -> str:
    """The queue to consume: QUEUE (declared first unless --no-declare), or a fresh one
    bound to -e EXCHANGE."""
    if plan.exchange is not None:
        return _subscribe(env, backend, plan.exchange, plan.keys)
    assert plan.queue is not None
    if plan.declare:
        backend.ensure_queue(plan.queue)
    return plan.queue


def _subscribe(env: Environment, backend, exchange: str, keys: list[str] | None) -> str:
    """A server-named exclusive queue bound to the exchange with each key. Without -k:
    on a topic exchange '#' (everything, said on stderr); on fanout and headers exchanges
    the empty key, which they ignore (a headers binding without arguments matches every
    message); on a direct exchange the empty key, saying what that receives."""
    backend.declare_exchange(exchange, passive=True)
    if not keys:
        keys = [_default_key(env, backend, exchange)]
    name = backend.declare_queue("", exclusive=True).queue
    for key in keys:
        backend.bind(exchange, name, key)
    return name


def _default_key(env: Environment, backend, exchange: str) -> str:
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


def _consume(env: Environment, backend, queue: str, fmt: OutputFormat, count: int | None,
             timeout: float | None, prefetch: int, no_ack: bool, requeue: bool) -> int:
    sub = backend.consume(queue, prefetch=prefetch, no_ack=no_ack)
    writer = _Writer(env, fmt)
    bar = progress.for_receive(env, count)
    received = 0
    try:
        while count is None or received < count:
            want = prefetch or DEFAULT_PREFETCH
            if count is not None:
                want = min(want, count - received)
            batch = sub.fetch(want, timeout)
            if not batch:
                break
            written = writer.write(batch)
            received += written
            bar.advance(written)
            if written and not no_ack and not requeue:
                sub.ack(batch[written - 1].delivery_tag, multiple=True)
            if written < len(batch):
                raise BrokenPipeError
    finally:
        bar.close()
        if requeue and received:
            try:
                sub.nack(0, multiple=True, requeue=True)
            except errors.AmqError:
                pass  # the cancel below requeues them too
        sub.cancel()
    return received


class _Writer:
    """Writes deliveries to stdout; how many made it out before a closed pipe."""

    def __init__(self, env: Environment, fmt: OutputFormat) -> None:
        self.env = env
        self.fmt = fmt
        self.fd = env.stdout_fd
        self.count = 0
        if fmt is OutputFormat.PRETTY:
            from ..render import MessagePrinter
            self.printer = MessagePrinter(env.console())

    def write(self, batch: list[Delivery]) -> int:
        if self.fmt is OutputFormat.PRETTY:
            for i, d in enumerate(batch):
                try:
                    self.count += 1
                    self.printer.print(d, self.count)
                except BrokenPipeError:
                    return i
            return len(batch)
        chunks = encode_batch(batch, self.fmt)
        data = memoryview(b"".join(chunks))
        sent = 0
        try:
            while sent < len(data):
                sent += os.write(self.fd, data[sent:])
        except BrokenPipeError:
            done, total = 0, 0
            for chunk in chunks:
                total += len(chunk)
                if total > sent:
                    break
                done += 1
            return done
        return len(batch)
