"""Long-running commands survive a lost connection (issue 12): a receiver, a ``--exec``
worker, ``rpc serve``, ``rpc call`` and a shell subscription, each behind
``tests/faultproxy.py`` between amq and the machine's RabbitMQ, survive a cut and a stall
longer than the heartbeat (1 s here), and nothing is lost: every message sent arrives,
and a message seen twice was flagged redelivered. ``--no-reconnect`` exits as before
(8), closing amq's own connection by name (``rabbitmqctl close_connection``, never
anyone else's) is survived, and a first connection that fails still exits 8 at once.

The backoff between tries is made short through ``AMQ_RECONNECT_BACKOFF`` (internal).
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Amq, kill_and_reap, wait_until
from faultproxy import FaultProxy

HEARTBEAT = 1
BACKOFF = "0.2"
STALL_NOTICED = 30  # seconds: pika notices missed heartbeats within 2 x (heartbeat + 5)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", 5672) as p:
        yield p


def proxied(amq: Amq, proxy: FaultProxy, **extra: str) -> dict[str, str]:
    """amq's environment through the proxy, heartbeats of 1 s and a short backoff."""
    url = proxy.url(amq.url) + f"?heartbeat={HEARTBEAT}"
    return amq.env(AMQ_URL=url, AMQ_RECONNECT_BACKOFF=BACKOFF, **extra)


def text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_text(path: Path, needle: str, count: int = 1, timeout: float = 30,
                  proc: subprocess.Popen | None = None) -> None:
    """Wait until ``needle`` appears ``count`` times in the file (a process's stderr)."""
    def seen() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {text(path)}")
        return text(path).count(needle) >= count
    try:
        wait_until(seen, f"{needle!r} x{count}", timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}; stderr so far:\n{text(path)}") from None


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text(path).splitlines() if line.strip()]


def check_at_least_once(copies: list[tuple[str, bool]], sent: list[str]) -> None:
    """Every message sent was seen; a body seen again came flagged redelivered."""
    seen: set[str] = set()
    for body, redelivered in copies:
        assert body not in seen or redelivered, f"{body} seen twice, not flagged redelivered"
        seen.add(body)
    assert seen == set(sent), sorted(set(sent) - seen)


def send(amq: Amq, queue: str, bodies: list[str]) -> None:
    amq("send", queue, "--lines", input="".join(f"{b}\n" for b in bodies))


def interrupt(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    finally:
        kill_and_reap(proc)


def amq_connections(pid: int) -> list[dict[str, str]]:
    """The machine's RabbitMQ connections that amq process ``pid`` opened (amq names
    them ``amq[PID]``), from ``rabbitmqctl`` (the management API lags by seconds): each
    with its Erlang ``pid`` and heartbeat ``timeout``."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.skip("rabbitmqctl is not installed")
    listed = subprocess.run([ctl, "-q", "list_connections", "--no-table-headers", "pid",
                             "timeout", "client_properties"],
                            capture_output=True, text=True, timeout=60, check=True)
    ours = []
    for line in listed.stdout.splitlines():
        if f'{{"connection_name","amq[{pid}]"}}' in line:
            erlang_pid, timeout, _ = line.split("\t", 2)
            ours.append({"pid": erlang_pid, "timeout": timeout})
    return ours


def close_amq_connection(pid: int) -> None:
    """``rabbitmqctl close_connection`` on amq process ``pid``'s connection, only."""
    [conn] = wait_until(lambda: amq_connections(pid), f"amq[{pid}]'s connection")
    subprocess.run(["rabbitmqctl", "-q", "close_connection", conn["pid"],
                    "closed by the test"],
                   capture_output=True, timeout=60, check=True)


# --- receive ----------------------------------------------------------------------------

@pytest.mark.slow  # a stall is noticed by missed heartbeats: 6 to 12 s
@pytest.mark.rabbitmq_only
def test_a_receiver_survives_a_cut_and_a_stall(amq, name, proxy, tmp_path):
    q = name()
    amq("declare", "queue", q)
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        receiver = amq.popen("receive", q, "--format", "json", "--prefetch", "5",
                             stdout=stdout, stderr=stderr, env=proxied(amq, proxy))
    try:
        amq.wait_for_consumers(q, 1, receiver)
        sent = [f"m{i}" for i in range(150)]
        send(amq, q, sent[:50])
        wait_until(lambda: len(json_lines(out)) >= 20, "the first messages")
        proxy.cut()
        wait_for_text(err, "reconnecting to", proc=receiver)
        send(amq, q, sent[50:100])  # while disconnected, or just back
        wait_for_text(err, "reconnected", proc=receiver)
        proxy.stall()
        wait_for_text(err, "reconnecting to", 2, STALL_NOTICED, receiver)
        send(amq, q, sent[100:])
        proxy.resume()
        wait_for_text(err, "reconnected", 2, proc=receiver)
        wait_until(lambda: {m["body"] for m in json_lines(out)} >= set(sent), "every message")
        assert interrupt(receiver) == 130
    finally:
        kill_and_reap(receiver)
    check_at_least_once([(m["body"], m["redelivered"]) for m in json_lines(out)], sent)
    assert amq.settled_queue(q)["messages"] == 0
    assert "Traceback" not in text(err)


@pytest.mark.rabbitmq_only
def test_a_receiver_to_an_exchange_subscribes_again_and_says_what_it_missed(
        amq, name, proxy, tmp_path):
    x = name("x")
    amq("declare", "exchange", x, "--type", "fanout")
    err = tmp_path / "err.txt"
    with open(err, "wb") as stderr:
        receiver, first = amq.subscribe(x, "--format", "json", stderr=stderr,
                                        env=proxied(amq, proxy))
    try:
        amq("send", "-e", x, "", "before")
        assert json.loads(receiver.stdout.readline())["body"] == "before"
        proxy.cut()
        wait_for_text(err, "reconnected", proc=receiver)
        assert "messages published while disconnected were not seen" in text(err)
        amq("send", "-e", x, "", "after")
        assert json.loads(receiver.stdout.readline())["body"] == "after"
        amq.wait_for(lambda: first not in amq.queue_names(),  # exclusive: gone with the
                     what="the old queue to go")                 # old connection
        assert interrupt(receiver) == 130
    finally:
        kill_and_reap(receiver)


@pytest.mark.rabbitmq_only
def test_an_idle_timeout_counts_the_time_spent_disconnected(amq, name, proxy, tmp_path):
    q = name()
    err = tmp_path / "err.txt"
    with open(err, "wb") as stderr:
        receiver = amq.popen("receive", q, "--timeout", "3", stderr=stderr,
                             env=proxied(amq, proxy))
    try:
        amq.wait_for_consumers(q, 1, receiver)
        started = time.monotonic()
        proxy.stop()  # cut, and nothing listens there any more: every retry fails
        assert receiver.wait(timeout=30) == 9
        assert time.monotonic() - started < 6
    finally:
        kill_and_reap(receiver)
    assert "reconnecting to" in text(err) and "no message arrived" in text(err)


@pytest.mark.rabbitmq_only
@pytest.mark.parametrize("command", [["receive"], ["receive", "--exec", "cat"],
                                     ["rpc", "serve", "--exec", "cat"]])
def test_no_reconnect_exits_8_as_before(amq, name, proxy, tmp_path, command):
    q = name()
    err = tmp_path / "err.txt"
    argv = [*command[:-2], q, *command[-2:]] if "--exec" in command else [*command, q]
    with open(err, "wb") as stderr:
        receiver = amq.popen(*argv, "--no-reconnect", stderr=stderr,
                             env=proxied(amq, proxy))
    try:
        amq.wait_for_consumers(q, 1, receiver)
        proxy.cut()
        assert receiver.wait(timeout=30) == 8
    finally:
        kill_and_reap(receiver)
    lines = text(err).strip().splitlines()
    assert len(lines) == 1 and "lost" in lines[0] and "reconnecting" not in lines[0], lines
    assert lines[0].startswith("amq: error: ")


def test_no_reconnect_is_accepted_on_both_brokers(amq, name):
    q = name()
    amq("send", q, "one")
    assert amq("receive", q, "--count", "1", "--no-reconnect").out == "one\n"
    amq("send", q, "two")
    assert amq("receive", q, "--count", "1", "--exec", "cat", "--no-reconnect").out == "two"


@pytest.mark.rabbitmq_only
def test_closing_amqs_connection_by_name_is_survived(amq, name, tmp_path):
    q = name()
    err = tmp_path / "err.txt"
    with open(err, "wb") as stderr:
        receiver = amq.popen("receive", q, stderr=stderr,
                             env=amq.env(AMQ_RECONNECT_BACKOFF=BACKOFF))
    try:
        amq.wait_for_consumers(q, 1, receiver)
        [conn] = amq_connections(receiver.pid)
        assert conn["timeout"] == "10"  # a long-running command asks for 10 s heartbeats
        close_amq_connection(receiver.pid)
        wait_for_text(err, "reconnected", proc=receiver)
        assert "320 CONNECTION_FORCED" in text(err)
        amq("send", q, "still here")
        assert receiver.stdout.readline() == b"still here\n"
        assert interrupt(receiver) == 130
    finally:
        kill_and_reap(receiver)


@pytest.mark.rabbitmq_only
@pytest.mark.parametrize("command", [["receive"], ["rpc", "serve", "--exec", "cat"]])
def test_the_first_connection_failing_still_exits_8_at_once(amq, name, proxy, command):
    url = proxy.url(amq.url)
    proxy.stop()  # nothing listens there now
    started = time.monotonic()
    r = amq(command[0], *command[1:2], name(), *command[2:], expect=8,
            env=amq.env(AMQ_URL=url))
    assert time.monotonic() - started < 10
    assert "cannot reach RabbitMQ" in r.stderr and "reconnect" not in r.stderr


# --- receive --exec and rpc ---------------------------------------------------------------

@pytest.mark.slow  # a stall is noticed by missed heartbeats: 6 to 12 s
@pytest.mark.rabbitmq_only
def test_an_exec_worker_survives_a_cut_and_a_stall(amq, name, proxy, tmp_path):
    q = name()
    amq("declare", "queue", q)
    done, err = tmp_path / "done.txt", tmp_path / "err.txt"
    started = tmp_path / "started.txt"
    job = (f'b=$(cat); echo "$b" >> {started}; sleep 0.5; '
           f'echo "$b $AMQ_REDELIVERED" >> {done}')
    with open(err, "wb") as stderr:
        worker = amq.popen("receive", q, "--exec", job, "--prefetch", "2",
                           stderr=stderr, env=proxied(amq, proxy))
    try:
        amq.wait_for_consumers(q, 1, worker)
        sent = [f"job{i}" for i in range(16)]
        send(amq, q, sent)
        # the first jobs done and the next two running (a cut between jobs finds none)
        wait_until(lambda: len(text(done).splitlines()) >= 2 and
                   len(text(started).splitlines()) >= len(text(done).splitlines()) + 2,
                   "the first jobs done and two more running")
        proxy.cut()  # two commands are running: left to finish, their results not acked
        wait_for_text(err, "reconnected", proc=worker)
        assert "left to finish" in text(err)
        wait_until(lambda: len(text(done).splitlines()) >= 8, "more jobs")
        proxy.stall()
        wait_for_text(err, "reconnecting to", 2, STALL_NOTICED, worker)
        proxy.resume()
        wait_for_text(err, "reconnected", 2, proc=worker)
        wait_until(lambda: {line.split()[0] for line in text(done).splitlines()}
                   >= set(sent), "every job", 60)
        assert interrupt(worker) == 130
    finally:
        kill_and_reap(worker)
    copies = [(b, flag == "true") for b, flag in (line.split() for line in
                                                  text(done).splitlines())]
    check_at_least_once(copies, sent)
    assert len(copies) > len(sent)  # the jobs cut off ran again, flagged redelivered
    assert "will be delivered again" in text(err)
    assert amq.settled_queue(q)["messages"] == 0


@pytest.mark.slow  # a stall is noticed by missed heartbeats: 6 to 12 s
@pytest.mark.rabbitmq_only
def test_rpc_serve_survives_a_cut_and_a_stall(amq, name, proxy, tmp_path):
    q = name()
    err = tmp_path / "err.txt"
    with open(err, "wb") as stderr:
        server = amq.popen("rpc", "serve", q, "--exec", "tr a-z A-Z", stderr=stderr,
                           env=proxied(amq, proxy))
    try:
        amq.wait_for_consumers(q, 1, server)
        assert amq("rpc", "call", q, "one", "--timeout", "20").out == "ONE\n"
        proxy.cut()
        wait_for_text(err, "reconnected", proc=server)
        assert amq("rpc", "call", q, "two", "--timeout", "20").out == "TWO\n"
        proxy.stall()
        wait_for_text(err, "reconnecting to", 2, STALL_NOTICED, server)
        call = amq.popen("rpc", "call", q, "three", "--timeout", "40")
        proxy.resume()
        wait_for_text(err, "reconnected", 2, proc=server)
        assert call.communicate(timeout=45)[0] == b"THREE\n" and call.returncode == 0
        assert interrupt(server) == 130
    finally:
        kill_and_reap(server)


@pytest.mark.rabbitmq_only
def test_rpc_call_sends_its_request_again_with_the_same_correlation_id(
        amq, name, proxy, tmp_path):
    q = name()
    amq("declare", "queue", q)
    err = tmp_path / "err.txt"
    with open(err, "wb") as stderr:
        call = amq.popen("rpc", "call", q, "ping", "--timeout", "40", "-p",
                         "correlation_id=abc-1", stderr=stderr, env=proxied(amq, proxy))
    try:
        amq.wait_for(lambda: amq.queue(q)["messages"] == 1, what="the request")
        proxy.cut()
        wait_for_text(err, "request sent again", proc=call)
        assert "correlation id abc-1" in text(err)
        requests = amq("receive", q, "--count", "2", "--format", "json").json_lines()
        assert [r["properties"]["correlation_id"] for r in requests] == ["abc-1"] * 2
        reply_to = requests[1]["properties"]["reply_to"]
        amq("send", reply_to, "pong", "-p", "correlation_id=abc-1", "--no-declare")
        assert call.communicate(timeout=30)[0] == b"pong\n" and call.returncode == 0
    finally:
        kill_and_reap(call)


# --- the shell ------------------------------------------------------------------------

@pytest.mark.slow  # a stall is noticed by missed heartbeats: 6 to 12 s
@pytest.mark.rabbitmq_only
def test_a_shell_subscription_survives_a_cut_and_a_stall(amq, name, proxy, tmp_path,
                                                         monkeypatch):
    from amqcli.cli import COMMAND_LINE
    from amqcli.cli.env import Environment
    from amqcli.repl.session import Session
    from amqcli.repl.terminal import Terminal

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("AMQ_RECONNECT_BACKOFF", BACKOFF)
    q = name()
    url = proxy.url(amq.url) + f"?heartbeat={HEARTBEAT}"
    stderr = io.StringIO()
    env = Environment(stderr=stderr, url=url, stdin_isatty=False, stdout_isatty=False,
                      stderr_isatty=False)
    env.command_line = COMMAND_LINE
    terminal = Terminal(io.StringIO(), is_terminal=False)
    session = Session(env, terminal)
    session.open()
    out = terminal.stdout
    assert isinstance(out, io.StringIO)

    def shown() -> str:
        return out.getvalue()

    def bodies() -> set[str]:
        # whole lines: a body like "d1" can also be part of the queue's name in a note
        return {line for line in shown().splitlines() if not line.startswith("subscription")}
    try:
        session.run_line(f"subscribe {q}")
        [sub] = session.subscriptions.active()
        send(amq, q, ["a1", "a2"])
        wait_until(lambda: "a2" in bodies(), "the first messages")
        proxy.cut()
        wait_until(lambda: shown().count("reconnected") >= 1, "a reconnect")
        send(amq, q, ["b1", "b2"])
        wait_until(lambda: "b2" in bodies(), "messages after the cut")
        proxy.stall()
        wait_until(lambda: shown().count("reconnecting to") >= 2, "the stall noticed",
                   STALL_NOTICED)
        send(amq, q, ["c1", "c2"])
        proxy.resume()
        wait_until(lambda: "c2" in bodies(), "messages after the stall")
        assert sub.running
        # the session's own connection was cut too: the next command opens it again
        assert session.run_line(f"send {q} d1") == 0
        assert "was lost: reconnecting" in stderr.getvalue()
        wait_until(lambda: "d1" in bodies(), "a message sent from the shell")
    finally:
        session.close()
    assert bodies() >= {"a1", "a2", "b1", "b2", "c1", "c2", "d1"}
    assert "subscription 1 (" in shown()  # the notes name the subscription
    assert amq.settled_queue(q)["messages"] == 0
