"""typer's and click's private parts that amq uses: the one module that reaches into them.

Checked against typer 0.24-0.28 (tests run on 0.28.0; 0.24.0 and 0.26.0 read by source);
``pyproject.toml`` pins ``typer>=0.24,<0.29``. From 0.25 or so typer vendors click as
``typer._click`` (trimmed: no ``Group``); before, the same names come from the ``click``
package. ``tests/unit/test_shims.py`` fails, naming the missing attribute, when an
installed typer lacks one of them. What amq relies on:

- ``click``: the module itself, for the types of the command tree (``Command``,
  ``Context``, ``Parameter``) and ``ClickException``, the base of the usage errors
  ``cli.run`` shows (typer's public ``TyperException`` has no ``show``);
- ``click.shell_completion.ShellComplete``, ``_resolve_context`` and
  ``add_completion_class``: click's completion engine, driven by the shell's completer
  without a shell script around it (``repl/completer.py``), and the registry of the
  completion classes that answer ``_AMQ_COMPLETE``;
- ``typer._completion_classes``: ``BashComplete``, ``ZshComplete``, ``FishComplete`` and
  ``completion_init``, typer's formats of the scripts' answers, subclassed to complete
  queue and exchange names (``cli/completion.py``);
- ``Parameter._custom_shell_complete``: where click keeps a parameter's
  ``shell_complete`` callback, set on a built tree (``cli/names.py``), since typer builds
  the click parameters itself.

Everything named here is imported by ``import typer`` already: importing this module
costs ``amq send`` no module but itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from typer import _click as click
    from typer._click.shell_completion import (
        CompletionItem,
        ShellComplete,
        _resolve_context,
        add_completion_class,
    )
except ImportError:  # pragma: no cover - a typer on the click package (0.24)
    import click  # type: ignore[no-redef, import-not-found, unused-ignore]
    from click.shell_completion import (  # type: ignore[no-redef, import-not-found, unused-ignore, assignment]
        CompletionItem,
        ShellComplete,
        _resolve_context,
        add_completion_class,
    )
from typer._completion_classes import BashComplete, FishComplete, ZshComplete, completion_init
from typer.core import TyperGroup
from typer.main import get_command

if TYPE_CHECKING:
    import typer

ClickException = click.ClickException
Command = click.Command
Context = click.Context
Parameter = click.Parameter

__all__ = [
    "BashComplete", "ClickException", "Command", "CompletionItem", "Context", "FishComplete",
    "Parameter", "ShellComplete", "ZshComplete", "add_completion_class", "click",
    "completion_init", "custom_shell_complete", "group", "resolve_context",
    "set_custom_shell_complete",
]

ShellCompleteFn = Callable[[Context, Parameter, str], Any]


def group(app: typer.Typer) -> TyperGroup:
    """The click group typer builds for an app of several commands (``typer.main``'s
    ``get_command``, typed: it is declared to return any click ``Command``)."""
    tree = get_command(app)
    if not isinstance(tree, TyperGroup):
        raise TypeError(f"{app!r} builds a single command, not a group")
    return tree


def resolve_context(cli: Command, words: list[str], prog_name: str) -> Context:
    """The context click would run ``words`` in (parsed leniently, as for completion)."""
    ctx: Context = _resolve_context(cli, {}, prog_name, list(words))
    return ctx


def custom_shell_complete(param: Parameter) -> ShellCompleteFn | None:
    """The ``shell_complete`` callback a parameter was given (None: click's default)."""
    fn: ShellCompleteFn | None = param._custom_shell_complete
    return fn


def set_custom_shell_complete(param: Parameter, fn: ShellCompleteFn) -> None:
    """Give a built parameter a ``shell_complete`` callback."""
    param._custom_shell_complete = fn
