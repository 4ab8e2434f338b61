"""``amq broker serve``: the local broker over AMQP 0-9-1, for any AMQP client.

Turns the flags into a store path, a set of users and an address, and runs
``server.listener.Server`` until Ctrl+C or SIGTERM. Stdout has a line per port, the plain
one first: ``listening on HOST:PORT``, then ``listening for TLS on HOST:PORT`` (with port
0, the port the system picked); the log goes to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from ..broker.publishing import LARGEST_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE
from ..errors import ExitStatus
from .app import app, env_of
from .env import Environment

if TYPE_CHECKING:
    from ..server.auth import Users
    from ..server.listener import Server

broker_app = typer.Typer(help="The built-in local broker.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")

SERVE_HELP = """Serve the local broker over AMQP 0-9-1 on HOST:PORT, so that any AMQP
client (pika, aio-pika, kombu, the RabbitMQ tutorials) can use it. It serves the same
store as the other commands: `amq send` and a client of the server see the same queues.

TLS (amqps://) with --tls-port and --tls-cert/--tls-key, beside the plain port or instead
of it (--port none); --tls-verify-peer asks clients for a certificate signed by --tls-ca.

--definitions FILE loads a definitions file first (RabbitMQ's load_definitions): users
with their password hashes and permissions, and the queues, exchanges and bindings of
vhost /; what the local broker has not (policies, parameters, other vhosts) is skipped with
a line per kind.

Logins: guest/guest from loopback addresses only, as in RabbitMQ (--no-guest removes it);
more users with --user NAME:PASSWORD or --users-file (every permission), or from
--definitions (their permissions, checked as RabbitMQ checks them: 403 ACCESS_REFUSED).
Stops cleanly on Ctrl+C or SIGTERM, requeueing what clients held unacknowledged. Exit 13
if the address is taken.

A client that holds a delivery unacknowledged for longer than --consumer-timeout has its
channel closed with 406 PRECONDITION_FAILED and what it held requeued, as RabbitMQ's
consumer_timeout does."""

CONSUMER_TIMEOUT = "1800"  # seconds: RabbitMQ's default consumer_timeout, 30 minutes


@broker_app.command("serve", help=SERVE_HELP)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(
        "--host", metavar="HOST", help="Address to listen on (default: loopback only).")
    ] = "127.0.0.1",
    port: Annotated[str, typer.Option(
        "--port", "-p", metavar="PORT",
        help="TCP port; 0 picks a free one (reported on the first line); none: TLS only."
    )] = "5672",
    tls_port: Annotated[int | None, typer.Option(
        "--tls-port", min=0, max=65535, metavar="PORT",
        help="Serve TLS (amqps://) on this port too (RabbitMQ's: 5671); 0 picks one.")
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(
        "--tls-cert", metavar="FILE", help="The server's certificate (PEM), with its chain."
    )] = None,
    tls_key: Annotated[str | None, typer.Option(
        "--tls-key", metavar="FILE", help="Its private key (PEM), if not in --tls-cert.")
    ] = None,
    tls_ca: Annotated[str | None, typer.Option(
        "--tls-ca", metavar="FILE", help="The CA certificates that sign clients' ones.")
    ] = None,
    tls_verify_peer: Annotated[bool, typer.Option(
        "--tls-verify-peer", help="Refuse a TLS client without a certificate of --tls-ca.")
    ] = False,
    url: Annotated[str | None, typer.Option(
        "--url", "-u", metavar="local:PATH",
        help="The store to serve (default: the one the other commands use).")] = None,
    memory: Annotated[bool, typer.Option(
        "--memory", help="Serve a fresh store in memory, gone when the server stops.")
    ] = False,
    users: Annotated[list[str] | None, typer.Option(
        "--user", metavar="NAME:PASSWORD", help="Another login; repeat.")] = None,
    users_file: Annotated[str | None, typer.Option(
        "--users-file", metavar="PATH", help="Logins, one NAME:PASSWORD a line.")] = None,
    no_guest: Annotated[bool, typer.Option(
        "--no-guest", help="No guest/guest login.")] = False,
    vhosts: Annotated[list[str] | None, typer.Option(
        "--vhost", metavar="NAME",
        help="A vhost to serve besides '/' (repeat), added to the store if it is not there. "
             "Every vhost of the store is served (`amq vhost add` makes more).")] = None,
    definitions: Annotated[str | None, typer.Option(
        "--definitions", metavar="FILE",
        help="Load users, permissions, queues, exchanges and bindings from a definitions "
             "file (RabbitMQ's JSON, `rabbitmqctl export_definitions`) before serving.")
    ] = None,
    max_message_size: Annotated[int, typer.Option(
        "--max-message-size", metavar="BYTES", min=1, max=LARGEST_MAX_MESSAGE_SIZE,
        help="The largest message body accepted (RabbitMQ 3's default: 128 MiB); larger "
             "ones close the channel with 406.")] = MAX_MESSAGE_SIZE,
    consumer_timeout: Annotated[str, typer.Option(
        "--consumer-timeout", metavar="SECONDS",
        help="Close the channel of a client that holds a delivery unacknowledged this "
             "long (RabbitMQ's default: 1800, 30 minutes); 0 or off: never.")
    ] = CONSUMER_TIMEOUT,
    max_connections: Annotated[int | None, typer.Option(
        "--max-connections", min=0, metavar="N",
        help="Refuse connection.open past N open connections (530, as RabbitMQ's "
             "max-connections limit); default: no limit.")] = None,
    max_channels: Annotated[int | None, typer.Option(
        "--max-channels", min=1, max=65535, metavar="N",
        help="The channel_max offered in connection.tune (default: 2047, RabbitMQ's).")
    ] = None,
    disk_free_limit: Annotated[str, typer.Option(
        "--disk-free-limit", metavar="BYTES",
        help="Block publishers (connection.blocked) while the store's disk has less free "
             "space than this (RabbitMQ's default: 50MB; kB, MB, GB, TB or KiB... too).")
    ] = "50MB",
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="LEVEL", help="debug, info, warning or error.")] = "info",
) -> int:
    env = env_of(ctx)
    path = _store_path(env, url, memory)
    plain_port = parse_port(port)
    from ..server.tls import TlsListener, server_context
    tls = None
    if tls_port is not None:
        if not tls_cert:
            raise errors.UsageError("--tls-port needs --tls-cert FILE (and --tls-key FILE)")
        tls = TlsListener(tls_port, server_context(tls_cert, tls_key, tls_ca,
                                                   tls_verify_peer))
    elif tls_cert or tls_key or tls_ca or tls_verify_peer:
        raise errors.UsageError("the --tls-* options need --tls-port PORT")
    if plain_port is None and tls is None:
        raise errors.UsageError("--port none serves TLS only: give --tls-port too")
    from ..server.auth import Users, parse_user, read_users_file
    accounts = read_users_file(users_file) if users_file else {}
    accounts.update(parse_user(spec) for spec in users or [])
    ack_timeout = parse_consumer_timeout(consumer_timeout)
    from ..server.alarm import parse_limit
    free_limit = parse_limit(disk_free_limit)
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise errors.UsageError(f"unknown log level {log_level!r}")
    _log_to(env, level)
    from ..broker.engine import Broker
    from ..server.listener import Server
    broker = Broker(path, max_message_size)
    logins = Users(accounts, guest=not no_guest)
    limits = {"max_channels": max_channels} if max_channels else {}
    try:
        server = Server(broker, logins, host, plain_port, ack_timeout, tls,
                        max_connections=max_connections, disk_free_limit=free_limit, **limits)
    except BaseException:
        broker.close()
        raise
    try:
        for name in vhosts or ():
            server.hosts.ensure(name)
        if definitions:
            _load_definitions(env, server, logins, definitions)
    except BaseException:
        server.hosts.close()
        raise
    asyncio.run(_run(env, server, path))
    return ExitStatus.OK


def _load_definitions(env: Environment, server: Server, logins: Users, path: str) -> None:
    from ..server import boot
    from .definitions import read_file, summary
    steps = boot.load(server.hosts.ensure, logins, read_file(path), path,
                      lambda line: env.say(f"amq: {line}"))
    logging.getLogger("amq.server").info(
        "definitions of %s: %d users; %s", path, len(logins.accounts), summary(steps, False))


def parse_port(text: str) -> int | None:
    """``--port``: 0 to 65535, or None for ``none`` (no plain port)."""
    word = text.strip().lower()
    if word == "none":
        return None
    if word.isdigit() and int(word) <= 65535:
        return int(word)
    raise errors.UsageError(f"--port: expected a port (0 to 65535) or none, got {text!r}")


def parse_consumer_timeout(text: str) -> float | None:
    """``--consumer-timeout``: seconds (a decimal number), None for ``0`` or ``off``."""
    word = text.strip().lower()
    if word in ("off", "0"):
        return None
    try:
        seconds = float(word)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise errors.UsageError(f"--consumer-timeout: expected SECONDS (a number; 0 or off "
                                f"for none), got {text!r}")
    return seconds or None


def _store_path(env: Environment, url: str | None, memory: bool) -> str | None:
    if memory:
        if url:
            raise errors.UsageError("give --url or --memory, not both")
        return None
    if url:
        env.url = url
    resolved = env.broker_url()
    if resolved.scheme != "local":
        raise errors.UsageError("amq broker serve serves the local broker: give "
                                "--url local:PATH, or --memory")
    if resolved.vhost != "/":
        raise errors.UsageError("amq broker serve serves every vhost of the store: give "
                                "its URL without ?vhost=")
    return resolved.path


def _log_to(env: Environment, level: int) -> None:
    handler = logging.StreamHandler(env.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
    logger = logging.getLogger("amq.server")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


async def _run(env: Environment, server: Server, path: str | None) -> None:
    await server.start()
    # What start-up made lives as long as the server: out of the collector's sight, so
    # that its full collections (tens of ms with every module's objects) stay short.
    gc.collect()
    gc.freeze()
    lines = []
    for where in server.listening:
        shown = f"[{where.host}]:{where.port}" if ":" in where.host else \
            f"{where.host}:{where.port}"
        lines.append(f"listening {'for TLS ' if where.tls else ''}on {shown}\n")
        logging.getLogger("amq.server").info(
            "serving %s over AMQP 0-9-1%s on %s", f"local:{path}" if path else
            "a store in memory", " with TLS" if where.tls else "", shown)
    os.write(env.stdout_fd, "".join(lines).encode())
    loop = asyncio.get_running_loop()
    before = {signo: signal.getsignal(signo) for signo in (signal.SIGINT, signal.SIGTERM)}
    for signo in before:
        loop.add_signal_handler(signo, server.stop)
    try:
        await server.run()
    finally:
        for signo, handler in before.items():  # as they were (the shell goes on after)
            loop.remove_signal_handler(signo)
            signal.signal(signo, handler)
    logging.getLogger("amq.server").info("stopped")


class TraceSwitch(StrEnum):
    ON = "on"
    OFF = "off"


TRACE_HELP = """Turn the local broker's firehose on or off: while on, every publish and
every delivery is copied to the exchange amq.rabbitmq.trace, with RabbitMQ's trace headers
(`amq tap --firehose` prints them). It takes effect in every amq process within a second.
On RabbitMQ: `rabbitmqctl trace_on -p VHOST` (or trace_off)."""


@broker_app.command("trace", help=TRACE_HELP)
def trace(
    ctx: typer.Context,
    switch: Annotated[TraceSwitch, typer.Argument(
        metavar="on|off", case_sensitive=False, help="on or off.")],
) -> None:
    env = env_of(ctx)
    resolved = env.broker_url()
    if resolved.scheme != "local":
        raise errors.UsageError(
            "amq broker trace switches the local broker's firehose; on RabbitMQ: "
            f"rabbitmqctl trace_{switch.value} -p VHOST")
    from ..broker.trace import set_tracing
    from ..broker.vhosts import open_broker
    assert resolved.path is not None  # a local URL names its store
    try:
        broker = open_broker(resolved.path, resolved.vhost)
    except errors.BrokerError as err:
        raise err.in_vhost(resolved.vhost) from None
    try:
        with broker.store.transaction() as db:
            set_tracing(db, switch is TraceSwitch.ON)
    finally:
        broker.close()
    env.say(f"amq: tracing is {switch.value} (amq.rabbitmq.trace)" + (
        f" in vhost '{resolved.vhost}'" if resolved.vhost != "/" else ""))
