"""The options and arguments of the commands that publish (send, rpc call, route), declared
once (after httpie's ``cli/definition.py``): each alias fixes an option's flags, metavar,
type, bounds and help, and the commands name the alias. ``consumer_options.py`` does the
same for the commands that consume and list (receive, rpc serve, list, the shell's
subscribe).

Two modules, not one, for start-up time: ``amq send`` imports this one, and each alias
costs it about 25 µs to build (typer's ``OptionInfo`` and typing's ``Annotated``); the
thirty aliases of the consumers would add ~1 ms to every ``amq send``. Where two commands
word a flag differently (``--header`` on send and on rpc call), each wording is an alias
of its own, side by side, so every text stays in one place and no help text changes.
"""

from typing import Annotated

import typer

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
ReconnectTimeout = Annotated[float, typer.Option(
    "--reconnect-timeout", metavar="SECONDS",
    help="With --confirm: how long to keep trying to reconnect after the connection was "
         "lost (then exit 8); what was not confirmed is sent again. 0: do not reconnect.")]
AllowUnroutable = Annotated[bool, typer.Option(
    "--allow-unroutable",
    help="Publish without mandatory, as the tutorials do: a message that reaches no "
         "queue is dropped without a word (exit 0, not 7).")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Report each batch the broker has confirmed, on stderr.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")]
