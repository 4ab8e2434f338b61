"""The shell's session: one broker connection kept open, the command lines run through the
command line's own ``run``, the shell's commands, background subscriptions, and the
prompt-toolkit loop around them.

A line is split like a shell would (``shlex``) and run by the command line's own ``run``
(handed over in ``Environment.command_line``: the shell does not import the command line,
which loads the shell's command module) on the session's ``Environment``
(``keep_open``), so the words, help, errors and output are those of ``amq WORDS`` on the
command line. Ctrl+C interrupts the running command, Ctrl+D leaves.
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .. import config, errors
from ..amqp.model import Delivery
from ..cli.app import CommandLine
from ..cli.env import Environment
from ..errors import ExitStatus
from .catalog import Catalog, Refresher
from .commands import run_command, shell_group
from .completer import NOT_IN_THE_SHELL, command_tree, names_in
from .history import mask_line, open_history
from .subscriptions import Source, Subscription, Subscriptions
from .terminal import Terminal

if TYPE_CHECKING:
    from types import FrameType

    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer
    from prompt_toolkit.history import History
    from prompt_toolkit.input import Input
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.output import Output

    from ..cli.typer_shim import Command


class Terminated(BaseException):
    """SIGTERM: leave the shell (not just the running command, as Ctrl+C does)."""


def history_path() -> str:
    """``history`` beside the default local store, in the user's data directory."""
    return os.path.join(os.path.dirname(config.default_store_path()), "history")


def display(url: config.BrokerURL) -> str:
    """The broker as the shell names it: the local store's path, a URL's password masked."""
    if url.scheme == "local" and url.path is not None:
        from urllib.parse import quote
        return f"local:{url.path}" + (f"?vhost={quote(url.vhost, safe='')}"
                                      if url.vhost != "/" else "")
    return url.display


def environment_like(env: Environment, url: str | None = None,
                     stdin_fd: int | None = None) -> Environment:
    """A fresh environment on the same streams (for another broker, or another stdin)."""
    stdin_isatty = env.stdin_isatty if stdin_fd is None else False
    like = Environment(env.stdin_fd if stdin_fd is None else stdin_fd, env.stdout_fd,
                       env.stderr, stdin_isatty, env.stdout_isatty, env.stderr_isatty, url=url)
    like.command_line = env.command_line
    return like


class Session:
    """The state of one shell: its environment (broker), names, subscriptions."""

    def __init__(self, env: Environment, terminal: Terminal | None = None) -> None:
        self.line = command_line_of(env)
        self.env = env
        env.keep_open = True
        self.terminal = terminal or Terminal(sys.stdout, env.stdout_isatty)
        self.shell_commands = shell_group()
        self.tree = command_tree(self.line.tree(), self.shell_commands)
        self.global_options = {opt for p in self.tree.params if p.name != "help"
                               for opt in p.opts + p.secondary_opts}
        self.catalog = Catalog()
        self.refresher: Refresher | None = None
        self.subscriptions = Subscriptions(self._show, self._note)
        self.display = "(no broker)"
        self.leaving = False

    # --- the broker ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect (an error is reported; commands try again) and start listing names."""
        try:
            url = self.env.broker_url()
        except errors.AmqError as err:
            self.report(err)
            return
        self.display = display(url)
        try:
            self.env.backend()
        except errors.AmqError as err:
            self.report(err)
        # after the first connection: two connections creating a new local store at once
        # can meet "database is locked"
        self._start_refresher(url)

    def name_broker(self) -> None:
        """Know the broker's name without connecting (a bad URL is left to the commands)."""
        try:
            self.display = display(self.env.broker_url())
        except errors.AmqError:
            pass

    def _start_refresher(self, url: config.BrokerURL) -> None:
        if self.refresher is not None:
            self.refresher.stop(0)
        self.catalog.clear()  # the same catalog: the prompt's completer holds it
        self.refresher = Refresher(url, self.catalog).start()

    def connect(self, url: str | None, broker: str | None) -> None:
        """Switch broker; the old connection closes only once the new one is open."""
        env = environment_like(self.env, url)
        env.broker = broker
        resolved = env.broker_url()
        env.keep_open = True
        env.backend()
        self._close_env()
        stopped = self.subscriptions.active()
        self.subscriptions.stop_all()
        for sub in stopped:
            self.say(f"subscription {sub.id} ({sub.source.name}) stopped")
        self.env = env
        self.display = display(resolved)
        self._start_refresher(resolved)
        self.say(f"connected to {self.display}")

    def _close_env(self) -> None:
        self.env.keep_open = False
        try:
            self.env.close()
        except errors.AmqError:
            pass  # the old broker is gone anyway

    def close(self) -> None:
        """Leave: stop the subscriptions (their unacked messages go back), disconnect."""
        self.subscriptions.stop_all()
        if self.refresher is not None:
            self.refresher.stop(0.5)
        self._close_env()

    # --- command lines ------------------------------------------------------------------

    def run_line(self, line: str) -> ExitStatus:
        """Run one command line; its exit status. Errors are reported (one line), never
        raised: the caller decides whether the session carries on."""
        try:
            words = shlex.split(line)
        except ValueError as err:
            self.say(f"amq: error: {err}")
            return ExitStatus.USAGE
        if not words or words[0].startswith("#"):
            return ExitStatus.OK
        status = self._dispatch(words)
        if status is ExitStatus.ACCESS_REFUSED and MASKED in line:
            self.say("amq: note: passwords are masked in the history, so a recalled line "
                     "does not log in: keep the password in a profile (connect --broker "
                     "NAME) or in AMQ_URL")
        for kind, name in names_in(self.tree, words):
            self.catalog.saw(kind, name)
        if self.refresher is not None:
            self.refresher.poke()
        return status

    def _dispatch(self, words: list[str]) -> ExitStatus:
        first = words[0]
        if first in self.shell_commands.commands:
            return run_command(self, self.shell_commands, words)
        if first in NOT_IN_THE_SHELL:
            return self._already_in()
        if first in HELP_WORDS:
            return self.help([])
        unknown = unknown_command(self.tree, words, self.global_options)
        if unknown is not None:
            self.say(f"amq: error: {mask_line(unknown)}")
            return ExitStatus.USAGE
        if first.partition("=")[0] in self.global_options:
            # another broker, this line only
            return self.line.run(words, environment_like(self.env))
        return self.line.run(words, self.env)

    def help(self, words: list[str]) -> ExitStatus:
        if words and words[0] in self.shell_commands.commands:
            return run_command(self, self.shell_commands, [words[0], "--help"])
        if words and words[0] in NOT_IN_THE_SHELL:
            return self._already_in()
        if words:
            unknown = unknown_command(self.tree, words, self.global_options)
            if unknown is not None:
                self.say(f"amq: error: {mask_line(unknown)}")
                return ExitStatus.USAGE
            return self.line.run([*words, "--help"], self.env)
        self.out(command_line_help(self.line))
        self._shell_commands_help()
        return ExitStatus.OK

    def _already_in(self) -> ExitStatus:
        self.say("amq: error: already in the shell")
        return ExitStatus.USAGE

    def _shell_commands_help(self) -> None:
        lines = ["", "Shell commands:"]
        for name, command in self.shell_commands.commands.items():
            if not command.hidden:
                lines.append(f"  {name:<15}{command.get_short_help_str(60)}")
        lines.append("  Ctrl+C cancels the running command, Ctrl+R searches the history, "
                     "Ctrl+D leaves.")
        self.out("\n".join(lines))

    # --- subscriptions ------------------------------------------------------------------

    def subscribe(self, source: Source) -> Subscription:
        sub = self.subscriptions.start(self.env.broker_url(), source)
        self.say(f"subscription {sub.id}: messages of '{sub.queue}' will show above the "
                 "prompt (unsubscribe to stop)")
        return sub

    def list_subscriptions(self) -> None:
        subs = self.subscriptions.active()
        if not subs:
            self.say("no subscriptions")
            return
        rows = [f"{s.id}\t{s.queue}\t{s.source.exchange or ''}\t{s.received}" for s in subs]
        self.out("\n".join(["id\tqueue\texchange\treceived", *rows]))

    def unsubscribe(self, target: str | None) -> None:
        found = self.subscriptions.active() if target is None else \
            self.subscriptions.find(target)
        if not found:
            raise errors.UsageError(f"no subscription {target!r} (see `subscriptions`)")
        self.subscriptions.stop(found)
        for sub in found:
            self.say(f"subscription {sub.id} ({sub.source.name}) stopped")

    def _show(self, sub: Subscription, delivery: Delivery) -> None:
        self.terminal.write(render_delivery(delivery, sub.received, self.terminal.is_terminal))

    def _note(self, text: str) -> None:
        self.terminal.write(text + "\n")

    # --- output -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.env.say(text)

    def out(self, text: str) -> None:
        os.write(self.env.stdout_fd, (text + "\n").encode())

    def report(self, err: errors.AmqError) -> None:
        self.say(f"amq: error: {err}" + (f" ({err.hint})" if err.hint else ""))

    def toolbar(self) -> str:
        count = len(self.subscriptions.active())
        subs = f" · {count} subscription{'s' if count != 1 else ''}" if count else ""
        return f" {self.display}{subs} · help · Ctrl+D leaves"


HELP_WORDS = ("-h", "--help")
MASKED = ":****@"  # a URL's password as the history keeps it


def command_line_of(env: Environment) -> CommandLine:
    """The command line the shell runs its lines with (``cli.run`` sets it)."""
    if env.command_line is None:
        raise ValueError("no command line in this Environment: the shell starts from cli.run, "
                         "or set Environment.command_line (amqcli.cli.COMMAND_LINE)")
    return env.command_line


def command_line_help(line: CommandLine) -> str:
    """``amq --help`` as the shell has it: without the commands that do not apply inside."""
    from ..cli.typer_shim import group
    tree = group(line.tree())
    for name in NOT_IN_THE_SHELL:
        tree.commands.pop(name, None)
    ctx = tree.make_context("amq", [], resilient_parsing=True)
    return str(tree.get_help(ctx))


def unknown_command(tree: Command, words: list[str], global_options: set[str]) -> str | None:
    """What is wrong when the line's command (or subcommand) does not exist, else None
    (click then parses the line: its errors are for everything else)."""
    i = 0
    while i < len(words) and words[i].partition("=")[0] in global_options:
        i += 1 if "=" in words[i] else 2
    command: Any = tree
    path: list[str] = []
    for word in words[i:]:
        commands = getattr(command, "commands", None)
        if commands is None or word.startswith("-"):
            return None
        if word not in commands:
            return _no_such(path, word, commands)
        command = commands[word]
        path.append(word)
    return None


def _no_such(path: list[str], word: str, commands: dict[str, Any]) -> str:
    import difflib
    visible = [name for name, command in commands.items() if not command.hidden]
    if path:
        return f"no such command '{' '.join([*path, word])}' ({path[-1]}: " \
               f"{', '.join(visible)})"
    close = difflib.get_close_matches(word, visible, n=1)
    guess = f"did you mean '{close[0]}'? " if close else ""
    return f"no such command '{word}' ({guess}`help` lists the commands)"


def render_delivery(delivery: Delivery, number: int, terminal: bool) -> str:
    """A message as ``amq receive`` shows it: pretty on a terminal, else its body."""
    if not terminal:
        from ..formats import OutputFormat, encode_batch
        data = b"".join(encode_batch([delivery], OutputFormat.RAW))
        return data.decode("utf-8", "replace")
    from rich.console import Console

    from ..render import MessagePrinter
    console = Console(file=io.StringIO(), force_terminal=True, highlight=False,
                      soft_wrap=True)
    with console.capture() as captured:
        MessagePrinter(console).print(delivery, number)
    return captured.get()


# --- the loops --------------------------------------------------------------------------

def prompt_session(session: Session, input: Input | None = None,
                   output: Output | None = None) -> PromptSession[str]:
    """A prompt-toolkit ``PromptSession`` on the session (a real terminal by default)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory

    from .completer import CommandCompleter
    completer = CommandCompleter(session.tree, session.catalog)
    return PromptSession(
        "amq> ", completer=completer, key_bindings=_tab_binding(completer),
        complete_while_typing=True, complete_in_thread=True, history=_history(session),
        auto_suggest=AutoSuggestFromHistory(), bottom_toolbar=session.toolbar,
        input=input, output=output)


def _tab_binding(completer: Completer) -> KeyBindings:
    """Tab that completes at once, even while the as-you-type completion is still running
    (prompt-toolkit then drops a Tab's own request: a fast typist's Tab would be lost).
    The completer is quick (names come from a catalog refreshed in the background)."""
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.filters import has_completions
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("tab", filter=~has_completions)
    def _complete(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        found = list(completer.get_completions(buffer.document,
                                               CompleteEvent(completion_requested=True)))
        if len(found) == 1:
            buffer.apply_completion(found[0])
        elif found:
            buffer.start_completion(insert_common_part=True)
    return bindings


def _history(session: Session) -> History:
    history, problem = open_history(history_path())
    if problem is not None:
        session.say(f"amq: warning: history not kept: {problem}")
    return history


def interactive(session: Session, prompt: PromptSession[str]) -> None:
    """Read and run lines until Ctrl+D or ``exit``."""
    while not session.leaving:
        try:
            with session.terminal.prompting():
                line = prompt.prompt()
        except KeyboardInterrupt:
            continue  # Ctrl+C at the prompt: a fresh line
        except EOFError:
            break
        try:
            session.run_line(line)
        except KeyboardInterrupt:
            pass


def scripted(session: Session, lines: Iterable[str], keep_going: bool = False) -> ExitStatus:
    """Run lines from a pipe or file, one command each, without a prompt. Like ``sh -e``,
    the first line that fails ends the run with its exit status; with ``keep_going`` every
    line runs and the status is the last failure's. Ctrl+C (or SIGTERM) always ends it."""
    failed = ExitStatus.OK
    for line in lines:
        if session.leaving:
            break
        status = session.run_line(line)
        if status is ExitStatus.OK:
            continue
        failed = status
        if not keep_going or status is ExitStatus.INTERRUPTED:
            break
    return failed


def _leave_prompt() -> bool:
    """Ask a running prompt to end with ``Terminated``; whether one was running. Raising
    from the signal handler inside prompt-toolkit's event loop would land in its own
    exception handler ("Press ENTER to continue...") instead."""
    from prompt_toolkit.application import get_app_or_none
    app = get_app_or_none()
    loop = getattr(app, "loop", None)
    if app is None or not app.is_running or loop is None:
        return False

    def leave() -> None:
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=Terminated())
    loop.call_soon_threadsafe(leave)
    return True


@contextmanager
def _sigterm_leaves() -> Iterator[None]:
    def terminate(_signo: int, _frame: FrameType | None) -> None:
        if "prompt_toolkit" in sys.modules and _leave_prompt():
            return
        raise Terminated
    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_shell(env: Environment, keep_going: bool = False) -> ExitStatus:
    """``amq shell``: the interactive loop on a terminal, else commands read from stdin
    (stopping at the first failure unless ``keep_going``)."""
    if env.stdin_isatty and env.stdout_isatty:
        session = Session(env)
        return _run(session, lambda: _prompt_loop(session), connect=True)
    # The lines come from stdin: the commands get an empty stdin (`send q` sends an empty
    # body), as the commands of a shell script would if the shell kept reading it.
    lines = io.TextIOWrapper(os.fdopen(env.stdin_fd, "rb", closefd=False),
                             encoding="utf-8", errors="surrogateescape")
    with open(os.devnull, "rb") as nothing:
        scripted_env = environment_like(env, env.url, stdin_fd=nothing.fileno())
        scripted_env.broker = env.broker
        session = Session(scripted_env)
        # no connection up front: the first line that needs the broker opens it (and fails
        # with its own status if it cannot); no names to list for completion either
        return _run(session, lambda: scripted(session, lines, keep_going), connect=False)


def _prompt_loop(session: Session) -> ExitStatus:
    session.say(f"amq shell on {session.display}: Tab completes, `help` lists the commands, "
                "Ctrl+D leaves.")
    interactive(session, prompt_session(session))
    return ExitStatus.OK


def _run(session: Session, loop: Callable[[], ExitStatus], connect: bool) -> ExitStatus:
    """Open the session, run the loop, and always close (SIGTERM included)."""
    with _sigterm_leaves():
        try:
            if connect:
                session.open()
            else:
                session.name_broker()
            return loop()
        except Terminated:
            return ExitStatus.INTERRUPTED
        finally:
            session.close()
