"""``amq rpc call`` and ``amq rpc serve``: request/reply over queues, as in RabbitMQ's RPC
tutorial.

``call`` publishes a request with ``reply_to`` naming an exclusive server-named queue of
its own and a fresh ``correlation_id``, and prints the reply carrying that id (as
``receive`` prints a message). ``serve`` runs a shell command per request through the
worker pool of ``workers.py`` and publishes the command's stdout to the request's
``reply_to`` through the default exchange, with the request's ``correlation_id``.
"""

import time
import uuid
from typing import TYPE_CHECKING

import typer

from .. import errors
from ..amqp.model import Delivery, Message, Properties
from ..backends.reconnect import Consume
from ..formats import OutputFormat
from ..output import DeliveryWriter
from . import consumer_options, options
from .app import app, env_of
from .env import Environment
from .parsing import build_properties, parse_headers, parse_properties
from .receive import output_format
from .send import BodySource, body_source
from .workers import Job, OnFailure, Settings, check_outcome, fail, run_workers

if TYPE_CHECKING:
    from ..backends.base import Backend, Subscription
    from ..backends.reconnect import Resilient

rpc_app = typer.Typer(help="Request/reply (RPC) over queues: call a server, or be one.",
                      no_args_is_help=True)
app.add_typer(rpc_app, name="rpc")

CALL_HELP = """Send a request to QUEUE and print the reply: the request carries reply_to (an
exclusive queue of this call's own) and a fresh correlation_id; the first reply with that
correlation_id is printed, like `amq receive` prints a message (raw in a pipe). The body
is BODY, --file PATH, or stdin. QUEUE is declared first unless --no-declare (then a
missing queue exits 7 at once). Exit 9 when --timeout passes without a reply."""

SERVE_HELP = """Serve requests on QUEUE: run CMD (sh -c) for each, with the body on stdin
and its metadata in AMQ_* variables (as `receive --exec`), publish CMD's stdout to the
request's reply_to with its correlation_id, then acknowledge the request. A failed CMD
sends no reply: the request is rejected (or requeued with --on-failure requeue). A request
without reply_to is acknowledged without running CMD."""


@rpc_app.command("call", help=CALL_HELP)
def call(
    ctx: typer.Context,
    queue: options.CallQueue,
    body: options.RequestBody = None,
    timeout: consumer_options.ReplyTimeout = None,
    file: options.File = None,
    headers: options.ShortHeader = None,
    properties: options.ShortProperty = None,
    format: consumer_options.ReplyFormat[OutputFormat] = None,
    no_declare: consumer_options.NoDeclareQueue = False,
    no_reconnect: consumer_options.NoReconnect = False,
) -> None:
    env = env_of(ctx)
    props = _request_properties(properties, headers)
    payload = _request_body(env, body_source(body, file, env.stdin_isatty))
    fmt = output_format(format, env.stdout_isatty)
    request = Request(env, Message(payload, props, queue), not no_declare)
    reply = _call(env.consumer(request, reconnect=not no_reconnect), request, timeout)
    if reply is None:
        raise errors.NothingReceived(f"no reply from '{queue}' within {timeout:g}s")
    console = env.console() if fmt is OutputFormat.PRETTY else None
    if DeliveryWriter(env.stdout_fd, fmt, console).write([reply]) < 1:
        raise BrokenPipeError


def _request_properties(properties: list[str] | None,
                        headers: list[str] | None) -> Properties:
    props = parse_properties(properties)
    if "reply_to" in props:
        raise errors.UsageError("rpc call sets reply_to itself (to its own reply queue)")
    return build_properties(props, parse_headers(headers), False)


def _request_body(env: Environment, source: BodySource) -> bytes:
    """BODY, the file's bytes, or all of stdin."""
    from ..formats import read_all
    if source.text is not None:
        return source.text
    file = source.path
    if file is None:
        return read_all(env.stdin_fd)
    try:
        with open(file, "rb") as f:
            return f.read()
    except OSError as err:
        raise errors.UsageError(f"cannot read {file}: {err.strerror}") from None


class Request:
    """``rpc call``'s ``subscribe`` hook (``backends/reconnect.py``): declares QUEUE
    (unless --no-declare) and a server-named exclusive reply queue, and publishes the
    request with ``reply_to`` naming it; after a reconnect, a new reply queue and the
    request sent again, with the same correlation id."""

    def __init__(self, env: Environment, request: Message, declare: bool) -> None:
        self.env = env
        self.declare = declare
        self.correlation_id = request.properties.correlation_id or str(uuid.uuid4())
        self.request = request._replace(properties=request.properties._replace(
            correlation_id=self.correlation_id))

    def __call__(self, backend: "Backend", again: bool) -> Consume:
        request = self.request
        if self.declare:
            backend.ensure_queue(request.routing_key)
        reply_queue = backend.declare_queue("", exclusive=True).queue
        props = request.properties._replace(reply_to=reply_queue)
        if backend.publish("", [request._replace(properties=props)]).unroutable:
            _delete(backend, reply_queue)
            raise errors.Unroutable(
                f"312 NO_ROUTE - there is no queue '{request.routing_key}'",
                hint="is the server running? amq rpc serve")
        if again:
            self.env.say(f"amq: request sent again to '{request.routing_key}' (correlation "
                         f"id {self.correlation_id}), replies to '{reply_queue}'")
        return Consume(reply_queue, no_ack=True)


def _call(replies: "Resilient", request: Request, timeout: float | None) -> Delivery | None:
    """The reply to a request (published by ``replies``' subscribe hook), or None in time.

    The reply queue is deleted afterwards rather than left to the connection's end: the
    shell keeps one connection for a whole session.
    """
    try:
        return _await_reply(replies, request.correlation_id, timeout)
    finally:
        try:
            replies.cancel()
        except errors.AmqError:
            pass  # it goes with the connection anyway
        if replies.backend is not None:
            _delete(replies.backend, replies.queue)


def _delete(backend: "Backend", reply_queue: str) -> None:
    try:
        backend.delete_queue(reply_queue)
    except errors.AmqError:
        pass  # it goes with the connection anyway


def _await_reply(replies: "Subscription", correlation_id: str,
                 timeout: float | None) -> Delivery | None:
    """The first reply with our correlation id (others are ignored), or None in time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        for reply in replies.fetch(1, left):
            if reply.properties.correlation_id == correlation_id:
                return reply
        if deadline is not None and time.monotonic() >= deadline:
            return None


@rpc_app.command("serve", help=SERVE_HELP)
def serve(
    ctx: typer.Context,
    queue: consumer_options.RequestQueue,
    command: consumer_options.ServeExec,
    prefetch: consumer_options.ServePrefetch = 1,
    count: consumer_options.RequestCount = None,
    timeout: consumer_options.RequestTimeout = None,
    on_failure: consumer_options.ServeOnFailure[OnFailure] = OnFailure.REJECT,
    no_declare: consumer_options.NoDeclareQueue = False,
    no_reconnect: consumer_options.NoReconnect = False,
) -> None:
    env = env_of(ctx)
    if not command.strip():
        raise errors.UsageError("--exec needs a command")
    settings = Settings(command, prefetch, count, timeout, on_failure)

    def requests(backend: "Backend", _again: bool) -> Consume:
        if not no_declare:
            backend.ensure_queue(queue)
        return Consume(queue, settings.prefetch)

    sub = env.consumer(requests, reconnect=not no_reconnect)
    banner = f" [x] Awaiting RPC requests on '{queue}'. To exit press CTRL+C"
    tally = run_workers(env, sub, settings, Replier(env, sub, on_failure), banner)
    check_outcome(tally, settings, queue)


class Replier:
    """``rpc serve``: publish a command's stdout to the request's reply_to, then ack."""

    capture = True

    def __init__(self, env: Environment, sub: "Resilient", on_failure: OnFailure) -> None:
        self.env = env
        self.sub = sub
        self.on_failure = on_failure

    def admit(self, d: Delivery) -> bool:
        if d.properties.reply_to:
            return True
        self.sub.ack(d.delivery_tag)
        self.env.say(f"amq: a request on '{d.queue}' has no reply_to: acknowledged "
                     "without running the command")
        return False

    def settle(self, job: Job) -> bool:
        if not job.ok:
            fail(self.env, self.sub, job, self.on_failure)
            return False
        request = job.delivery.properties
        reply = Message(job.read_output(), Properties(correlation_id=request.correlation_id),
                        request.reply_to or "")
        sent = self.sub.publish("", [reply])
        if sent is None:  # the connection was lost meanwhile: the request comes back
            self.env.say(f"amq: the reply to '{request.reply_to}' was not sent (the "
                         "connection was lost): the request will be delivered again")
            return True
        if sent.unroutable:
            self.env.say(f"amq: the reply to '{request.reply_to}' reached no queue "
                         "(the caller gave up?)")
        self.sub.ack(job.delivery.delivery_tag)
        return True
