"""``amq shell`` (alias ``amq repl``): the interactive shell. Its code lives in ``repl/``,
imported only when the shell starts, so other commands never pay for prompt-toolkit."""

from __future__ import annotations

import typer

from ..errors import ExitStatus
from . import app, env_of

SHELL_HELP = """An interactive shell on one broker connection: the same commands as on the
command line (without `amq`), with completion of commands, options, queue and exchange
names, history (Ctrl+R searches it), background subscriptions (subscribe QUEUE), and
connect URL to switch broker. `help` lists everything; Ctrl+C cancels the running
command; Ctrl+D leaves. Alias: amq repl."""


@app.command("shell", help=SHELL_HELP)
def shell(ctx: typer.Context) -> ExitStatus:
    from ..repl.session import run_shell
    return run_shell(env_of(ctx))


@app.command("repl", help=SHELL_HELP, hidden=True)
def repl(ctx: typer.Context) -> ExitStatus:
    return shell(ctx)
