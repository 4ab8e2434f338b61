"""``amq receive``: consume from a queue, or subscribe to an exchange, and write messages out.

A message is acknowledged only after it has been written out (and flushed), so a crash
redelivers rather than loses it; what could not be written goes back to the queue.
"""


import os
from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from ..broker.model import Delivery
from ..formats import OutputFormat, encode_batch
from . import app, env_of, progress
from .env import Environment
from .workers import OnFailure, exec_each, exec_settings

if TYPE_CHECKING:
    from ..backends.base import Backend

RECEIVE_HELP = """Receive messages from QUEUE (declared first, like the tutorial's
receive.py), or with -e from an exchange through a fresh exclusive queue bound with the
-k keys. Waits for messages until Ctrl+C, unless --count or --timeout say otherwise.

Each message is acknowledged once written out. Formats: pretty (terminal default), raw
(one body per line: pipe default), body (bodies byte for byte), nul (NUL after each
body), json (one object per line; `amq send --format json` reads it back).

--exec CMD runs CMD for each message instead (body on stdin, metadata in AMQ_*
variables), --prefetch N of them at once, and acks each message whose CMD exits 0."""

DEFAULT_PREFETCH = 250  # RabbitMQ suggests 100-300 for throughput


@app.command("receive", help=RECEIVE_HELP)
def receive(
    ctx: typer.Context,
    queue: Annotated[str | None, typer.Argument(
        metavar="[QUEUE]", show_default=False, help="The queue to consume from.")] = None,
    exchange: Annotated[str | None, typer.Option(
        "--exchange", "-e", metavar="NAME",
        help="Subscribe to an exchange through a fresh exclusive queue.")] = None,
    keys: Annotated[list[str] | None, typer.Option(
        "--key", "-k", metavar="KEY", help="Binding key for -e; repeat.")] = None,
    count: Annotated[int | None, typer.Option(
        "--count", "-n", min=1, metavar="N", help="Stop after N messages.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", "-t", min=0, metavar="SECONDS",
        help="Stop when no message arrives for this long (exit 9 if none came at all).")
    ] = None,
    no_ack: Annotated[bool, typer.Option(
        "--no-ack", help="Let the broker forget messages as it sends them.")] = False,
    requeue: Annotated[bool, typer.Option(
        "--requeue", help="Look without taking: put the messages back when done.")] = False,
    prefetch: Annotated[int | None, typer.Option(
        "--prefetch", min=1, metavar="N", show_default=False,
        help=f"Most unacknowledged messages held at once (default {DEFAULT_PREFETCH}); with "
             "--exec, how many commands run at once (default 1).")] = None,
    format: Annotated[OutputFormat | None, typer.Option(
        "--format", "-F", case_sensitive=False,
        help="Output format (default: pretty on a terminal, raw in a pipe).")] = None,
    null: Annotated[bool, typer.Option("--null", "-0", help="Same as --format nul.")] = False,
    no_declare: Annotated[bool, typer.Option(
        "--no-declare", help="Do not declare the queue first.")] = False,
    exec_: Annotated[str | None, typer.Option(
        "--exec", metavar="CMD",
        help="Run CMD (sh -c) per message: body on stdin, AMQ_* variables; ack on exit 0.")
    ] = None,
    on_failure: Annotated[OnFailure | None, typer.Option(
        "--on-failure", case_sensitive=False, show_default=False,
        help="With --exec, a failed command's message: requeue (default), or reject "
             "(dropped, or dead-lettered when the queue has a DLX).")] = None,
) -> None:
    env = env_of(ctx)
    if (queue is None) == (exchange is None):
        raise errors.UsageError("give a QUEUE, or -e EXCHANGE to subscribe (not both)")
    if queue == "":
        raise errors.UsageError('QUEUE is empty: name a queue, or use -e EXCHANGE')
    if keys and exchange is None:
        raise errors.UsageError("-k/--key goes with -e EXCHANGE")
    if requeue and no_ack:
        raise errors.UsageError("--requeue and --no-ack exclude each other")
    settings = None if exec_ is None and on_failure is None else exec_settings(
        exec_, prefetch, count, timeout, on_failure,
        no_ack or requeue or null or format is not None)
    fmt = OutputFormat.NUL if null else format or (
        OutputFormat.PRETTY if env.stdout_isatty else OutputFormat.RAW)
    backend = env.backend()
    if exchange is not None:
        queue = _subscribe(env, backend, exchange, keys)
    elif not no_declare and queue is not None:  # not None: the check above
        backend.ensure_queue(queue)
    assert queue is not None
    if settings is not None:
        exec_each(env, backend, queue, settings)
        return
    prefetch = prefetch or DEFAULT_PREFETCH
    if requeue:
        prefetch = count or 0  # hold everything seen, put it all back at the end
    elif count is not None:
        prefetch = min(prefetch, count)
    if fmt is OutputFormat.PRETTY and env.stderr_isatty and count is None:
        env.say(f" [*] Waiting for messages on '{queue}'. To exit press CTRL+C")
    received = _consume(env, backend, queue, fmt, count, timeout, prefetch, no_ack, requeue)
    if received == 0 and timeout is not None:
        raise errors.NothingReceived(f"no message arrived on '{queue}' within {timeout:g}s")


def _subscribe(env: Environment, backend: "Backend", exchange: str,
               keys: list[str] | None) -> str:
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


def _consume(env: Environment, backend: "Backend", queue: str, fmt: OutputFormat,
             count: int | None, timeout: float | None, prefetch: int, no_ack: bool,
             requeue: bool) -> int:
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
