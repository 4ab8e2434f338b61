"""amq top: a snapshot's figures match what was sent, on both brokers; it declares and
consumes nothing (an x-expires queue it watches still expires); the live view in a real
terminal, left with q."""

import json
import subprocess
import threading
import time

import pexpect
from conftest import AMQ_CMD, needs_management, wait_until


def snapshot(amq, *args):
    out = amq("top", "--once", "--format", "json", *args).out
    return {row["name"]: row for row in json.loads(out)}


def test_a_snapshot_counts_what_was_sent_and_delivered(amq, name):
    needs_management(amq.broker)
    q = name("q")
    amq("send", q, "--lines", input="".join(f"m{i}\n" for i in range(200)))
    assert len(amq("receive", q, "--count", "50").lines) == 50
    if amq.broker == "local":  # rates from the store's counters, between the two samples
        top = amq.popen("top", "--once", "--format", "json", "--interval", "3", q)
        time.sleep(1)
        amq("send", q, "--lines", input="x\n" * 300)
        out, err = top.communicate(timeout=60)
        assert top.returncode == 0, err
        row = {r["name"]: r for r in json.loads(out)}[q]
        assert 80 <= row["publish_rate"] <= 101, row
        assert row["deliver_rate"] == 0
    else:
        amq("send", q, "--lines", input="x\n" * 300)

    def settled():  # RabbitMQ's management API catches up within seconds
        row = snapshot(amq, "--interval", "0.2", q).get(q)
        return row if row and row["published"] == 500 and row["delivered"] >= 50 and \
            row["messages"] == 450 else None
    row = wait_until(settled, "the counters of the sends", 60)  # stats lag more when busy
    assert row["unacked"] == 0 and row["consumers"] == 0
    if amq.broker == "rabbitmq":
        # RabbitMQ counts deliveries: receive --count 50 had more than 50 delivered (its
        # prefetch), and what it did not take went back
        assert row["delivered"] <= 200
    else:
        assert row["delivered"] == 50  # the local broker hands out what is taken


def test_rates_while_a_send_runs(amq, name):
    """About 200 messages a second for as long as it takes: on RabbitMQ its management
    API's rate shows once its statistics (every 5 s) have two samples of the stream."""
    needs_management(amq.broker)
    q = name("q")
    amq("declare", "queue", q)
    sender = amq.popen("send", q, "--lines", stdin=subprocess.PIPE)
    stop = threading.Event()

    def feed():  # 20 lines every 0.1 s
        while not stop.wait(0.1):
            sender.stdin.write(b"tick\n" * 20)
            sender.stdin.flush()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    seen = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            row = snapshot(amq, "--interval", "1", q).get(q)
            seen.append(row and row["publish_rate"])
            if row and 100 <= (row["publish_rate"] or 0) <= 400:
                break
        else:
            raise AssertionError(f"no publish rate near 200/s: {seen}")
    finally:
        stop.set()
        feeder.join(timeout=5)
        sender.stdin.close()
        sender.wait(timeout=30)
    assert sender.returncode == 0


def test_top_declares_and_consumes_nothing(amq, name):
    needs_management(amq.broker)
    q = name("q")
    amq("declare", "queue", q, "--expires", "2500")
    amq("send", q, "kept until the queue expires")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # watched all along, unused: its lease runs out
        row = snapshot(amq, "--interval", "0.3").get(q)
        assert row is None or row["consumers"] == 0
    wait_until(lambda: q not in amq.queue_names(), "the queue to expire", 30)


def test_top_in_a_pipe_needs_once(amq):
    r = amq("top", expect=2)
    assert "use --once" in r.stderr


def test_the_live_view_on_a_terminal_sorts_and_leaves_with_q(amq, name):
    needs_management(amq.broker)
    q = name("q")
    amq("send", q, "--lines", input="a\nb\nc\n")
    child = pexpect.spawn(AMQ_CMD[0], AMQ_CMD[1:] + ["top", "--interval", "0.5", q],
                          env=amq.env(TERM="xterm-256color"), dimensions=(30, 120),
                          encoding="utf-8", timeout=20)
    child.expect("amq top")
    child.expect("sorted by depth")
    child.expect(q)
    child.send("n")
    child.expect("sorted by name")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "\x1b[?1049l" in (child.before or "")  # the alternate screen left: terminal back
