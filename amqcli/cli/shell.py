"""``amq shell`` (alias ``amq repl``): the interactive shell. Its code lives in ``repl/``,
imported only when the shell starts, so other commands never pay for prompt-toolkit."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ExitStatus
from .app import app, env_of

SHELL_HELP = """An interactive shell on one broker connection: the same commands as on the
command line (without `amq`), with completion of commands, options, queue and exchange
names, history (Ctrl+R searches it), background subscriptions (subscribe QUEUE), and
connect URL to switch broker. `help` lists everything; Ctrl+C cancels the running
command; Ctrl+D leaves. Without a terminal it runs the lines of stdin (amq shell <
setup.amq) and, like sh -e, stops at the first line that fails, with that line's exit
status. Alias: amq repl."""

KeepGoing = Annotated[bool, typer.Option(
    "--keep-going",
    help="Reading lines from stdin: run every line even after one fails; exit with the "
         "last failure's status.")]


@app.command("shell", help=SHELL_HELP)
def shell(ctx: typer.Context, keep_going: KeepGoing = False) -> ExitStatus:
    from ..repl.session import run_shell
    return run_shell(env_of(ctx), keep_going)


@app.command("repl", help=SHELL_HELP, hidden=True)
def repl(ctx: typer.Context, keep_going: KeepGoing = False) -> ExitStatus:
    return shell(ctx, keep_going)
