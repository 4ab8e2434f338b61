"""The command tree ``app`` that every command module registers itself on, its global
options, and ``env_of`` (a command's ``Environment``).

A module of its own so that the command modules import it, and not ``cli/__init__.py``,
which imports them (``load_commands``). The shell gets the whole command line handed to it
(``CommandLine``, in ``Environment.command_line``) for the same reason: the command line
loads the shell's command module, so the shell may not import the command line back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from .env import Environment

if TYPE_CHECKING:
    from ..errors import ExitStatus

__all__ = ["APP_SETTINGS", "CommandLine", "app", "env_of"]

APP_SETTINGS: dict[str, Any] = {
    "name": "amq",
    "help": "AMQP 0-9-1 messaging from the command line: a built-in local broker, or RabbitMQ "
         "with --url amqp://...",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "pretty_exceptions_show_locals": False,  # locals would show passwords
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(**APP_SETTINGS)


def _show_version(value: bool) -> None:
    """``--version``: the installed package's version (its metadata, the one copy)."""
    if value:
        from .. import __version__
        print(f"amq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", "-u", metavar="URL",
        help="Broker: local (default), local:PATH, amqp://user:pass@host:port/vhost, "
             "amqps://... [env AMQ_URL]")] = None,
    broker: Annotated[str | None, typer.Option(
        "--broker", "-b", metavar="NAME",
        help="A broker profile of the config file (amq/config.toml) [env AMQ_BROKER]")] = None,
    _version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_show_version,
        help="Print amq's version and exit.")] = False,
) -> None:
    env: Environment = ctx.ensure_object(Environment)
    if url is not None:
        env.url = url
    if broker is not None:
        env.broker = broker


def env_of(ctx: typer.Context) -> Environment:
    return ctx.find_object(Environment) or ctx.ensure_object(Environment)


class CommandLine(NamedTuple):
    """The command line as the shell runs its lines: the same tree, the same ``run``."""

    tree: Callable[[], typer.Typer]  # the command tree with every command loaded
    run: Callable[[list[str], Environment], ExitStatus]  # one command line; never raises
