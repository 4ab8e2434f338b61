"""``amq shell`` end to end in a real pseudo-terminal (pexpect), on both brokers.

Checks go by what the commands print (plain lines), not by the prompt's drawing, which
is made of cursor movements. Keys are sent at a person's pace where completion matters:
prompt-toolkit completes while typing, in a thread.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import AMQ_CMD, Amq

pexpect = pytest.importorskip("pexpect")

PROMPT = "amq>"


class Shell:
    """A running ``amq shell`` in a pseudo-terminal."""

    def __init__(self, amq: Any, data_home: str) -> None:
        env = amq.env(XDG_DATA_HOME=data_home, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
        self.child = pexpect.spawn(AMQ_CMD[0], AMQ_CMD[1:] + ["shell"], env=env,
                                   dimensions=(40, 160), encoding="utf-8", timeout=20)
        self.screen = io.StringIO()  # everything the shell wrote
        self.child.logfile_read = self.screen
        self.child.expect(PROMPT)

    def run(self, line: str, *expected: str) -> None:
        """Type a line and Enter; wait for each expected text (a regex) in turn."""
        self.child.send(line)
        time.sleep(0.2)
        self.child.send("\r")
        for text in expected:
            self.child.expect(text)

    def menu_shows(self, typed: str, shown: str, timeout: float = 60) -> None:
        """Type ``typed`` until the as-you-type completion menu shows ``shown`` (queue and
        exchange names are listed in the background: how soon depends on the broker and
        on how much it holds, so the wait is on the screen, not on time)."""
        deadline = time.monotonic() + timeout
        while True:
            self.child.send(typed)
            try:
                self.child.expect(re.escape(shown), timeout=1)
                return
            except pexpect.TIMEOUT:
                if time.monotonic() > deadline:
                    raise
                self.child.send("\x15")  # Ctrl+U: clear the line; typing again asks again

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def shell(amq: Any, tmp_path: Any) -> Iterator[Shell]:
    sh = Shell(amq, str(tmp_path / "data"))
    yield sh
    sh.close()
    assert "Traceback" not in sh.screen.getvalue()


def test_a_session(shell: Shell, amq: Any, name: Any, tmp_path: Any) -> None:
    q = name("jobs")
    child = shell.child
    # Tab completes a command
    child.send("dec")
    time.sleep(0.5)
    child.send("\t")
    time.sleep(0.3)
    shell.run(f" queue {q}", re.escape(f"queue '{q}': 0 messages ready"))
    shell.run(f"send {q} hi", "sent 1 message")
    shell.run(f"receive {q} --count 1", r"\r\n  hi\r\n")
    # an error is one line and the shell carries on
    shell.run("bogus", re.escape("amq: error: no such command 'bogus' (`help` lists the "
                                 "commands)"))
    shell.run("declare queue amq.nope", "403 ACCESS_REFUSED")
    # Ctrl+C cancels a receive waiting forever; the connection stays usable
    shell.run(f"receive {q}", "Waiting for messages")
    time.sleep(0.5)
    child.sendintr()
    child.expect(PROMPT)
    shell.run(f"send {q} after-ctrl-c", "sent 1 message")
    shell.run(f"receive {q} --count 1", "after-ctrl-c")
    # a background subscription prints what another process sends
    shell.run(f"subscribe {q}", "subscription 1")
    child.expect(PROMPT)
    amq("send", q, "from-elsewhere")
    child.expect("from-elsewhere")
    shell.run("subscriptions", rf"1\t{re.escape(q)}\t\t1")
    shell.run(f"unsubscribe {q}", "subscription 1 .* stopped")
    child.expect(PROMPT)
    # Ctrl+D leaves with status 0
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (tmp_path / "data" / "amq" / "history").read_text()
    assert f"+send {q} hi" in history


def test_queue_names_complete_and_unacked_go_back(shell: Shell, amq: Any, name: Any) -> None:
    q = name("named")
    child = shell.child
    shell.run(f"declare queue {q}", "messages ready", PROMPT)
    # the names are refreshed after each command, in the background; once the menu offers
    # the queue, Tab takes it
    shell.menu_shows(f"purge {q[:-4]}", q)
    child.send("\t\r")
    child.expect(f"purged 0 messages from queue '{re.escape(q)}'")
    # a subscription still printing when the shell is killed: nothing is lost
    shell.run(f"subscribe {q}", "subscription 1")
    child.expect(PROMPT)
    child.kill(signal.SIGTERM)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    amq("send", q, "after-the-shell")
    assert amq.wait_for(lambda: (found := amq.queue(q)) and found["consumers"] == 0
                        and found["messages"] == 1, what="the subscription to be gone")


@pytest.mark.local_only
def test_history_is_kept_searched_and_suggested(amq: Any, name: Any, tmp_path: Any) -> None:
    q = name("hist")
    data_home = str(tmp_path / "data")
    first = Shell(amq, data_home)
    try:
        first.run(f"declare queue {q}", "messages ready", PROMPT)
        first.run(f"purge {q}", "purged 0 messages", PROMPT)
        first.child.sendeof()
        first.child.expect(pexpect.EOF)
    finally:
        first.close()
    second = Shell(amq, data_home)
    try:
        second.child.send("\x12")  # Ctrl+R: search the history of the first session
        time.sleep(0.3)
        second.child.send("decl")
        time.sleep(0.5)
        second.child.send("\r")  # take the line found
        time.sleep(0.3)
        second.run("", "messages ready", PROMPT)
        second.child.send("pu")  # suggested from history; Right arrow accepts it
        time.sleep(0.5)
        second.run("\x1b[C", f"purged 0 messages from queue '{re.escape(q)}'")
    finally:
        second.close()


@pytest.mark.rabbitmq_only
def test_welcome_names_the_broker_without_password(amq: Any, tmp_path: Any) -> None:
    sh = Shell(amq, str(tmp_path / "data"))
    try:
        text = sh.child.before
        assert "amq shell on amqp://guest:****@" in text
        assert "guest:guest" not in text
    finally:
        sh.close()


@pytest.mark.rabbitmq_only
def test_connect_with_a_password_keeps_it_out_of_the_history(amq: Any, tmp_path: Any) -> None:
    sh = Shell(amq, str(tmp_path / "data"))
    try:
        sh.run(f"connect {amq.url}", re.escape("connected to amqp://guest:****@"), PROMPT)
        sh.run(f"--url {amq.url} status", "product +RabbitMQ", PROMPT)
        sh.child.sendeof()
        sh.child.expect(pexpect.EOF)
    finally:
        sh.close()
    path = tmp_path / "data" / "amq" / "history"
    history = path.read_text()
    assert "+connect amqp://guest:****@127.0.0.1" in history
    assert "+--url amqp://guest:****@127.0.0.1" in history
    assert "guest:guest" not in history
    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.local_only
def test_the_banner_names_the_local_store(amq: Any, tmp_path: Any) -> None:
    data_home = tmp_path / "data"
    sh = Shell(Amq("local", "local"), str(data_home))  # the default store
    try:
        assert f"amq shell on local:{data_home}/amq/local.db: Tab completes" in sh.child.before
    finally:
        sh.close()


def test_not_a_terminal_is_no_problem(amq: Any, tmp_path: Any) -> None:
    """Without a terminal on stdin, `amq shell` runs the lines it reads (no prompt)."""
    result = amq("shell", input="list exchanges\n",
                 env=amq.env(XDG_DATA_HOME=str(tmp_path / "data")))
    assert "amq.topic" in result.out
    assert not os.path.exists(tmp_path / "data" / "amq" / "history")


def test_a_tab_typed_right_after_the_word_still_completes(shell: Shell, amq: Any,
                                                          name: Any) -> None:
    """A fast typist (or a paste): the Tab arrives while the as-you-type completion of the
    same keystrokes is still running, and must not be lost."""
    q = name("fast")
    child = shell.child
    # the Tab in the same write as the word: it arrives before the as-you-type completion
    # of "dec" has started (or while it runs)
    child.send(f"dec\t queue {q}\r")
    child.expect(re.escape(f"queue '{q}': 0 messages ready"))
    child.expect(PROMPT)
    # the Tab once that completion's menu is up: it takes the one completion
    shell.menu_shows("dec", "Declare a queue or an exchange")
    child.send(f"\t queue {q}\r")
    child.expect(re.escape(f"queue '{q}': 0 messages ready"))
    child.expect(PROMPT)
    # a second word, checked by what the completed line prints, whatever the broker holds
    # (`list queues` on a RabbitMQ with thousands of queues can take longer than a wait)
    child.send("help list q\t\r")
    child.expect(re.escape("Usage: amq list queues"))
