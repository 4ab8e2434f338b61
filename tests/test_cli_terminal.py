"""What a person sees on a terminal: coloured messages with their properties and headers,
tables for lists. Run in a real pseudo-terminal."""

import os
import pty
import re
import select
import subprocess

from conftest import AMQ_CMD, needs_management

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_in_pty(amq, *args, timeout=30, columns=250):
    """Run amq with stdout and stderr on a pseudo-terminal; (exit code, screen text)."""
    master, slave = pty.openpty()
    env = amq.env(TERM="xterm-256color", COLUMNS=str(columns))
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(AMQ_CMD + list(args), stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_messages_on_a_terminal_are_coloured_with_properties_and_headers(amq, name):
    q = name()
    amq("send", q, "Hello World!", "-H", "trace=abc", "-p", "content_type=text/plain",
        "-p", "correlation_id=42")
    code, screen = run_in_pty(amq, "receive", q, "--count", "1")
    assert code == 0, screen
    assert ANSI.search(screen), "no colour on a terminal"
    text = ANSI.sub("", screen)
    assert "Hello World!" in text and f"routing key {q}" in text
    assert "content_type=text/plain" in text and "correlation_id=42" in text
    assert '"trace": "abc"' in text


def test_binary_bodies_are_shown_safely_on_a_terminal(amq, name):
    q = name()
    amq("send", q, input=b"\x00\x01\x02\xff" * 4)
    code, screen = run_in_pty(amq, "receive", q, "--count", "1")
    assert code == 0
    assert "<binary> 00 01 02 ff" in ANSI.sub("", screen)


def test_lists_are_tables_on_a_terminal(amq, name):
    needs_management(amq.broker)  # `amq list` on RabbitMQ
    q = name()
    amq("declare", "queue", q)
    code, screen = run_in_pty(amq, "list", "queues")
    assert code == 0
    text = ANSI.sub("", screen)
    assert "messages" in text and "consumers" in text and q in text
    assert "│" in text or "┃" in text  # a drawn table, not tab-separated data


def test_a_send_on_a_terminal_says_what_it_did(amq, name):
    q = name()
    code, screen = run_in_pty(amq, "send", q, "x")
    assert code == 0
    assert f"sent 1 message to the default exchange with routing key '{q}'" in screen


def test_errors_on_a_terminal_are_one_line(amq, name):
    amq("list", "queues")  # the store exists: no "created a new store" note first
    code, screen = run_in_pty(amq, "declare", "queue", "amq.nope")
    assert code == 5
    assert len(screen.strip().splitlines()) == 1 and "reserved prefix" in screen
