"""``amq completion SHELL``: print (or ``--install``) the completion script for a shell;
and the answering side of the scripts' ``_AMQ_COMPLETE`` protocol.

A script runs ``amq`` with ``_AMQ_COMPLETE=complete_bash`` (zsh, fish) and no words, so
``load_commands`` imports every command module, this one included: importing it then
registers typer's completion classes, extended to complete queue and exchange names
(``names.attach``), before typer reads the variable and answers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app, env_of
from .completion_scripts import COMPLETE_VAR, INSTALL_HINTS, Shell

if TYPE_CHECKING:
    from .typer_shim import Command


def _with_names(base: type) -> type:
    """A typer completion class that first attaches the name completions to the tree."""

    class WithNames(base):  # type: ignore[misc, valid-type, unused-ignore]
        def __init__(self, cli: Command, *args: Any, **kwargs: Any) -> None:
            from .names import attach
            super().__init__(attach(cli), *args, **kwargs)

    WithNames.__name__ = f"{base.__name__}WithNames"
    return WithNames


def enable() -> None:
    """Answer ``_AMQ_COMPLETE`` requests with typer's formats and the broker's names."""
    from .typer_shim import (
        BashComplete,
        FishComplete,
        ZshComplete,
        add_completion_class,
        completion_init,
    )
    completion_init()
    for base in (BashComplete, ZshComplete, FishComplete):
        add_completion_class(_with_names(base), base.name)


if os.environ.get(COMPLETE_VAR):
    enable()


@app.command("completion", help="Print the completion script for bash, zsh or fish "
             "(it completes commands, options, and queue and exchange names); "
             "--install writes it where the shell finds it.")
def completion(
    ctx: typer.Context,
    shell: Annotated[Shell, typer.Argument(
        case_sensitive=False, metavar="SHELL", help="bash, zsh or fish.")],
    install: Annotated[bool, typer.Option(
        "--install", help="Write the script to the shell's per-user completion directory.")
    ] = False,
) -> None:
    from . import completion_scripts
    env = env_of(ctx)
    if not install:
        os.write(env.stdout_fd, completion_scripts.script(shell).encode())
        return
    try:
        path = completion_scripts.install(shell)
    except OSError as err:
        from ..errors import UsageError
        raise UsageError(f"cannot write the {shell} completion script: {err}") from None
    env.say(f"installed {path}: " + INSTALL_HINTS[shell].format(path=path))
