"""The RabbitMQ "Hello World" tutorial, across processes, in either order."""

import signal
import subprocess

from conftest import kill_and_reap


def test_receive_waits_then_gets_what_send_publishes(amq, name):
    q = name("hello")
    receiver = amq.popen("receive", q)
    try:
        amq.wait_for_consumers(q, process=receiver)
        amq("send", q, "Hello World!")
        assert receiver.stdout.readline() == b"Hello World!\n"
        amq("send", q, "second")
        assert receiver.stdout.readline() == b"second\n"
        receiver.send_signal(signal.SIGINT)
        assert receiver.wait(timeout=10) == 130
        assert "Traceback" not in receiver.stderr.read().decode()
    finally:
        kill_and_reap(receiver)
    assert amq.queue(q)["messages"] == 0


def test_send_first_then_receive(amq, name):
    q = name("hello")
    amq("send", q, "Hello World!")
    assert amq.queue(q)["messages"] == 1
    assert amq("receive", q, "--count", "1").stdout == b"Hello World!\n"
    assert amq.queue(q)["messages"] == 0


def test_sigterm_ends_a_receiver_and_requeues_nothing_lost(amq, name):
    q = name()
    receiver = amq.popen("receive", q)
    try:
        amq.wait_for_consumers(q, process=receiver)
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(timeout=10) == 130
    finally:
        kill_and_reap(receiver)
    assert amq.queue(q)["consumers"] == 0


def test_no_declare_send_to_missing_queue_is_reported_unroutable(amq, name):
    q = name()
    r = amq("send", q, "lost", "--no-declare", expect=7)
    assert "NO_ROUTE" in r.stderr and q in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert q not in amq.queue_names()


def test_no_declare_receive_from_missing_queue_is_not_found(amq, name):
    q = name()
    r = amq("receive", q, "--no-declare", "--count", "1", expect=3)
    assert "404" in r.stderr and "NOT_FOUND" in r.stderr


def test_send_declares_a_plain_queue_and_uses_an_existing_one_as_is(amq, name):
    q = name()
    amq("declare", "queue", q, "--durable", "--max-length", "5")
    amq("send", q, "x")  # must not fail on the durable/x-max-length queue
    info = amq.queue(q)
    assert info["durable"] is True and info["arguments"] == {"x-max-length": 5}
    assert info["messages"] == 1


def test_receive_prints_a_waiting_line_only_on_a_terminal(amq, name):
    q = name()
    amq("send", q, "x")
    r = amq("receive", q, "--count", "1")
    assert "Waiting" not in r.stderr


def test_quiet_pipeline_send_prints_nothing(amq, name):
    r = amq("send", name(), "x")
    assert r.stdout == b"" and r.stderr == ""


def test_receive_count_waits_for_later_messages(amq, name):
    q = name()
    receiver = amq.popen("receive", q, "--count", "2")
    try:
        amq.wait_for_consumers(q)
        amq("send", q, "one")
        amq("send", q, "two")
        out, _err = receiver.communicate(timeout=20)
        assert out == b"one\ntwo\n" and receiver.returncode == 0
    finally:
        kill_and_reap(receiver)


def test_help_lists_the_commands(amq):
    out = amq("--help").out
    for command in ("send", "receive", "declare", "bind", "unbind", "delete", "purge", "list"):
        assert command in out
    assert "Usage: amq send" in amq("send", "--help").out
    assert subprocess.run(["true"]).returncode == 0


def test_empty_routing_key_on_the_default_exchange_declares_nothing(amq):
    before = set(amq.queue_names())
    r = amq("send", "", "x", expect=7)
    assert "NO_ROUTE" in r.stderr
    assert set(amq.queue_names()) == before
    amq("receive", "", "--count", "1", expect=2)
