"""The shell's session without a terminal: command lines dispatched on one kept-open
connection, the shell's own commands, background subscriptions, and a real prompt-toolkit
``PromptSession`` driven through ``create_pipe_input()`` and ``DummyOutput()``.

Each test runs against both brokers (the ``amq`` fixture); output is read with ``capfd``.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_until
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from amqcli.cli import COMMAND_LINE
from amqcli.cli.env import Environment
from amqcli.cli.names import Kind
from amqcli.errors import ExitStatus
from amqcli.repl.completer import completions
from amqcli.repl.session import Session, history_path, interactive, prompt_session
from amqcli.repl.subscriptions import Source
from amqcli.repl.terminal import Terminal


def make_session(url: str, terminal: Terminal | None = None) -> Session:
    # stderr on fd 2 itself: pytest swaps sys.stderr between a fixture's setup and the test
    stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    env = Environment(stderr=stderr, url=url, stdin_isatty=False, stdout_isatty=False,
                      stderr_isatty=False)
    env.command_line = COMMAND_LINE
    session = Session(env, terminal or Terminal(io.StringIO(), is_terminal=False))
    session.open()
    return session


@pytest.fixture
def data_home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The user's data directory (history) inside the test's folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def session(amq: Any, data_home: Any) -> Iterator[Session]:
    s = make_session(amq.url)
    yield s
    s.close()


def test_lines_run_like_the_command_line(session: Session, name: Any, capfd: Any) -> None:
    q = name("q")
    session.run_line(f"declare queue {q}")
    session.run_line(f"send {q} 'hello shell'")
    session.run_line(f"receive {q} --count 1")
    out, err = capfd.readouterr()
    assert "hello shell" in out
    assert "Traceback" not in err


def test_completion_offers_the_brokers_names(session: Session, name: Any) -> None:
    q, x = name("q"), name("x")
    session.run_line(f"declare queue {q}")
    session.run_line(f"declare exchange {x} --type topic")
    # listed in the background after each command
    wait_until(lambda: q in session.catalog.names(Kind.QUEUE), "the queue's name")
    wait_until(lambda: x in session.catalog.names(Kind.EXCHANGE), "the exchange's name")
    assert [c.text for c in completions(session.tree, session.catalog, f"receive {q[:-3]}")] \
        == [q]
    assert [c.text for c in completions(session.tree, session.catalog, f"bind {x[:-3]}")] \
        == [x]


@pytest.mark.rabbitmq_only
def test_names_seen_when_the_broker_cannot_list(amq: Any, name: Any, data_home: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQ_MANAGEMENT_URL", "http://127.0.0.1:1/")
    session = make_session(amq.url)
    try:
        q = name("seen")
        session.run_line(f"declare queue {q}")
        session.run_line(f"send {q} x")
        time.sleep(1)  # a listing was tried meanwhile, and failed
        assert session.catalog.names(Kind.QUEUE) == [q]
        assert [c.text for c in completions(session.tree, session.catalog, "purge ")] == [q]
    finally:
        session.close()


def test_errors_are_one_line_and_the_session_carries_on(session: Session, name: Any,
                                                        capfd: Any) -> None:
    q = name("q")
    assert session.run_line("bogus") == ExitStatus.USAGE
    session.run_line(f"receive {q} --count notanumber")
    session.run_line("send 'unclosed")
    session.run_line("declare queue amq.reserved")
    session.run_line(f"send {q} still-alive")
    session.run_line(f"receive {q} --count 1")
    out, err = capfd.readouterr()
    # the unknown command: one line, then the next line's error
    assert err.startswith("amq: error: no such command 'bogus' (`help` lists the commands)\n"
                          "Usage: amq receive"), err
    assert "notanumber" in err
    assert "No closing quotation" in err
    assert "403 ACCESS_REFUSED" in err
    assert "still-alive" in out
    assert "Traceback" not in err


def test_one_connection_for_the_session(session: Session, amq: Any, name: Any,
                                        capfd: Any) -> None:
    # An exclusive queue belongs to the connection that declared it: the next lines can
    # use it only if they run on that same connection.
    q = name("excl")
    session.run_line(f"declare queue {q} --exclusive")
    session.run_line(f"send {q} mine")
    session.run_line(f"receive {q} --count 1")
    out, err = capfd.readouterr()
    assert "mine" in out, err
    # another process may not consume from it: it is the session's
    amq("receive", q, "--count", "1", "--timeout", "1", "--no-declare", expect=6)


def test_a_line_with_url_runs_on_that_broker_only(session: Session, tmp_path: Any,
                                                  name: Any, amq: Any) -> None:
    q = name("q")
    elsewhere = f"local:{tmp_path}/elsewhere.db"
    session.run_line(f"--url {elsewhere} declare queue {q}")
    assert q in amq("--url", elsewhere, "list", "queues").out
    assert amq.queue(q) is None  # the session's broker was not touched


def test_connect_switches_broker_and_closes_the_old_connection(
        session: Session, amq: Any, name: Any, tmp_path: Any, capfd: Any) -> None:
    q = name("excl")
    session.run_line(f"declare queue {q} --exclusive")
    sub = name("sub")
    session.subscribe(Source(sub))
    other = f"local:{tmp_path}/other.db"
    session.run_line(f"connect {other}")
    assert session.display == other
    assert session.subscriptions.active() == []
    _, err = capfd.readouterr()
    assert f"subscription 1 ({sub}) stopped\nconnected to {other}\n" in err
    assert amq.wait_for(lambda: amq.queue(q) is None, what="the old connection to close")
    session.run_line("declare queue on-other")
    assert "on-other" in amq("--url", other, "list", "queues").out
    assert wait_until(lambda: session.catalog.names(Kind.QUEUE) == ["on-other"],
                      "the new broker's names for completion")


def test_connect_to_a_bad_url_keeps_the_session(session: Session, name: Any,
                                                capfd: Any) -> None:
    before = session.display
    session.run_line("connect nosuch://x")
    session.run_line("connect amqp://guest:secret@127.0.0.1:1/")
    assert session.display == before
    q = name("q")
    session.run_line(f"send {q} kept")
    session.run_line(f"receive {q} --count 1")
    out, err = capfd.readouterr()
    assert "unsupported broker URL" in err
    assert "cannot reach RabbitMQ" in err
    assert "secret" not in err
    assert "kept" in out


def test_help(session: Session, capfd: Any) -> None:
    session.run_line("help")
    out, _ = capfd.readouterr()
    assert "Usage: amq [OPTIONS] COMMAND" in out
    assert "Shell commands:" in out
    assert "subscribe" in out and "unsubscribe" in out
    commands = [line.split()[0] for line in out.splitlines() if line.startswith("  ")
                and not line.startswith("   ")]
    assert "send" in commands and "connect" in commands
    assert "shell" not in commands and "repl" not in commands  # nothing the shell refuses
    session.run_line("--help")
    assert capfd.readouterr()[0] == out
    assert session.run_line("help bogus") == ExitStatus.USAGE
    assert capfd.readouterr()[1] == \
        "amq: error: no such command 'bogus' (`help` lists the commands)\n"
    session.run_line("help send")
    assert "Usage: amq send" in capfd.readouterr()[0]
    session.run_line("help declare queue")
    assert "--durable" in capfd.readouterr()[0]
    session.run_line("help subscribe")
    assert "Usage: subscribe" in capfd.readouterr()[0]
    session.run_line("subscribe --help")
    assert "--exchange" in capfd.readouterr()[0]


def test_exit_leaves(session: Session) -> None:
    session.run_line("exit")
    assert session.leaving


def test_toolbar_masks_the_password(data_home: Any, capfd: Any) -> None:
    session = make_session("amqp://guest:secret@127.0.0.1:1/")
    try:
        assert "guest:****@127.0.0.1:1" in session.toolbar()
        assert "secret" not in session.toolbar()
    finally:
        session.close()
    _, err = capfd.readouterr()
    assert "cannot reach RabbitMQ" in err and "secret" not in err


def test_subscription_prints_in_the_background_and_acks(session: Session, amq: Any,
                                                        name: Any) -> None:
    q = name("q")
    terminal = session.terminal
    assert isinstance(terminal.stdout, io.StringIO)
    session.run_line(f"subscribe {q}")
    [sub] = session.subscriptions.active()
    amq("send", q, "from another process")
    wait_until(lambda: "from another process" in terminal.stdout.getvalue(), "the message")
    # the session's own connection stays usable meanwhile
    session.run_line("list queues")
    assert amq.wait_for(lambda: (found := amq.queue(q)) and found["messages"] == 0
                        and found["unacked"] == 0, what="the message to be acked")
    session.run_line(f"unsubscribe {q}")
    assert session.subscriptions.active() == []
    assert sub.received == 1
    assert amq.wait_for(lambda: amq.queue(q)["consumers"] == 0, what="the consumer to go")


def test_subscription_to_an_exchange(session: Session, amq: Any, name: Any) -> None:
    x = name("x")
    amq("declare", "exchange", x, "--type", "fanout")
    session.run_line(f"subscribe -e {x}")
    amq("send", "-e", x, "", "fanned out")
    wait_until(lambda: "fanned out" in session.terminal.stdout.getvalue(), "the message")
    session.run_line("unsubscribe --all")
    assert session.subscriptions.active() == []


def test_subscribe_errors_are_reported(session: Session, name: Any, capfd: Any) -> None:
    session.run_line(f"subscribe {name('missing')} --no-declare")
    session.run_line(f"subscribe -e {name('nox')}")
    session.run_line("subscribe")
    session.run_line("unsubscribe 42")
    _, err = capfd.readouterr()
    assert err.count("404 NOT_FOUND") == 2
    assert "give a QUEUE" in err
    assert "no subscription '42'" in err
    assert session.subscriptions.active() == []


class HeldTerminal(Terminal):
    """Holds the first message's printing until released."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), is_terminal=False)
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> None:
        self.entered.set()
        self.release.wait(30)
        super().write(text)


def test_leaving_puts_unacked_messages_back(amq: Any, name: Any, data_home: Any) -> None:
    q = name("q")
    terminal = HeldTerminal()
    session = make_session(amq.url, terminal)
    session.run_line(f"subscribe {q}")
    amq("send", q, "--lines", input="1\n2\n3\n")
    assert terminal.entered.wait(15)
    time.sleep(0.3)  # let the broker hand the consumer all three
    leaving = threading.Thread(target=session.close)
    leaving.start()
    time.sleep(0.3)
    terminal.release.set()  # message 1 is printed, then acked; 2 and 3 were not printed
    leaving.join(15)
    assert not leaving.is_alive()
    assert terminal.stdout.getvalue() == "1\n"
    assert amq.wait_for(lambda: (found := amq.queue(q)) and found["messages"] == 2,
                        what="two messages back in the queue")
    back = amq("receive", q, "--count", "2", "--format", "json").json_lines()
    assert [m["body"] for m in back] == ["2", "3"]
    assert all(m["redelivered"] for m in back)


def test_prompt_session_with_pipe_input(session: Session, name: Any, capfd: Any,
                                        data_home: Any) -> None:
    q = name("q")
    keys = ["dec", "\t", f" queue {q}\r", f"send {q} typed-in\r", f"receive {q} --count 1\r",
            "bogus\r", "\x04"]
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        def type_keys() -> None:
            for chunk in keys:
                time.sleep(0.3)  # a person's pace: completion runs while typing
                pipe.send_text(chunk)
        typist = threading.Thread(target=type_keys)
        typist.start()
        interactive(session, prompt_session(session))
        typist.join()
    out, err = capfd.readouterr()
    assert "typed-in" in out
    assert "no such command 'bogus'" in err
    assert "no such command 'dec'" not in err  # Tab completed it to declare
    with open(history_path(), encoding="utf-8") as f:
        history = f.read()
    assert f"+declare queue {q}" in history
    assert history_path().startswith(str(data_home))


def test_script_mode_reads_lines_from_stdin(amq: Any, name: Any, data_home: Any) -> None:
    q = name("q")
    result = amq("shell", input=f"declare queue {q}\nsend {q} scripted\n# a comment\n\n"
                                f"receive {q} --count 1\n"
                                f"send {q}\n"  # no body: an empty one, not the next lines
                                f"list queues\nexit\nsend {q} never\n")
    assert "scripted" in result.out
    assert result.stderr == ""
    assert any(line.startswith(f"{q}\t1\t") for line in result.lines), result.out
    assert amq.queue(q)["messages"] == 1  # `exit` stopped before the last line


def test_unknown_commands_are_one_line(session: Session, capfd: Any) -> None:
    assert session.run_line("delcare queue x") == ExitStatus.USAGE
    assert session.run_line("declare bogus x") == ExitStatus.USAGE
    assert session.run_line("--url local:/nowhere.db bogus") == ExitStatus.USAGE
    assert session.run_line("shell") == ExitStatus.USAGE
    assert session.run_line("help repl") == ExitStatus.USAGE
    assert capfd.readouterr()[1].splitlines() == [
        ("amq: error: no such command 'delcare' (did you mean 'declare'? `help` lists the "
         "commands)"),
        "amq: error: no such command 'declare bogus' (declare: queue, exchange)",
        "amq: error: no such command 'bogus' (`help` lists the commands)",
        "amq: error: already in the shell",
        "amq: error: already in the shell",
    ]


@pytest.mark.local_only
def test_the_default_store_is_named_with_its_path(amq: Any, data_home: Any) -> None:
    session = make_session("local")
    try:
        assert session.display == f"local:{data_home}/amq/local.db"
        assert session.toolbar().startswith(f" local:{data_home}/amq/local.db ·")
    finally:
        session.close()


def test_a_script_stops_at_the_first_failing_line(amq: Any, name: Any, data_home: Any) -> None:
    q = name("q")
    result = amq("shell", input="bogus\npurge nosuch\n", expect=2)
    assert result.stderr == "amq: error: no such command 'bogus' (`help` lists the commands)\n"
    result = amq("shell", input=f"declare queue {q}\nsend {q} one\npurge {name('nosuch')}\n"
                                f"send {q} never\n", expect=3)
    assert "404 NOT_FOUND" in result.stderr
    assert amq.queue(q)["messages"] == 1  # the line after the failure did not run
    amq("shell", input=f"send {q} 'unclosed\nsend {q} never\n", expect=2)
    amq("shell", input=f"declare queue {q} --durable\nsend {q} never\n", expect=4)
    assert amq.queue(q)["messages"] == 1


def test_a_script_keeps_going_when_asked(amq: Any, name: Any, data_home: Any) -> None:
    q = name("q")
    result = amq("shell", "--keep-going", expect=2,
                 input=f"purge {name('nosuch')}\ndeclare queue {q}\nbogus\nsend {q} ran\n")
    assert "404 NOT_FOUND" in result.stderr and "no such command 'bogus'" in result.stderr
    assert amq.queue(q)["messages"] == 1  # every line ran
    result = amq("shell", "--keep-going", expect=3,
                 input=f"bogus\npurge {name('nosuch')}\nsend {q} ran\nexit\nsend {q} not\n")
    assert amq.queue(q)["messages"] == 2  # up to `exit`
    amq("shell", "--keep-going", input=f"send {q} fine\n")  # no failure: 0
    shown = amq("shell", input="connect\n").stderr
    assert shown.startswith("connected to amqp://guest:****@" if amq.broker == "rabbitmq"
                            else f"connected to {amq.url}\n"), shown
