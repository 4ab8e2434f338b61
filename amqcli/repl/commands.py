"""The commands only the shell has: connect, subscribe, subscriptions, unsubscribe, help,
exit. They are a typer app like the command line's, so they parse, complete and answer
``--help`` the same way; each turns its flags into values and calls the ``Session``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from ..cli import consumer_options as options
from ..cli.typer_shim import ClickException, group
from ..errors import ExitStatus
from .subscriptions import Source

if TYPE_CHECKING:
    from typer.core import TyperGroup

    from .session import Session

HELP_OPTIONS = ["-h", "--help"]
shell_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": HELP_OPTIONS})


def _session(ctx: typer.Context) -> Session:
    session: Session = ctx.obj
    return session


CONNECT_HELP = "Switch broker: URL (local, local:PATH, amqp://...) or --broker NAME; " \
               "the old connection closes and its subscriptions stop. Alone: show the broker."


@shell_app.command("connect", help=CONNECT_HELP)
def connect(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(metavar="[URL]", show_default=False)] = None,
    broker: Annotated[str | None, typer.Option(
        "--broker", "-b", metavar="NAME", help="A broker profile of the config file.")] = None,
) -> None:
    session = _session(ctx)
    if url is None and broker is None:
        session.say(f"connected to {session.display}")
        return
    session.connect(url, broker)


@shell_app.command("use", help=CONNECT_HELP, hidden=True)
def use(ctx: typer.Context,
        url: Annotated[str | None, typer.Argument(metavar="[URL]", show_default=False)] = None,
        broker: Annotated[str | None, typer.Option("--broker", "-b", metavar="NAME")] = None,
        ) -> None:
    connect(ctx, url, broker)


@shell_app.command("subscribe", help="Print QUEUE's messages as they arrive, in the "
                   "background, above the prompt (each acknowledged once printed); or with "
                   "-e an exchange's, through a fresh exclusive queue bound with the -k keys.")
def subscribe(
    ctx: typer.Context,
    queue: Annotated[str | None, typer.Argument(metavar="[QUEUE]", show_default=False)] = None,
    exchange: options.ShellExchange = None,
    keys: options.Keys = None,
    no_declare: options.NoDeclare = False,
    no_reconnect: options.NoReconnect = False,
) -> None:
    if (queue is None) == (exchange is None):
        raise errors.UsageError("give a QUEUE, or -e EXCHANGE (not both)")
    if keys and exchange is None:
        raise errors.UsageError("-k/--key goes with -e EXCHANGE")
    source = Source(queue, exchange, tuple(keys or [""]), not no_declare, not no_reconnect)
    _session(ctx).subscribe(source)


@shell_app.command("subscriptions", help="List the background subscriptions.")
def subscriptions(ctx: typer.Context) -> None:
    _session(ctx).list_subscriptions()


@shell_app.command("unsubscribe", help="Stop a subscription, by number or queue name "
                   "(its unacknowledged messages go back to the queue).")
def unsubscribe(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Argument(
        metavar="[NAME_OR_ID]", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stop every subscription.")] = False,
) -> None:
    if (target is None) == (not all_):
        raise errors.UsageError("give a subscription's number or queue, or --all")
    _session(ctx).unsubscribe(target)


@shell_app.command("help", help="List the commands, or show a command's help.")
def help_(
    ctx: typer.Context,
    command: Annotated[list[str] | None, typer.Argument(
        metavar="[COMMAND]...", show_default=False)] = None,
) -> ExitStatus:
    return _session(ctx).help(command or [])


@shell_app.command("exit", help="Leave the shell (or Ctrl+D).")
def exit_(ctx: typer.Context) -> None:
    _session(ctx).leaving = True


@shell_app.command("quit", help="Leave the shell (or Ctrl+D).", hidden=True)
def quit_(ctx: typer.Context) -> None:
    exit_(ctx)


def shell_group() -> TyperGroup:
    """The click group of the shell's own commands."""
    return group(shell_app)


def run_command(session: Session, shell_commands: TyperGroup, words: list[str]) -> ExitStatus:
    """Run one of the shell's commands; its exit status. Errors become one line, as on
    the command line."""
    command = shell_commands.commands[words[0]]
    try:
        result = command.main(args=words[1:], prog_name=words[0], standalone_mode=False,
                              obj=session, help_option_names=HELP_OPTIONS)
    except typer.Exit as exit_:
        return ExitStatus.OK if exit_.exit_code == 0 else ExitStatus.ERROR
    except (typer.Abort, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    except ClickException as err:
        err.show(file=session.env.stderr)
        return ExitStatus.USAGE
    except errors.AmqError as err:
        session.report(err)
        return err.exit_status
    except Exception as err:  # noqa: BLE001 - a bug: one line, the shell carries on
        session.say(f"amq: internal error: {type(err).__name__}: {err} (please report it)")
        return ExitStatus.ERROR
    return result if isinstance(result, ExitStatus) else ExitStatus.OK
