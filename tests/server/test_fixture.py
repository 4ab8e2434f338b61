"""The pytest fixtures shipped with the package (``amq_broker``, ``amq_broker_session``):
used here as any project's suite would use them, through the ``pytest11`` entry point,
and run in a fresh pytest to check what each test gets and what loading them costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pika
import pika.exceptions
import pytest

from amqcli.server.fixture import InThread, Running


def test_a_test_gets_a_broker_that_pika_uses(amq_broker: Running):
    conn = pika.BlockingConnection(pika.URLParameters(amq_broker.url))
    try:
        ch = conn.channel()
        ch.queue_declare("fixture-q")
        ch.basic_publish("", "fixture-q", b"from the fixture")
        _method, _props, body = ch.basic_get("fixture-q", auto_ack=True)
        assert body == b"from the fixture"
    finally:
        conn.close()
    assert amq_broker.url == f"amqp://guest:guest@127.0.0.1:{amq_broker.port}/%2F"
    assert amq_broker.port > 0


def test_the_session_broker_is_a_broker_too(amq_broker_session: Running):
    conn = pika.BlockingConnection(pika.URLParameters(amq_broker_session.url))
    try:
        ch = conn.channel()
        ok = ch.queue_declare("", exclusive=True)
        assert ok.method.queue.startswith("amq.gen-")
    finally:
        conn.close()


def test_a_server_in_memory_with_vhosts_keeps_them_apart():
    with InThread(vhosts=("orders", "billing")) as running:
        conns = {v: pika.BlockingConnection(pika.URLParameters(running.url_of(v)))
                 for v in ("orders", "billing")}
        try:
            conns["orders"].channel().queue_declare("jobs")
            conns["orders"].channel().basic_publish("", "jobs", b"an order")
            ch = conns["billing"].channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                ch.queue_declare("jobs", passive=True)
            assert info.value.reply_text == "NOT_FOUND - no queue 'jobs' in vhost 'billing'"
            got = conns["orders"].channel().basic_get("jobs", auto_ack=True)[2]
            assert got == b"an order"
        finally:
            for conn in conns.values():
                conn.close()
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(pika.URLParameters(running.url_of("other")))


def test_stopping_closes_its_clients_with_320():
    server = InThread()
    running = server.start()
    conn = pika.BlockingConnection(pika.URLParameters(running.url))
    server.stop()
    with pytest.raises(pika.exceptions.ConnectionClosed) as info:
        for _ in range(100):
            conn.process_data_events(time_limit=0.1)
    assert info.value.reply_code == 320
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(running.url + "?connection_attempts=1"))


def test_the_entry_point_is_registered():
    points = importlib.metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "amq"] == ["amqcli.server.fixture"]


def test_loading_the_plugin_imports_nothing_of_the_server():
    code = ("import sys, amqcli.server.fixture\n"
            "print(sorted(m for m in sys.modules if m.startswith('amqcli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['amqcli', 'amqcli.server', 'amqcli.server.fixture']"


SUITE = """
import pika

def _queues(url, *names):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    found = []
    for name in names:
        try:
            ch.queue_declare(name, passive=True)
            found.append(name)
        except pika.exceptions.ChannelClosedByBroker:
            ch = conn.channel()
    conn.close()
    return found

def test_one(amq_broker, amq_broker_session):
    for url in (amq_broker.url, amq_broker_session.url):
        conn = pika.BlockingConnection(pika.URLParameters(url))
        conn.channel().queue_declare("left-by-one")
        conn.close()

def test_two(amq_broker, amq_broker_session):
    assert _queues(amq_broker.url, "left-by-one") == []
    assert _queues(amq_broker_session.url, "left-by-one") == ["left-by-one"]
"""


def test_in_another_suite_each_test_gets_a_fresh_broker_and_the_session_one(tmp_path: Path):
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "addopts=", str(tmp_path / "test_suite.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
