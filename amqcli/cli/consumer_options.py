"""The options and arguments of the commands that consume and list (receive, rpc serve,
list, the shell's subscribe), declared once: see ``options.py``, which does the same for
the commands that publish (apart from this module for ``amq send``'s start-up time).

Aliases whose type is an enum of a heavier module (``OutputFormat``, ``OnFailure``,
``ListFormat``) are generic in that type (``Format[OutputFormat]``), so this module
imports neither ``formats`` nor ``workers``.
"""

from typing import Annotated, TypeVar

import typer

E = TypeVar("E")

DEFAULT_PREFETCH = 250  # RabbitMQ suggests 100-300 for throughput
# Into a pipe a message stays unacknowledged until the reader has used it (output.HOLD
# after taking it): to keep the pipe full the default holds that much more at once.
PIPE_PREFETCH = 20_000

# --- where messages come from and how they are taken (receive, subscribe, rpc serve) ------

Queue = Annotated[str | None, typer.Argument(
    metavar="[QUEUE]", show_default=False, help="The queue to consume from.")]
RequestQueue = Annotated[str, typer.Argument(
    metavar="QUEUE", help="The queue of requests.")]
SubscribeExchange = Annotated[str | None, typer.Option(
    "--exchange", "-e", metavar="NAME",
    help="Subscribe to an exchange through a fresh exclusive queue.")]
ShellExchange = Annotated[str | None, typer.Option(
    "--exchange", "-e", metavar="NAME", help="Subscribe to an exchange.")]
Keys = Annotated[list[str] | None, typer.Option(
    "--key", "-k", metavar="KEY", help="Binding key for -e; repeat.")]
Count = Annotated[int | None, typer.Option(
    "--count", "-n", min=1, metavar="N", help="Stop after N messages.")]
RequestCount = Annotated[int | None, typer.Option(
    "--count", "-n", min=1, metavar="N", help="Stop after N requests.")]
Timeout = Annotated[float | None, typer.Option(
    "--timeout", "-t", min=0, metavar="SECONDS",
    help="Stop when no message arrives for this long (exit 9 if none came at all).")]
RequestTimeout = Annotated[float | None, typer.Option(
    "--timeout", "-t", min=0, metavar="SECONDS",
    help="Stop when no request arrives for this long (exit 9 if none came at all).")]
ReplyTimeout = Annotated[float | None, typer.Option(
    "--timeout", "-t", min=0, metavar="SECONDS",
    help="Give up after this long without a reply (exit 9). Default: wait.")]
NoAck = Annotated[bool, typer.Option(
    "--no-ack", help="Let the broker forget messages as it sends them.")]
Requeue = Annotated[bool, typer.Option(
    "--requeue", help="Look without taking: put the messages back when done.")]
Prefetch = Annotated[int | None, typer.Option(
    "--prefetch", min=1, metavar="N", show_default=False,
    help=f"Most unacknowledged messages held at once (default {DEFAULT_PREFETCH}, "
         f"{PIPE_PREFETCH:,} into a pipe); with "
         "--exec, how many commands run at once (default 1).")]
Priority = Annotated[int, typer.Option(
    "--priority", metavar="N", show_default=False,
    help="Consumer priority (x-priority): consumers with a higher one get messages first, "
         "while they have room (default 0).")]
ServePrefetch = Annotated[int, typer.Option(
    "--prefetch", min=1, metavar="N", help="How many requests are served at once.")]
NoDeclare = Annotated[bool, typer.Option(
    "--no-declare", help="Do not declare the queue first.")]
NoDeclareQueue = Annotated[bool, typer.Option(
    "--no-declare", help="Do not declare QUEUE first.")]
Exec = Annotated[str | None, typer.Option(
    "--exec", metavar="CMD",
    help="Run CMD (sh -c) per message: body on stdin, AMQ_* variables; ack on exit 0.")]
ServeExec = Annotated[str, typer.Option(
    "--exec", metavar="CMD", show_default=False,
    help="The command answering each request: body on stdin, reply on stdout.")]
OnFailure = Annotated[E | None, typer.Option(
    "--on-failure", case_sensitive=False, show_default=False,
    help="With --exec, a failed command's message: requeue (default), or reject "
         "(dropped, or dead-lettered when the queue has a DLX).")]
NoReconnect = Annotated[bool, typer.Option(
    "--no-reconnect",
    help="On RabbitMQ, exit when the connection drops (exit 8) instead of reconnecting.")]
ServeOnFailure = Annotated[E, typer.Option(
    "--on-failure", case_sensitive=False,
    help="A request whose CMD failed: reject (dropped, or dead-lettered with a DLX) "
         "or requeue.")]

StreamOffset = Annotated[str | None, typer.Option(
    "--offset", metavar="WHERE", show_default=False,
    help="Read a stream from first (the oldest kept), last (the last chunk), next (only "
         "new ones, the default), an offset N (0-based) or a TIME: 2026-12-01T10:00:00Z, "
         "or an age such as 10m, 2h, 7D (units Y M D h m s).")]
ToEnd = Annotated[bool, typer.Option(
    "--to-end", help="Stop at the end of the stream as it was when the read started.")]

# --- how messages are written out (receive, rpc call, list) ------------------------------

Format = Annotated[E | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="Output format (default: pretty on a terminal, raw in a pipe).")]
ReplyFormat = Annotated[E | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="Output format of the reply (default: pretty on a terminal, raw in a pipe).")]
NulFormat = Annotated[bool, typer.Option("--null", "-0", help="Same as --format nul.")]


ListFormatOption = Annotated[E | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="table (terminal default), tsv (pipe default, no header) or json.")]

# --- what peek, tap and replay select and how much ----------------------------------------

Where = Annotated[str | None, typer.Option(
    "--where", "-w", metavar="EXPR",
    help="Only messages for which this CEL expression is true, over the fields of "
         "--format json: body, json, headers, properties, exchange, routing_key, "
         "redelivered (e.g. \"headers.kind == 'a'\", 'json.total > 100').")]
PeekQueue = Annotated[str, typer.Argument(
    metavar="QUEUE", show_default=False, help="The queue to look into.")]
PeekCount = Annotated[int | None, typer.Option(
    "--count", "-n", min=1, metavar="N", show_default=False,
    help="Show the first N messages (default 10).")]
PeekAll = Annotated[bool, typer.Option("--all", "-a", help="Show every message it holds.")]
PeekOffset = Annotated[str | None, typer.Option(
    "--offset", metavar="WHERE", show_default=False,
    help="A stream's: where to start (default first): first, last, next, N or a TIME "
         "(2026-12-01T10:00:00Z, or an age: 10m, 2h, 7D).")]
Force = Annotated[bool, typer.Option(
    "--force", help="On RabbitMQ, peek a quorum queue with a delivery limit all the same "
                    "(each message shown counts as a delivery).")]
Save = Annotated[str | None, typer.Option(
    "--save", metavar="DIR", show_default=False,
    help="Write each message into DIR instead: NNNNNN.body (the body) and NNNNNN.json "
         "(the rest, as --format json has it), numbered in order; `amq replay DIR` "
         "republishes them.")]
