"""``amq peek QUEUE``: show the messages a queue holds without consuming them.

The local broker reads them and changes nothing. RabbitMQ has no peek: a consumer with a
prefetch of the count holds them while they are written out, and then every one goes back
(``backends/peeking.py``). ``--where`` shows only those that match, among the first N.
"""

from __future__ import annotations

import typer

from .. import errors
from ..formats import OutputFormat
from ..output import DeliveryWriter, ReaderGone
from . import consumer_options as options
from .app import app, env_of
from .receive import output_format
from .streams import peek_stream, plan_stream

DEFAULT_COUNT = 10

PEEK_HELP = """Show the messages of QUEUE without consuming them: the first 10, --count N,
or --all; what the queue holds when peek starts (it never waits: an empty queue prints
nothing). With --where EXPR it shows the first N that match (looking through the whole
queue for them).

On the local broker nothing changes (no redelivered flag, order kept). On RabbitMQ, which
has no peek, a consumer with a prefetch of the count holds the messages while they are
shown and puts every one back at the end: RabbitMQ then flags them redelivered, and other
consumers cannot take them meanwhile. A quorum queue with a delivery limit counts each
return as a delivery (it could dead-letter them): refused unless --force.

A stream is read from --offset (default first) to its end as it was when peek started:
reading a stream removes nothing, on either broker.

Formats as for receive: pretty (terminal default), raw (pipe default), body, nul, json."""


def peek_limit(count: int | None, all_: bool) -> int | None:
    """How many messages to look at (None: all), or the usage error."""
    if all_ and count is not None:
        raise errors.UsageError("--count and --all exclude each other")
    return None if all_ else (count or DEFAULT_COUNT)


@app.command("peek", help=PEEK_HELP)
def peek(
    ctx: typer.Context,
    queue: options.PeekQueue,
    count: options.PeekCount = None,
    all_: options.PeekAll = False,
    where: options.Where = None,
    force: options.Force = False,
    format: options.Format[OutputFormat] = None,
    null: options.NulFormat = False,
    offset: options.PeekOffset = None,
) -> None:
    from ..where import compile_where
    env = env_of(ctx)
    start = plan_stream(offset, False)
    most = peek_limit(count, all_)
    selected = compile_where(where)
    fmt = OutputFormat.NUL if null else output_format(format, env.stdout_isatty)
    writer = DeliveryWriter(env.stdout_fd, fmt,
                            env.console() if fmt is OutputFormat.PRETTY else None)
    # With --where, N counts the messages shown: it looks through the whole queue.
    backend = env.backend()
    limit = most if selected is None else None
    batches = peek_stream(backend, queue, start.offset if start else None, limit) \
        if start is not None or backend.queue_type(queue) == "stream" else \
        backend.peek(queue, limit, force=force)
    shown = 0
    try:
        for batch in batches:
            if selected is not None:
                batch = [d for d in batch if selected.matches(d)]
                if most is not None:
                    batch = batch[:most - shown]
            if batch and writer.write(batch) < len(batch):
                raise ReaderGone
            shown += len(batch)
            if most is not None and shown >= most:
                break
    finally:
        batches.close()  # on RabbitMQ: the messages go back now
