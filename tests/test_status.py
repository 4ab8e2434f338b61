"""``amq status``: which broker, and on RabbitMQ which host and node (through the
management API of the host reached), version and cluster name; on the local broker the
store file, its size and the processes using it."""

from __future__ import annotations

import json
import socket
import urllib.parse

import pytest
from conftest import Amq, kill_and_reap, needs_management

from amqcli.cli.status import text_lines


def test_status_json_names_the_broker(amq: Amq, name) -> None:
    needs_management(amq.broker)  # the test's assertions need the management API
    report = amq("status", "--format", "json").json_lines()[0]
    assert report["broker"] == amq.broker
    if amq.broker == "local":
        assert report["vhost"] == amq.vhost
        store = amq.url.split("?")[0][len("local:"):]  # another vhost: a file beside it
        assert report["store"] == store or report["store"].startswith(f"{store}.vhosts/")
        assert report["size"] > 0
    else:
        assert report["connected_to"] == "127.0.0.1:5672"
        assert report["product"] == "RabbitMQ" and report["version"].startswith("3.")
        assert report["node"] and "@" in report["node"]
        assert report["cluster_name"]
        assert report["node"] in [n["name"] for n in report["nodes"]]
        assert "guest:guest" not in json.dumps(report)


def test_status_text_is_one_field_a_line(amq: Amq) -> None:
    lines = amq("status").lines
    assert lines[0].split() == ["broker", amq.broker]
    assert lines[1].startswith("url")
    if amq.broker == "rabbitmq":
        assert any(line.startswith("connected to") for line in lines)


@pytest.mark.local_only
def test_local_status_lists_the_processes_using_the_store(amq: Amq, name) -> None:
    q = name()
    amq("declare", "queue", q)
    receiver = amq.popen("receive", q)
    try:
        amq.wait_for_consumers(q, 1, receiver)
        report = amq("status", "--format", "json").json_lines()[0]
        mine = [p for p in report["processes"] if p["pid"] == receiver.pid]
        assert mine and mine[0]["consumers"] == 1, report["processes"]
        assert "receive" in mine[0]["command"]
        text = "\n".join(amq("status").lines)
        assert f"{receiver.pid} " in text and "(1 consumer)" in text
    finally:
        kill_and_reap(receiver)


@pytest.mark.rabbitmq_only
def test_status_with_several_hosts_names_the_one_reached(amq: Amq) -> None:
    needs_management(amq.broker)  # the test's assertions need the management API
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    parts = urllib.parse.urlsplit(amq.url)
    userinfo = parts.netloc.rpartition("@")[0]
    url = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{userinfo}@localhost:{dead},127.0.0.1:5672"))
    report = amq("--url", url, "status", "--format", "json").json_lines()[0]
    assert report["connected_to"] == "127.0.0.1:5672"
    assert report["management"] == "http://127.0.0.1:15672"  # the host reached, not the first
    assert f"localhost:{dead},127.0.0.1:5672" in report["url"]


def test_text_lines_unit() -> None:
    lines = text_lines({"broker": "rabbitmq", "connected_to": "h:1", "node": None,
                        "nodes": [{"name": "a@x", "running": True},
                                  {"name": "b@x", "running": False}]})
    assert lines == ["broker        rabbitmq", "connected to  h:1", "node          unknown",
                     "nodes         a@x (running), b@x (stopped)"]
    local = text_lines({"broker": "local", "size": 2097152, "processes": [
        {"pid": 1, "command": "amq receive q", "connections": 1, "consumers": 2},
        {"pid": 2, "command": "", "connections": 0, "consumers": 0}]})
    assert local == ["broker     local", "size       2097152 bytes (2.0 MiB)",
                     "processes  1 amq receive q (2 consumers)", "           2 ?"]
