"""``amq send``: publish one message, or one per line/record of stdin or a file.

``plan_send`` turns the flags into a ``SendPlan`` (refusing the combinations send does not
take, choosing the body source and how it splits), without I/O; ``send`` does the I/O.
The plan is here rather than in a module of its own for start-up time (a module costs
``amq send`` ~0.1 ms to find and load), and without ``from __future__ import annotations``:
``typing.NamedTuple`` makes a ForwardRef of each string annotation, ~0.5 ms more.
"""


import contextlib
import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import typer

from .. import errors
from ..amqp.model import Message, Properties, PublishResult
from . import options
from .app import app, env_of
from .env import Environment
from .parsing import build_properties, parse_headers, parse_properties

if TYPE_CHECKING:
    from .progress import Progress

T = TypeVar("T")
SEND_BACKOFF_FIRST = 0.1  # seconds before a send's first try to reconnect

SEND_HELP = """Publish a message: to a queue of that name through the default exchange
(declared first, like the tutorial's send.py), or with -e to an exchange.

The body is BODY, --file PATH, or stdin (all of it one message). --lines sends one
message per line, --null one per NUL-terminated record, --format json one per JSON
object as `amq receive --format json` writes them."""


# --- flags to a plan (pure: tests/unit/test_plans.py) -----------------------------------

# How a body source splits into messages: the byte that ends each record, or None for all
# of it one message (a plain string, not an enum: this module is on amq send's path).
LINE, NUL = b"\n", b"\0"


class BodySource(NamedTuple):
    """Where the body comes from: BODY (``text``), ``--file`` (``path``), or stdin; and how
    it splits into messages: one per ``separator``-ended record (--lines, --null), each a
    JSON object with ``json`` (--format json, one per line), or all of it one (None)."""

    text: bytes | None  # BODY, the bytes the shell passed (argv is surrogateescape)
    path: str | None  # --file PATH
    separator: bytes | None = None
    json: bool = False

    @property
    def stdin(self) -> bool:
        return self.text is None and self.path is None


def body_source(body: str | None, file: str | None, stdin_isatty: bool,
                separator: bytes | None = None, json: bool = False) -> BodySource:
    """BODY, or --file, or stdin when it is not a terminal; a usage error otherwise."""
    if body is not None and file is not None:
        raise errors.UsageError("give the body as BODY or --file, not both")
    if body is None and file is None and stdin_isatty:
        raise errors.UsageError("no body: give BODY, --file PATH, or pipe it on stdin")
    return BodySource(None if body is None else os.fsencode(body), file, separator, json)


def split_body(source: BodySource) -> list[bytes]:
    """A BODY argument as messages: --lines and --null drop the empty record after a final
    separator; JSON objects are one per line, whatever ends the line."""
    data = source.text or b""
    if source.json:
        return data.splitlines()
    if source.separator is None:
        return [data]
    records = data.split(source.separator)
    return records[:-1] if records and records[-1] == b"" else records


def send_separator(lines: bool, null: bool, json_input: bool) -> bytes | None:
    """--lines, --null or --format json (at most one of them): what ends a record."""
    if lines + null + json_input > 1:
        raise errors.UsageError("choose one of --lines, --null and --format json")
    return NUL if null else LINE if lines or json_input else None


class SendPlan(NamedTuple):
    """What ``amq send`` publishes, where, and how it reports."""

    exchange: str
    routing_key: str | None  # None: each JSON record names its own
    properties: Properties
    source: BodySource
    declare: bool  # declare default-exchange queues first
    confirm: bool
    mandatory: bool  # False with --allow-unroutable
    verbose: bool
    quiet: bool
    reconnect_timeout: float = 60.0  # --confirm: seconds to retry a lost connection

    @property
    def bulk(self) -> bool:
        """Many messages from one source: progress, and a resume line on Ctrl+C."""
        return self.source.separator is not None

    @property
    def json_input(self) -> bool:
        return self.source.json


def plan_send(routing_key: str | None = None, body: str | None = None, *, exchange: str = "",
              headers: list[str] | None = None, properties: list[str] | None = None,
              persistent: bool = False, file: str | None = None, lines: bool = False,
              null: bool = False, format: str = "raw", no_declare: bool = False,
              confirm: bool = False, allow_unroutable: bool = False, verbose: bool = False,
              quiet: bool = False, stdin_isatty: bool = False,
              reconnect_timeout: float = 60.0) -> SendPlan:
    """``amq send``'s flags as a plan, or the usage error the first bad flag gives."""
    if format not in ("raw", "json"):
        raise errors.UsageError(f"--format must be raw or json, not {format!r}")
    if routing_key is None and format != "json":
        raise errors.UsageError("missing ROUTING_KEY (the queue name, on the default exchange)")
    json_input = format == "json"
    source = body_source(body, file, stdin_isatty, send_separator(lines, null, json_input),
                         json_input)
    if not reconnect_timeout >= 0:  # also NaN
        raise errors.UsageError(f"--reconnect-timeout must be 0 or more, not {reconnect_timeout}")
    props = build_properties(parse_properties(properties), parse_headers(headers), persistent)
    return SendPlan(exchange, routing_key, props, source, not no_declare, confirm,
                    not allow_unroutable, verbose, quiet, reconnect_timeout)


# --- the command: I/O only -----------------------------------------------------------------

@app.command("send", help=SEND_HELP)
def send(
    ctx: typer.Context,
    routing_key: options.RoutingKey = None,
    body: options.Body = None,
    exchange: options.Exchange = "",
    headers: options.Header = None,
    properties: options.Property = None,
    persistent: options.Persistent = False,
    file: options.File = None,
    lines: options.Lines = False,
    null: options.NullRecords = False,
    format: options.InputFormat = "raw",
    no_declare: options.NoDeclareTarget = False,
    confirm: options.Confirm = False,
    allow_unroutable: options.AllowUnroutable = False,
    verbose: options.Verbose = False,
    quiet: options.Quiet = False,
    reconnect_timeout: options.ReconnectTimeout = 60.0,
) -> None:
    env = env_of(ctx)
    plan = plan_send(routing_key, body, exchange=exchange, headers=headers,
                     properties=properties, persistent=persistent, file=file, lines=lines,
                     null=null, format=format, no_declare=no_declare, confirm=confirm,
                     allow_unroutable=allow_unroutable, verbose=verbose, quiet=quiet,
                     stdin_isatty=env.stdin_isatty, reconnect_timeout=reconnect_timeout)
    sender = _Sender(env, plan)
    if plan.bulk and not plan.verbose and env.stderr_isatty:  # a bar may show
        from . import progress  # here: the plain path of `amq send` never loads it
        sender.progress = progress.for_send(env, True)
    with sender.interruptible(plan.bulk), sender.progress:
        source = plan.source
        if source.text is not None:
            sender.send(split_body(source))
        else:
            _send_stream(sender, source)
    with sender.interruptible(plan.bulk):  # the last returns and confirms come in here
        sender.finish(plan.quiet)


def _send_stream(sender: "_Sender", source: BodySource) -> None:
    from ..formats import read_all, read_records
    file = source.path
    try:
        fd = os.open(file, os.O_RDONLY) if file is not None else sender.env.stdin_fd
    except OSError as err:
        raise errors.UsageError(f"cannot read {file}: {err.strerror}") from None
    try:
        if source.separator is not None:
            for records in read_records(fd, source.separator):
                sender.send(records)
        else:
            sender.send([read_all(fd)])
    except IsADirectoryError:
        raise errors.UsageError(f"cannot read {file}: it is a directory") from None
    finally:
        if file is not None:
            os.close(fd)


class NoProgress:
    """What a send holds when no bar can show (a single message, or stderr is not a
    terminal): the progress module is not even loaded then."""

    def __enter__(self) -> "NoProgress":
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


NO_PROGRESS = NoProgress()


class _Sender:
    """Publishes batches, declaring default-exchange queues first, and keeps the tally."""

    def __init__(self, env: Environment, plan: SendPlan) -> None:
        self.env = env
        self.exchange = plan.exchange
        self.routing_key = plan.routing_key
        self.props = plan.properties
        self.declare = plan.declare
        self.confirm = plan.confirm
        self.verbose = plan.verbose
        self.json_input = plan.json_input
        self.backend = env.backend()
        self.declared: set[str] = set()
        self.total = PublishResult()
        self.first_key = plan.routing_key
        self.first_headers = plan.properties.headers
        self.first_exchange = plan.exchange
        self.progress: NoProgress | Progress = NO_PROGRESS
        self.mandatory = plan.mandatory  # --allow-unroutable: False
        self.in_flight = 0  # messages handed to the backend, not yet counted as sent
        self.reconnect_timeout = plan.reconnect_timeout
        self.republished = 0  # sent again after a lost connection: possible duplicates
        self.reconnects = 0

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
                self._resumable(batch, partial(self._publish_messages, exchange))
            if self.first_key is None and messages:
                self.first_key = messages[0].routing_key
                self.first_headers = messages[0].properties.headers
                self.first_exchange = messages[0].exchange
        else:
            self._resumable(records, self._publish_bodies)

    def _publish_messages(self, exchange: str, batch: list[Message]) -> PublishResult:
        self._declare({m.routing_key for m in batch} if exchange == "" else set())
        return self.backend.publish(exchange, batch, confirm=self.confirm, sync=False,
                                    mandatory=self.mandatory)

    def _publish_bodies(self, records: list[bytes]) -> PublishResult:
        key = self.routing_key
        assert key is not None  # plan_send: only JSON records may name their own
        self._declare({key} if self.exchange == "" else set())
        return self.backend.publish_bodies(self.exchange, key, self.props, records,
                                           confirm=self.confirm, sync=False,
                                           mandatory=self.mandatory)

    def _resumable(self, items: list[T], publish: Callable[[list[T]], PublishResult]) -> None:
        """Publish a batch; with --confirm, a lost connection is reconnected (failing over
        to the next host) and what the broker had not confirmed is published again. The
        batch counts as sent once all of it is confirmed, so an interrupted line still
        names a prefix of the input that is with the broker."""
        pending = items
        self.in_flight = len(items)
        unroutable = 0
        retry: Retry | None = None
        while True:
            try:
                result = publish(pending)
            except (errors.ConnectionLost, errors.ConnectionForced) as err:
                pending = self._after_loss(err, pending)
                continue
            unroutable += result.unroutable
            if not (result.refused and self.reconnects):
                break
            # refused after a failover: a quorum queue whose leader was on the node that
            # went refuses publishes until it has a new one; in time, they are taken
            if retry is None:
                retry = self._backoff()
                self.env.say(f"amq: the broker refused {len(result.refused)} message(s) after "
                             "the reconnect (a queue without its leader yet?); publishing "
                             f"them again for up to {self.reconnect_timeout:g} s")
            delay = retry.next()
            if delay is None:
                break  # refused for good: exit 10, as without a reconnect
            time.sleep(delay)
            pending = [pending[i] for i in result.refused]
        self._tally(PublishResult(len(items), unroutable, result.nacked))

    def _backoff(self) -> "Retry":
        return Retry(self.reconnect_timeout)

    def _after_loss(self, err: errors.AmqError, pending: list[T]) -> list[T]:
        """What is left to publish of a batch after the connection was lost under it, once
        reconnected; without --confirm (or with --reconnect-timeout 0), the error."""
        if not self.confirm or not self.reconnect_timeout:
            raise errors.SendCutShort(cut_short_line(err, self.total.published, self.confirm)) \
                from None
        unconfirmed = getattr(err, "unconfirmed", None)
        if unconfirmed is not None:  # the publish was under way: resend what is unconfirmed
            pending = [pending[i] for i in unconfirmed]
        self._reconnect(err)
        if unconfirmed is not None:
            self.republished += len(pending)
            self.env.say(f"amq: reconnected to {self._where()}; republishing "
                         f"{len(pending)} message(s) the broker had not confirmed (possible "
                         f"duplicates; {self.republished} in all)")
        else:
            self.env.say(f"amq: reconnected to {self._where()}")
        return pending

    def _reconnect(self, err: errors.AmqError) -> None:
        """Connect again, with backoff, for up to --reconnect-timeout seconds."""
        self.env.say(f"amq: {err}; reconnecting (for up to {self.reconnect_timeout:g} s)")
        backoff = self._backoff()
        last = str(err)
        while True:
            delay = backoff.next()
            if delay is None:
                raise errors.BrokerUnreachable(
                    f"gave up reconnecting after {self.reconnect_timeout:g} s ({last}): "
                    + resume_text(self.total.published, self.in_flight, True)) from None
            time.sleep(delay)
            try:
                self.backend.reconnect()
                break
            except errors.BrokerUnreachable as failure:
                last = str(failure)
        self.declared.clear()  # a queue on a node that went may be gone: declare it again
        self.reconnects += 1

    def _where(self) -> str:
        return str(getattr(self.backend, "host", self.backend.display_url))

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
        try:
            self._tally(self.backend.flush_publishes(), report=False)
        except (errors.ConnectionLost, errors.ConnectionForced) as err:
            if not self.confirm:  # with confirms, every return came before its confirm
                raise errors.SendCutShort(
                    cut_short_line(err, self.total.published, False)) from None
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
        if self.republished:
            self.env.say(f"amq: every message is confirmed; {self.republished} were "
                         "published again after a lost connection: the queues may hold "
                         "duplicates of those")
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


class Retry:
    """Waits between tries after a lost connection or a refusal: the reconnect loop's
    backoff (doubling, jittered, capped) from 0.1 s, since a send's input is waiting,
    within a time limit (--reconnect-timeout): ``next()`` is None once it has passed."""

    def __init__(self, limit: float) -> None:
        from ..backends.reconnect import Backoff  # only after a loss
        self.backoff = Backoff(first=SEND_BACKOFF_FIRST)
        self.deadline = time.monotonic() + limit

    def next(self) -> float | None:
        left = self.deadline - time.monotonic()
        return None if left <= 0 else min(self.backoff.next(), left)


def interrupted_line(sent: int, in_flight: int, confirm: bool) -> str:
    """What an interrupted bulk send tells: messages 1..sent are with the broker (and
    confirmed, with --confirm); the batch that was going out may or may not be."""
    return "amq: interrupted: " + resume_text(sent, in_flight, confirm)


def resume_text(sent: int, in_flight: int, confirm: bool) -> str:
    noun = "message" if sent == 1 else "messages"
    line = f"{sent} {noun} sent" + (" and confirmed by the broker" if confirm else "")
    if in_flight:
        line += f"; the next {in_flight} may have been sent too"
    return line + f" (resume from message {sent + 1})"


def cut_short_line(err: errors.AmqError, sent: int, confirm: bool) -> str:
    """A send without confirms whose connection dropped: how far it got, and that the
    last messages it wrote may not have reached the broker."""
    noun = "message" if sent == 1 else "messages"
    if confirm:  # --reconnect-timeout 0
        return f"{err}: {sent} {noun} sent and confirmed (resume from message {sent + 1})"
    return (f"{err}: {sent} {noun} written to the connection, the last of them may be "
            "lost (nothing confirms them); --confirm makes a send resumable: it reconnects "
            "and publishes again what the broker did not confirm")


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
