"""``amq send``: publish one message, or one per line/record of stdin or a file."""


import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from .. import errors
from ..amqp.model import Message, PublishResult
from . import progress
from .app import app, env_of
from .parsing import build_properties, parse_headers, parse_properties

SEND_HELP = """Publish a message: to a queue of that name through the default exchange
(declared first, like the tutorial's send.py), or with -e to an exchange.

The body is BODY, --file PATH, or stdin (all of it one message). --lines sends one
message per line, --null one per NUL-terminated record, --format json one per JSON
object as `amq receive --format json` writes them."""


@app.command("send", help=SEND_HELP)
def send(
    ctx: typer.Context,
    routing_key: Annotated[str | None, typer.Argument(
        metavar="ROUTING_KEY", show_default=False,
        help="Routing key; on the default exchange, the queue name.")] = None,
    body: Annotated[str | None, typer.Argument(
        metavar="[BODY]", show_default=False, help="Message body (else --file or stdin).")] = None,
    exchange: Annotated[str, typer.Option(
        "--exchange", "-e", metavar="NAME", help="Exchange (default: the default exchange).")
    ] = "",
    headers: Annotated[list[str] | None, typer.Option(
        "--header", "-H", metavar="K=V", help="Header K=V (string) or K:=JSON (typed); repeat.")
    ] = None,
    properties: Annotated[list[str] | None, typer.Option(
        "--property", "-p", metavar="NAME=VALUE",
        help="content_type, correlation_id, reply_to, expiration, message_id, priority, "
             "delivery_mode, timestamp, type, user_id, app_id, content_encoding; repeat.")
    ] = None,
    persistent: Annotated[bool, typer.Option(
        "--persistent", help="delivery_mode=2 (survives a RabbitMQ restart).")] = False,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", metavar="PATH", help="Read the body from a file, byte for byte.")
    ] = None,
    lines: Annotated[bool, typer.Option("--lines", "-l", help="One message per line.")] = False,
    null: Annotated[bool, typer.Option(
        "--null", "-0", help="One message per NUL-terminated record (like xargs -0).")] = False,
    format: Annotated[str, typer.Option(
        "--format", "-F", metavar="raw|json",
        help="json: read one JSON object per line (as `receive --format json` writes).")
    ] = "raw",
    no_declare: Annotated[bool, typer.Option(
        "--no-declare", help="Do not declare the queue on the default exchange first.")
    ] = False,
    confirm: Annotated[bool, typer.Option(
        "--confirm", help="Wait for publisher confirms; exit 10 if the broker refuses any.")
    ] = False,
    allow_unroutable: Annotated[bool, typer.Option(
        "--allow-unroutable",
        help="Publish without mandatory, as the tutorials do: a message that reaches no "
             "queue is dropped without a word (exit 0, not 7).")
    ] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Report each batch the broker has confirmed, on stderr.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")] = False,
) -> None:
    env = env_of(ctx)
    if format not in ("raw", "json"):
        raise errors.UsageError(f"--format must be raw or json, not {format!r}")
    json_input = format == "json"
    if routing_key is None and not json_input:
        raise errors.UsageError("missing ROUTING_KEY (the queue name, on the default exchange)")
    if sum([lines, null, json_input]) > 1:
        raise errors.UsageError("choose one of --lines, --null and --format json")
    if body is not None and file is not None:
        raise errors.UsageError("give the body as BODY or --file, not both")
    if body is None and file is None and env.stdin_isatty:
        raise errors.UsageError("no body: give BODY, --file PATH, or pipe it on stdin")
    props = build_properties(parse_properties(properties), parse_headers(headers), persistent)
    sender = _Sender(env, exchange, routing_key, props, not no_declare, confirm,
                     verbose, json_input)
    sender.mandatory = not allow_unroutable
    bulk = lines or null or json_input
    sender.progress = progress.for_send(env, bulk and not verbose)
    with sender.interruptible(bulk), sender.progress:
        if body is not None:
            data = os.fsencode(body)  # the bytes the shell passed (argv is surrogateescape)
            if lines or null:
                sep = b"\n" if lines else b"\0"
                records = data.split(sep)
                sender.send(records[:-1] if records and records[-1] == b"" else records)
            elif json_input:
                sender.send(data.splitlines())
            else:
                sender.send([data])
        else:
            _send_stream(sender, file, lines or json_input, null)
    with sender.interruptible(bulk):  # the last returns and confirms come in here
        sender.finish(quiet)


def _send_stream(sender: "_Sender", file: str | None, lines: bool, null: bool) -> None:
    from ..formats import read_all, read_records
    try:
        fd = os.open(file, os.O_RDONLY) if file is not None else sender.env.stdin_fd
    except OSError as err:
        raise errors.UsageError(f"cannot read {file}: {err.strerror}") from None
    try:
        if lines or null:
            for records in read_records(fd, b"\n" if lines else b"\0"):
                sender.send(records)
        else:
            sender.send([read_all(fd)])
    except IsADirectoryError:
        raise errors.UsageError(f"cannot read {file}: it is a directory") from None
    finally:
        if file is not None:
            os.close(fd)


class _Sender:
    """Publishes batches, declaring default-exchange queues first, and keeps the tally."""

    def __init__(self, env, exchange, routing_key, props, declare, confirm, verbose,
                 json_input) -> None:
        self.env = env
        self.exchange = exchange
        self.routing_key = routing_key
        self.props = props
        self.declare = declare
        self.confirm = confirm
        self.verbose = verbose
        self.json_input = json_input
        self.backend = env.backend()
        self.declared: set[str] = set()
        self.total = PublishResult()
        self.first_key = routing_key
        self.first_headers = props.headers
        self.first_exchange = exchange
        self.progress = progress.Progress(None)
        self.mandatory = True  # --allow-unroutable: False
        self.in_flight = 0  # messages handed to the backend, not yet counted as sent

    def send(self, records: list[bytes]) -> None:
        if not records:
            return
        if self.json_input:
            from ..formats import message_from_json
            ex = self.exchange if self.exchange else None
            messages = [message_from_json(r, ex, self.routing_key) for r in records if r.strip()]
            groups: list[tuple[str, list[Message]]] = []
            for m in messages:
                if groups and groups[-1][0] == m.exchange:
                    groups[-1][1].append(m)
                else:
                    groups.append((m.exchange, [m]))
            for exchange, batch in groups:
                self._declare({m.routing_key for m in batch} if exchange == "" else set())
                self.in_flight = len(batch)
                self._tally(self.backend.publish(exchange, batch, confirm=self.confirm,
                                                 sync=False, mandatory=self.mandatory))
            if self.first_key is None and messages:
                self.first_key = messages[0].routing_key
                self.first_headers = messages[0].properties.headers
                self.first_exchange = messages[0].exchange
        else:
            self._declare({self.routing_key} if self.exchange == "" else set())
            self.in_flight = len(records)
            self._tally(self.backend.publish_bodies(
                self.exchange, self.routing_key, self.props, records, confirm=self.confirm,
                sync=False, mandatory=self.mandatory))

    def _declare(self, queues: set[str]) -> None:
        """Declare default-exchange targets first, as the tutorial's send.py does (not
        "": that would make a server-named queue, which nothing routes to)."""
        if self.declare:
            for name in queues - self.declared - {""}:
                self.backend.ensure_queue(name)
                self.declared.add(name)

    def _tally(self, result: PublishResult, report: bool = True) -> None:
        self.in_flight = 0
        t = self.total
        self.total = PublishResult(t.published + result.published,
                                   t.unroutable + result.unroutable, t.nacked + result.nacked)
        self.progress.advance(result.published)
        if self.verbose and report:
            self.env.say(f"amq: sent {self.total.published}")

    def finish(self, quiet: bool) -> None:
        self._tally(self.backend.flush_publishes(), report=False)
        t = self.total
        where = f"exchange '{self.exchange}'" if self.exchange else "the default exchange"
        if t.nacked and self.confirm:  # without confirms RabbitMQ cannot tell: neither do we
            raise errors.Nacked(
                f"the broker refused {t.nacked} of {t.published} message(s) (a queue is full: "
                "x-overflow reject-publish)")
        if t.unroutable:
            target = unroutable_target(self.first_exchange, self.first_key or "",
                                       self.first_headers, self._exchange_type)
            raise errors.Unroutable(
                f"312 NO_ROUTE - {t.unroutable} of {t.published} message(s) reached no queue "
                f"and were dropped: {target}",
                hint="bind a queue first, or publish to an existing queue")
        if not quiet and self.env.stderr_isatty:
            noun = "message" if t.published == 1 else "messages"
            self.env.say(f"sent {t.published} {noun} to {where} "
                         f"with routing key '{self.first_key}'")

    def _exchange_type(self, name: str) -> str | None:
        from .kinds import exchange_type
        return exchange_type(self.backend, name)

    @contextlib.contextmanager
    def interruptible(self, bulk: bool) -> Iterator[None]:
        """Ctrl+C (or SIGTERM) in a bulk send: say how far it got, so the user can
        resume, then exit 130 as usual."""
        try:
            yield
        except KeyboardInterrupt:
            if bulk:
                self.env.say(interrupted_line(self.total.published, self.in_flight,
                                              self.confirm))
            raise


def interrupted_line(sent: int, in_flight: int, confirm: bool) -> str:
    """What an interrupted bulk send tells: messages 1..sent are with the broker (and
    confirmed, with --confirm); the batch that was going out may or may not be."""
    noun = "message" if sent == 1 else "messages"
    line = (f"amq: interrupted: {sent} {noun} sent"
            + (" and confirmed by the broker" if confirm else ""))
    if in_flight:
        line += f"; the next {in_flight} may have been sent too"
    return line + f" (resume from message {sent + 1})"


def unroutable_target(exchange: str, routing_key: str, headers: dict[str, Any] | None,
                      exchange_type: Callable[[str], str | None]) -> str:
    """What did not match, for the 312 NO_ROUTE line: the missing queue on the default
    exchange; else the exchange and the routing key (direct, topic) or the headers
    (headers), or that a fanout exchange has no bindings at all."""
    if exchange == "":
        return f"there is no queue '{routing_key}'"
    kind = exchange_type(exchange)
    if kind == "fanout":
        return f"fanout exchange '{exchange}' has no bindings"
    if kind in ("direct", "topic"):
        return f"no binding of '{exchange}' matches '{routing_key}'"
    shown = _headers_text(headers)
    if kind == "headers":
        return (f"no binding of '{exchange}' matches the headers {shown}" if shown else
                f"no binding of '{exchange}' matches a message without headers")
    return (f"no binding of '{exchange}' matches routing key '{routing_key}'"
            + (f" or the headers {shown}" if shown else ""))


def _headers_text(headers: dict[str, Any] | None) -> str:
    """Headers as the command line takes them: ``a=b, n:=1``."""
    import json

    from ..amqp.codec import to_json_value
    out = []
    for key, value in (headers or {}).items():
        if isinstance(value, str):
            out.append(f"{key}={value}")
        else:
            out.append(f"{key}:={json.dumps(to_json_value(value), ensure_ascii=False)}")
    return ", ".join(out)
