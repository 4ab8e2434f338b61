"""The options and arguments of the message commands, declared once (after httpie's
``cli/definition.py``): each alias fixes an option's flags, metavar, type, bounds and help,
and the commands (send, receive, rpc, list, route, the shell's subscribe) name the alias.

Where two commands word the same flag differently (``--count`` stops after N *messages*
or N *requests*), each wording is an alias of its own, side by side, so the texts stay in
one place without changing what any command's help says. Aliases whose type is an enum of
a heavier module (``OutputFormat``, ``OnFailure``) are generic in that type (``Format[
OutputFormat]``): ``amq send`` imports this module, and must not import those.
"""

from enum import StrEnum
from typing import Annotated, TypeVar

import typer

E = TypeVar("E")

DEFAULT_PREFETCH = 250  # RabbitMQ suggests 100-300 for throughput

# --- what a message is and where it goes (send, rpc call, route) --------------------------

RoutingKey = Annotated[str | None, typer.Argument(
    metavar="ROUTING_KEY", show_default=False,
    help="Routing key; on the default exchange, the queue name.")]
Body = Annotated[str | None, typer.Argument(
    metavar="[BODY]", show_default=False, help="Message body (else --file or stdin).")]
RequestBody = Annotated[str | None, typer.Argument(
    metavar="[BODY]", show_default=False, help="Request body (else --file or stdin).")]
Exchange = Annotated[str, typer.Option(
    "--exchange", "-e", metavar="NAME", help="Exchange (default: the default exchange).")]
Header = Annotated[list[str] | None, typer.Option(
    "--header", "-H", metavar="K=V", help="Header K=V (string) or K:=JSON (typed); repeat.")]
ShortHeader = Annotated[list[str] | None, typer.Option(
    "--header", "-H", metavar="K=V", help="Header K=V or K:=JSON; repeat.")]
Property = Annotated[list[str] | None, typer.Option(
    "--property", "-p", metavar="NAME=VALUE",
    help="content_type, correlation_id, reply_to, expiration, message_id, priority, "
         "delivery_mode, timestamp, type, user_id, app_id, content_encoding; repeat.")]
ShortProperty = Annotated[list[str] | None, typer.Option(
    "--property", "-p", metavar="NAME=VALUE",
    help="A basic property (content_type, correlation_id, ...); repeat.")]
CallQueue = Annotated[str, typer.Argument(
    metavar="QUEUE", help="The queue the server consumes.")]
Persistent = Annotated[bool, typer.Option(
    "--persistent", help="delivery_mode=2 (survives a RabbitMQ restart).")]
File = Annotated[str | None, typer.Option(
    "--file", "-f", metavar="PATH", help="Read the body from a file, byte for byte.")]
Lines = Annotated[bool, typer.Option("--lines", "-l", help="One message per line.")]
NullRecords = Annotated[bool, typer.Option(
    "--null", "-0", help="One message per NUL-terminated record (like xargs -0).")]
InputFormat = Annotated[str, typer.Option(
    "--format", "-F", metavar="raw|json",
    help="json: read one JSON object per line (as `receive --format json` writes).")]
NoDeclareTarget = Annotated[bool, typer.Option(
    "--no-declare", help="Do not declare the queue on the default exchange first.")]
Confirm = Annotated[bool, typer.Option(
    "--confirm", help="Wait for publisher confirms; exit 10 if the broker refuses any.")]
AllowUnroutable = Annotated[bool, typer.Option(
    "--allow-unroutable",
    help="Publish without mandatory, as the tutorials do: a message that reaches no "
         "queue is dropped without a word (exit 0, not 7).")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Report each batch the broker has confirmed, on stderr.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")]

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
    help=f"Most unacknowledged messages held at once (default {DEFAULT_PREFETCH}); with "
         "--exec, how many commands run at once (default 1).")]
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
ServeOnFailure = Annotated[E, typer.Option(
    "--on-failure", case_sensitive=False,
    help="A request whose CMD failed: reject (dropped, or dead-lettered with a DLX) "
         "or requeue.")]

# --- how messages are written out (receive, rpc call, list) ------------------------------

Format = Annotated[E | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="Output format (default: pretty on a terminal, raw in a pipe).")]
ReplyFormat = Annotated[E | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="Output format of the reply (default: pretty on a terminal, raw in a pipe).")]
NulFormat = Annotated[bool, typer.Option("--null", "-0", help="Same as --format nul.")]


class ListFormat(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


ListFormatOption = Annotated[ListFormat | None, typer.Option(
    "--format", "-F", case_sensitive=False,
    help="table (terminal default), tsv (pipe default, no header) or json.")]
