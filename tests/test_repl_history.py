"""The shell's history keeps no passwords: lines are masked before they are stored (in
the file and in memory), the file is its owner's only, and an old file with passwords in
clear is rewritten masked when the shell starts.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from amqcli.cli import COMMAND_LINE
from amqcli.cli.env import Environment
from amqcli.errors import ExitStatus
from amqcli.repl.history import mask_line, open_history, secure_history_file
from amqcli.repl.session import Session, history_path, interactive, prompt_session
from amqcli.repl.terminal import Terminal


@pytest.mark.parametrize(("line", "stored"), [
    ("connect amqp://app:s3cret@rabbit:5672/%2F", "connect amqp://app:****@rabbit:5672/%2F"),
    ("--url amqps://app:s3cret@h/v?heartbeat=5 list queues",
     "--url amqps://app:****@h/v?heartbeat=5 list queues"),
    ("--url=amqp://app:s3cret@h/ purge q", "--url=amqp://app:****@h/ purge q"),
    ("-u amqp://app:s3cret@h/ purge q", "-u amqp://app:****@h/ purge q"),
    ("connect 'amqp://app:s3 cret@h/'", "connect 'amqp://app:****@h/'"),
    (r"connect amqp://app:s3\ cret@h/", "connect 'amqp://app:****@h/'"),
    ("connect amqp://app:s3'cret@h/", "connect amqp://app:****@h/"),  # an open quote
    ("connect amqp://app:s3@cret@h/", "connect amqp://app:****@h/"),
    ("# connect amqp://app:s3cret@h/", "# connect amqp://app:****@h/"),
    ("connect amqp://app:s3cret@[::1/", "connect <unparsable URL>"),
    ("connect amqp://guest@h/", "connect amqp://guest@h/"),
    ("send q 'two  spaces'", "send q 'two  spaces'"),
    ("connect local:/tmp/x.db", "connect local:/tmp/x.db"),
])
def test_lines_are_masked(line: str, stored: str) -> None:
    assert mask_line(line) == stored
    assert mask_line(stored) == stored


def test_the_file_is_created_for_its_owner_only(tmp_path: Any) -> None:
    path = str(tmp_path / "amq" / "history")
    old = os.umask(0o022)
    try:
        history, problem = open_history(path)
    finally:
        os.umask(old)
    assert problem is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    history.append_string("connect amqp://app:s3cret@h/")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert "+connect amqp://app:****@h/\n" in text and "s3cret" not in text
    assert list(history.load_history_strings()) == ["connect amqp://app:****@h/"]


def test_an_old_file_is_rewritten_masked(tmp_path: Any) -> None:
    path = tmp_path / "history"
    old = ("\n# 2026-11-30 10:00:00.000000\n+connect amqp://app:s3cret@h/\n"
           "\n# 2026-11-30 10:00:01.000000\n+send q 'caf\xe9'\n"
           "\n# 2026-11-30 10:00:02.000000\n+send q two\n+--url amqp://u:pw@h/ list queues\n")
    path.write_bytes(old.encode() + b"+send q \xff\n")  # not UTF-8: kept as it is
    os.chmod(path, 0o644)
    secure_history_file(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == old.replace("s3cret", "****").replace(":pw@", ":****@") \
        .encode() + b"+send q \xff\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history"]  # no temporary file left
    before = os.stat(path)
    os.chmod(path, 0o644)
    secure_history_file(str(path))  # nothing to mask: the same file, made private
    assert os.stat(path).st_ino == before.st_ino
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_history_that_cannot_be_written_is_kept_in_memory(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    history, problem = open_history(str(blocker / "history"))
    assert problem is not None and "cannot write" in problem
    history.append_string("connect amqp://app:s3cret@h/")
    assert list(history.get_strings()) == ["connect amqp://app:****@h/"]


def test_the_shell_stores_and_recalls_masked_lines(tmp_path: Any, monkeypatch: Any,
                                                    capfd: Any) -> None:
    """A real prompt: a connect line with a password (to a port where nothing listens),
    then Up recalls it, masked, and Enter runs the masked line."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    os.makedirs(tmp_path / "data" / "amq")
    with open(history_path(), "w", encoding="utf-8") as f:
        f.write("\n# 2026-11-30 10:00:00.000000\n+--url amqp://old:0ldpass@h/ list queues\n")
    stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    env = Environment(stderr=stderr, url=f"local:{tmp_path}/amq.db", stdin_isatty=False,
                      stdout_isatty=False, stderr_isatty=False)
    env.command_line = COMMAND_LINE
    session = Session(env, Terminal(open(os.devnull, "w"), is_terminal=False))  # noqa: SIM115
    session.open()
    keys = ["connect amqp://app:s3cret@127.0.0.1:1/\r", "\x1b[A", "\r", "\x04"]
    try:
        with create_pipe_input() as pipe, create_app_session(input=pipe,
                                                             output=DummyOutput()):
            def type_keys() -> None:
                for chunk in keys:
                    time.sleep(0.5)
                    pipe.send_text(chunk)
            typist = threading.Thread(target=type_keys)
            typist.start()
            interactive(session, prompt_session(session))
            typist.join()
    finally:
        session.close()
    _, err = capfd.readouterr()
    assert err.count("cannot reach RabbitMQ") == 2, err  # typed, then recalled
    assert "s3cret" not in err
    with open(history_path(), encoding="utf-8") as f:
        text = f.read()
    assert "s3cret" not in text and "0ldpass" not in text
    # the recalled line is the last one already: prompt-toolkit does not store it twice
    assert text.count("+connect amqp://app:****@127.0.0.1:1/\n") == 1
    assert "+--url amqp://old:****@h/ list queues\n" in text
    assert stat.S_IMODE(os.stat(history_path()).st_mode) == 0o600


@pytest.mark.rabbitmq_only
def test_a_recalled_masked_url_says_why_it_does_not_log_in(amq: Any, tmp_path: Any,
                                                          monkeypatch: Any, capfd: Any) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    env = Environment(stderr=stderr, url=amq.url, stdin_isatty=False, stdout_isatty=False,
                      stderr_isatty=False)
    env.command_line = COMMAND_LINE
    session = Session(env, Terminal(open(os.devnull, "w"), is_terminal=False))  # noqa: SIM115
    masked = mask_line(f"connect {amq.url}")
    assert ":****@" in masked
    try:
        assert session.run_line(masked) == ExitStatus.ACCESS_REFUSED
        assert session.run_line(f"--url {amq.url.replace(':guest@', ':****@')} "
                                "list exchanges") == ExitStatus.ACCESS_REFUSED
    finally:
        session.close()
    _, err = capfd.readouterr()
    assert err.count("403 ACCESS_REFUSED") == 2
    assert err.count("passwords are masked in the history") == 2
