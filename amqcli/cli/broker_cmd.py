"""``amq broker serve``: the local broker over AMQP 0-9-1, for any AMQP client.

Turns the flags into a store path, a set of users and an address, and runs
``server.listener.Server`` until Ctrl+C or SIGTERM. The first line on stdout is
``listening on HOST:PORT`` (with ``--port 0``, the port the system picked); the log goes
to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from ..broker.publishing import LARGEST_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE
from ..errors import ExitStatus
from .app import app, env_of
from .env import Environment

if TYPE_CHECKING:
    from ..server.listener import Server

broker_app = typer.Typer(help="The built-in local broker.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")

SERVE_HELP = """Serve the local broker over AMQP 0-9-1 on HOST:PORT, so that any AMQP
client (pika, aio-pika, kombu, the RabbitMQ tutorials) can use it. It serves the same
store as the other commands: `amq send` and a client of the server see the same queues.

Logins: guest/guest from loopback addresses only, as in RabbitMQ (--no-guest removes it);
more users with --user NAME:PASSWORD or --users-file. Stops cleanly on Ctrl+C or SIGTERM,
requeueing what clients held unacknowledged. Exit 13 if the address is taken.

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
    port: Annotated[int, typer.Option(
        "--port", "-p", min=0, max=65535, metavar="PORT",
        help="TCP port; 0 picks a free one (reported on the first line).")] = 5672,
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
    max_message_size: Annotated[int, typer.Option(
        "--max-message-size", metavar="BYTES", min=1, max=LARGEST_MAX_MESSAGE_SIZE,
        help="The largest message body accepted (RabbitMQ 3's default: 128 MiB); larger "
             "ones close the channel with 406.")] = MAX_MESSAGE_SIZE,
    consumer_timeout: Annotated[str, typer.Option(
        "--consumer-timeout", metavar="SECONDS",
        help="Close the channel of a client that holds a delivery unacknowledged this "
             "long (RabbitMQ's default: 1800, 30 minutes); 0 or off: never.")
    ] = CONSUMER_TIMEOUT,
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="LEVEL", help="debug, info, warning or error.")] = "info",
) -> int:
    env = env_of(ctx)
    path = _store_path(env, url, memory)
    from ..server.auth import Users, parse_user, read_users_file
    accounts = read_users_file(users_file) if users_file else {}
    accounts.update(parse_user(spec) for spec in users or [])
    ack_timeout = parse_consumer_timeout(consumer_timeout)
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise errors.UsageError(f"unknown log level {log_level!r}")
    _log_to(env, level)
    from ..broker.engine import Broker
    from ..server.listener import Server
    broker = Broker(path, max_message_size)
    server = Server(broker, Users(accounts, guest=not no_guest), host, port, ack_timeout)
    asyncio.run(_run(env, server, path))
    return ExitStatus.OK


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
    return resolved.path


def _log_to(env: Environment, level: int) -> None:
    handler = logging.StreamHandler(env.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
    logger = logging.getLogger("amq.server")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


async def _run(env: Environment, server: Server, path: str | None) -> None:
    host, port = await server.start()
    shown = f"[{host}]" if ":" in host else host
    os.write(env.stdout_fd, f"listening on {shown}:{port}\n".encode())
    logging.getLogger("amq.server").info(
        "serving %s over AMQP 0-9-1 on %s:%d", f"local:{path}" if path else "a store in "
        "memory", shown, port)
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
