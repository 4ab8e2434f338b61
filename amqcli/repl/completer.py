"""Completion for the shell as a pure step: the text before the cursor in, suggestions out.

The suggestions come from click's own completion (``ShellComplete.get_completions``) over
the command tree of the command line, with the shell's commands added: the same source
as the bash, zsh and fish scripts, so they never drift apart. Queue and exchange names come
from the ``NameSource`` handed to the completion context (the session's ``Catalog``).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..cli.completion_scripts import COMPLETE_VAR, PROG_NAME
from ..cli.names import Kind, NameSource, attach, kind_in
from ..cli.typer_shim import CompletionItem, ShellComplete, group, resolve_context

if TYPE_CHECKING:
    import typer
    from typer.core import TyperGroup

    from ..cli.typer_shim import Command, Context

NOT_IN_THE_SHELL = ("shell", "repl")  # no shell inside the shell


def command_tree(commands: typer.Typer, shell_commands: TyperGroup) -> TyperGroup:
    """The command line's click tree (of ``commands``, every command loaded), less
    ``shell``, plus the shell's own commands, with name completion attached."""
    tree = group(commands)
    for name in NOT_IN_THE_SHELL:
        tree.commands.pop(name, None)
    for name, command in shell_commands.commands.items():
        tree.add_command(command, name)
    return attach(tree)


@dataclass(frozen=True, slots=True)
class Line:
    """A command line cut at the cursor: the words before, and the word being typed."""

    words: list[str]
    incomplete: str  # unquoted
    start: int  # where the word being typed starts in the text, quotes included


def split_line(text: str) -> Line:
    """Split like ``shlex.split``, tolerating an open quote in the last word."""
    words: list[str] = []
    current: list[str] = []
    start: int | None = None  # None: between words
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and text[i + 1:i + 2] in ('"', "\\"):
                i += 1
                current.append(text[i])
            else:
                current.append(c)
        elif c.isspace():
            if start is not None:
                words.append("".join(current))
                current, start = [], None
        else:
            start = i if start is None else start
            if c in "'\"":
                quote = c
            elif c == "\\":
                i += 1
                current.append(text[i:i + 1])
            else:
                current.append(c)
        i += 1
    if start is None:
        return Line(words, "", len(text))
    return Line(words, "".join(current), start)


class _Suggest(ShellComplete):
    """click's completion engine, without a shell script around it."""

    name = "amq-shell"
    source_template = ""

    def source_vars(self) -> dict[str, Any]:
        return {}

    def get_completion_args(self) -> tuple[list[str], str]:
        return [], ""

    def format_completion(self, item: CompletionItem) -> str:
        return str(item.value)


def suggest(tree: Command, names: NameSource, words: list[str],
            incomplete: str) -> list[CompletionItem]:
    """click's ``CompletionItem``s for the word being typed after ``words``; never raises."""
    if words[:1] == ["help"]:
        words = words[1:]  # help COMMAND completes as COMMAND does
    try:
        engine = _Suggest(tree, {"obj": names}, PROG_NAME, COMPLETE_VAR)
        return list(engine.get_completions(list(words), incomplete))
    except Exception:  # noqa: BLE001 - a half-typed line must never break the prompt
        return []


def _quoted(value: str) -> str:
    return shlex.quote(value) if value else "''"


def completions(tree: Command, names: NameSource, text: str) -> Iterator[Completion]:
    """The completions for the text before the cursor."""
    line = split_line(text)
    for item in suggest(tree, names, line.words, line.incomplete):
        value = str(item.value)
        yield Completion(_quoted(value), start_position=line.start - len(text),
                         display=value, display_meta=item.help or "")


class CommandCompleter(Completer):
    """prompt-toolkit's side of ``completions``."""

    def __init__(self, tree: Command, names: NameSource) -> None:
        self.tree = tree
        self.names = names

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterable[Completion]:
        return completions(self.tree, self.names, document.text_before_cursor)


def names_in(tree: Command, words: list[str]) -> list[tuple[Kind, str]]:
    """The queue and exchange names a command line uses (for the names seen)."""
    try:
        ctx: Context | None = resolve_context(tree, words, PROG_NAME)
    except Exception:  # noqa: BLE001 - a bad line names nothing
        return []
    found = []
    while ctx is not None:
        for param in ctx.command.params:
            kind = kind_in(ctx, param)
            value = ctx.params.get(param.name or "")
            if kind is not None and isinstance(value, str) and value:
                found.append((kind, value))
        ctx = ctx.parent
    return found
