"""Capture and replay: received_at in receive/tap --format json, --save DIR, amq replay
(order, pacing, -e/-k, --where, --confirm, --to-url, unroutable, Ctrl+C), on both brokers."""

import json
import re
import signal
import time

from conftest import Amq, kill_and_reap, needs_management

from amqcli.formats import rfc3339

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _capture(exchange, bodies, gap=0.0, routing_key="", **extra):
    """JSON lines as tap writes them, received ``gap`` seconds apart."""
    lines = []
    for i, body in enumerate(bodies):
        stamp = rfc3339(1_700_000_000 + i * gap)
        lines.append(json.dumps({"body": body, "exchange": exchange,
                                 "routing_key": routing_key, "headers": {"n": i},
                                 "received_at": stamp, **extra}))
    return "\n".join(lines) + "\n"


def test_receive_and_tap_json_carry_received_at_and_replay_reproduces(amq, name, tmp_path):
    x, q = name("fan"), name()
    amq("declare", "exchange", x, "--type", "fanout")
    amq("declare", "queue", q)
    amq("bind", x, q)
    tap = amq.popen("tap", x, "--count", "3", "--format", "json")
    try:
        amq.wait_for(lambda: x in {b["source"] for b in amq("list", "bindings", "-F",
                                                              "json").json_lines()[0]
                                   if b["destination"].startswith("amq.gen-")}, what="tap")
        for body in ("one", "two", "three"):
            amq("send", "-e", x, "", body, "-H", f"b={body}")
        out, _ = tap.communicate(timeout=30)
    finally:
        kill_and_reap(tap)
    captured = [json.loads(line) for line in out.decode().splitlines()]
    assert all(RFC3339.match(m["received_at"]) for m in captured)
    assert [m["received_at"] for m in captured] == sorted(m["received_at"] for m in captured)
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(out)
    assert amq("receive", q, "--count", "3").lines == ["one", "two", "three"]
    amq("replay", str(capture))
    again = amq("receive", q, "--count", "3", "--format", "json").json_lines()
    assert [(m["body"], m["exchange"], m["headers"]) for m in again] == [
        (b, x, {"b": b}) for b in ("one", "two", "three")]
    assert all(RFC3339.match(m["received_at"]) for m in again)
    # send --format json reads the same lines, ignoring received_at
    amq("send", "--format", "json", input=out)
    assert amq("receive", q, "--count", "3").lines == ["one", "two", "three"]


def test_replay_keeps_order_and_pace(amq, name):
    q = name()
    amq("declare", "queue", q)
    capture = _capture("", [f"m{i}" for i in range(4)], gap=0.25, routing_key=q)
    started = time.monotonic()
    amq("replay", "--speed", "1", input=capture)
    paced = time.monotonic() - started
    started = time.monotonic()
    amq("replay", "--speed", "10", input=capture)
    faster = time.monotonic() - started
    started = time.monotonic()
    amq("replay", input=capture)
    fastest = time.monotonic() - started
    assert paced >= 0.75  # three gaps of 0.25 s
    # each time includes a start-up of amq, which a loaded machine stretches: the paced run
    # is longer by its gaps, whatever the start-ups took
    assert faster < paced and fastest < paced
    assert amq("receive", q, "--count", "12").lines == [f"m{i}" for i in range(4)] * 3


def test_replay_where_and_overrides(amq, name):
    q, other = name(), name()
    amq("declare", "queue", q)
    amq("declare", "queue", other)
    capture = _capture("", ["a", "b", "c"], routing_key=q)
    amq("replay", "--where", "headers.n != 1", input=capture)
    assert amq("receive", q, "--count", "2").lines == ["a", "c"]
    amq("replay", "-k", other, "--confirm", input=capture)
    assert amq("receive", other, "--count", "3").lines == ["a", "b", "c"]
    r = amq("replay", "--where", "headers.n ==", input=capture, expect=2)
    assert "--where: column" in r.stderr


def test_replay_names_what_reached_no_queue(amq, name):
    needs_management(amq.broker)  # the test's assertions need the management API
    q = name()
    amq("declare", "queue", q)
    lines = _capture("", ["kept"], routing_key=q) + _capture("", ["lost"], routing_key=name())
    r = amq("replay", input=lines, expect=7)
    assert "312 NO_ROUTE - 1 of 2 message(s)" in r.stderr
    assert "stdin line 2 (there is no queue" in r.stderr
    assert amq("receive", q, "--count", "1").lines == ["kept"]
    r = amq("replay", input='{"nobody": 1}\n', expect=2)
    assert r.stderr.startswith("amq: error: stdin line 1: ")
    r = amq("replay", "/nonexistent/capture.jsonl", expect=2)
    assert "cannot read" in r.stderr


def test_save_dir_keeps_binary_bodies_and_replays_them(amq, name, tmp_path):
    q = name()
    bodies = [b"\x00\xff" * 1000, b"text", b"\x89PNG\r\n\x1a\n"]
    for body in bodies:
        amq("send", q, "-p", "content_type=application/octet-stream", input=body)
    saved = tmp_path / "saved"
    amq("receive", q, "--count", "3", "--save", str(saved))
    assert sorted(p.name for p in saved.iterdir()) == [
        f"00000{i}.{kind}" for i in (1, 2, 3) for kind in ("body", "json")]
    assert (saved / "000001.body").read_bytes() == bodies[0]
    meta = json.loads((saved / "000002.json").read_text())
    assert meta["body_file"] == "000002.body" and "body" not in meta
    assert meta["properties"]["content_type"] == "application/octet-stream"
    amq("replay", str(saved))
    again = amq("receive", q, "--count", "3", "--format", "json").json_lines()
    import base64
    assert [base64.b64decode(m["body"]) if m["body_encoding"] == "base64"
            else m["body"].encode() for m in again] == bodies
    r = amq("receive", q, "--exec", "cat", "--save", str(saved), expect=2)
    assert "--save and --exec" in r.stderr
    # a second save goes on numbering after the first
    amq("send", q, "more")
    amq("receive", q, "--count", "1", "--save", str(saved))
    assert (saved / "000004.body").read_bytes() == b"more"


def test_replay_to_another_broker(amq, name, tmp_path):
    from amqcli.broker.store import Store
    q = name()
    Store(f"{tmp_path}/other.db").close()
    other = Amq("local", f"local:{tmp_path}/other.db")
    other("declare", "queue", q)
    capture = _capture("", ["x", "y"], routing_key=q)
    amq("replay", "--to-url", other.url, input=capture)
    assert other("receive", q, "--count", "2").lines == ["x", "y"]
    if amq.broker == "rabbitmq":  # and from a local capture into RabbitMQ
        amq("declare", "queue", q)
        other("replay", "--to-url", amq.url, input=capture)
        assert amq("receive", q, "--count", "2").lines == ["x", "y"]


def test_replay_interrupted_says_how_far_it_got(amq, name, tmp_path):
    q = name()
    amq("declare", "queue", q)
    capture = tmp_path / "capture.jsonl"
    capture.write_text(_capture("", [f"m{i}" for i in range(40)], gap=0.2, routing_key=q))
    proc = amq.popen("replay", "--speed", "1", str(capture))
    try:
        time.sleep(3)  # a start-up (up to a second on a loaded machine), then some messages
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        kill_and_reap(proc)
    assert proc.returncode == 130
    done = int(re.search(r"interrupted: (\d+) messages? replayed", err.decode()).group(1))
    assert 2 <= done < 40
    assert f"resume from message {done + 1}" in err.decode()
    assert len(amq("receive", q, "--timeout", "1").lines) == done
