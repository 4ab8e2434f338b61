"""The ``amq`` command: loading the command tree, and the one place errors become exit codes.

The command modules register themselves on ``app.app`` (``cli/app.py``); they turn flags
into typed values and call a backend. ``run`` loads the command a line names and runs it,
mapping every ``AmqError`` (and Ctrl+C, and a closed stdout) to one line on stderr and an
``ExitStatus``; ``main`` is the console script.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand

from .. import errors
from ..errors import ExitStatus
from .app import APP_SETTINGS, CommandLine
from .app import app as root_app
from .env import Environment
from .typer_shim import ClickException, Context

if TYPE_CHECKING:
    from types import FrameType


# Which module registers each top-level command: a one-shot command imports only its own.
COMMAND_MODULES = {
    "send": "send", "receive": "receive", "declare": "topology", "bind": "topology",
    "unbind": "topology", "delete": "topology", "purge": "topology", "list": "listing",
    "rpc": "rpc",
    "shell": "shell", "repl": "shell", "completion": "completion",
    "route": "route", "broker": "broker_cmd", "status": "status", "peek": "peek",
    "tap": "tap", "replay": "replay", "move": "move", "definitions": "definitions",
    "top": "top", "vhost": "vhost",
}


class Command(TyperCommand):
    """A command whose usage line reads like the README (``amq bind EXCHANGE QUEUE``):
    typer writes required arguments as ``{EXCHANGE}``, a notation no other help uses."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [_BRACED.sub(r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


_BRACED = re.compile(r"\{([^{}]*)\}")


def _plain_usage(tree: typer.Typer) -> None:
    """Every command of the tree built as a ``Command`` (unless it names its own class)."""
    for info in tree.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = Command
    for group in tree.registered_groups:
        if group.typer_instance is not None:
            _plain_usage(group.typer_instance)


def load_commands(word: str | None = None) -> typer.Typer:
    """Import the module of command ``word`` (all of them for anything else); the tree."""
    import importlib
    wanted = [COMMAND_MODULES[word]] if word in COMMAND_MODULES else \
        list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in wanted:
        importlib.import_module(f"{__name__}.{module}")
    _plain_usage(root_app)
    return root_app


def _report(env: Environment, err: errors.AmqError) -> None:
    line = f"amq: error: {err}"
    if err.hint:
        line += f" ({err.hint})"
    env.say(line)


def _silence_stdout() -> None:
    """After a reader closed our stdout, make Python's exit flush go nowhere, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _terminate(_signo: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _first_word(argv: list[str]) -> str | None:
    """The first word of a command line after the global options that take a value."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("--url", "-u", "--broker", "-b"):
            i += 2
        elif word.startswith(("--url=", "--broker=")):
            i += 1
        else:
            return word
    return None


def _command_word(argv: list[str]) -> str | None:
    """The top-level command a command line names (skipping the global options)."""
    word = _first_word(argv)
    return None if word is None or word.startswith("-") else word


def app_for(argv: list[str]) -> typer.Typer:
    """The command tree trimmed to the one command the line names, when it names one.

    Typer builds a click command for every function of the tree before parsing, reading
    each signature; a one-shot ``amq send`` need not pay for the other commands. The
    trimmed tree holds the same functions, so parsing, help and errors are the same.
    """
    word = _command_word(argv)
    if _first_word(argv) in ("--version", "-V"):
        word = "--version"  # no command module to load, no command to build
    else:
        load_commands(word)
    commands = [c for c in root_app.registered_commands if c.name == word]
    groups = [g for g in root_app.registered_groups if g.name == word]
    if not commands and not groups and word != "--version":
        return root_app
    trimmed = typer.Typer(**APP_SETTINGS)
    trimmed.registered_callback = root_app.registered_callback
    trimmed.registered_commands = commands
    trimmed.registered_groups = groups
    return trimmed


def run(argv: list[str] | None, env: Environment) -> ExitStatus:
    """Run one command line in an environment; the exit status. Never raises."""
    code = ExitStatus.OK
    if argv is None:
        argv = sys.argv[1:]
    env.command_line = COMMAND_LINE  # for the shell's lines
    try:
        from .parsing import require_utf8
        command = require_utf8(typer.main.get_command(app_for(argv)))
        result = command(args=argv, prog_name="amq", standalone_mode=False, obj=env)
        if isinstance(result, int):
            code = ExitStatus(result)
    except typer.Exit as exit_:
        code = ExitStatus(exit_.exit_code) if exit_.exit_code in ExitStatus._value2member_map_ \
            else ExitStatus.ERROR
    except typer.Abort:
        code = ExitStatus.INTERRUPTED
    except ClickException as err:
        err.show(file=env.stderr)
        code = ExitStatus.USAGE
    except errors.AmqError as err:
        _report(env, err)
        code = err.exit_status
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
    except Exception as err:  # a bug: still one line, unless AMQ_DEBUG asks for the trace
        if os.environ.get("AMQ_DEBUG"):
            raise
        env.say(f"amq: internal error: {type(err).__name__}: {err} "
                "(run with AMQ_DEBUG=1 for the traceback, and please report it)")
        code = ExitStatus.ERROR
    finally:
        try:
            env.close()
        except errors.AmqError as err:
            if code == ExitStatus.OK:
                _report(env, err)
                code = err.exit_status
        except KeyboardInterrupt:
            code = ExitStatus.INTERRUPTED
    return code


COMMAND_LINE = CommandLine(load_commands, run)


def main(argv: list[str] | None = None) -> None:
    """The console script ``amq``."""
    signal.signal(signal.SIGTERM, _terminate)
    env = Environment()
    code = run(argv, env)
    # The interpreter's exit collections walk every object the imports made (a fifth of
    # the CPU of a one-message `amq send`, measured); frozen, they are skipped. What they
    # would free goes with the process; its files are closed and flushed by now.
    gc.freeze()
    sys.exit(int(code))
