"""Nothing is lost: killed receivers, killed senders, many producers and consumers at once."""

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import kill_and_reap


def test_kill_9_receiver_returns_unacked_messages_redelivered(amq, name):
    q = name()
    big = "z" * 200_000  # the receiver blocks writing the first body into an unread pipe
    for i in range(5):
        amq("send", q, input=f"{i}{big}")
    receiver = amq.popen("receive", q)
    try:
        amq.wait_for(lambda: amq.queue(q)["unacked"] == 5, what="5 unacked deliveries")
        os.kill(receiver.pid, signal.SIGKILL)
        receiver.wait(timeout=10)
    finally:
        kill_and_reap(receiver)
    info = amq.wait_for(lambda: (i := amq.queue(q)) and i["unacked"] == 0 and i,
                        what="the dead receiver's messages back")
    assert info["messages"] == 5 and info["consumers"] == 0
    got = amq("receive", q, "--count", "5", "--format", "json").json_lines()
    assert [m["body"][0] for m in got] == ["0", "1", "2", "3", "4"]  # original order
    assert all(m["redelivered"] for m in got)


def test_kill_9_subscriber_leaves_no_exclusive_queue(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "fanout")
    receiver, gen = amq.subscribe(x)
    try:
        os.kill(receiver.pid, signal.SIGKILL)
        receiver.wait(timeout=10)
    finally:
        kill_and_reap(receiver)
    assert gen not in amq.queue_names()
    amq("send", "-e", x, "", "nobody listens", expect=7)


@pytest.mark.slow
def test_kill_9_bulk_sender_loses_nothing_it_reported(amq, name):
    q = name()
    sender = amq.popen("send", q, "--lines", "--verbose", "--confirm", stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL)
    reported = []

    def read_reports() -> None:
        for line in sender.stderr:
            text = line.decode()
            if text.startswith("amq: sent "):
                reported.append(int(text.split()[-1]))

    reader = threading.Thread(target=read_reports, daemon=True)
    reader.start()
    written = 0
    try:
        deadline = time.monotonic() + 30
        while len(reported) < 5 and time.monotonic() < deadline:
            chunk = "".join(f"line-{i:07d}-{'p' * 50}\n" for i in range(written, written + 2000))
            sender.stdin.write(chunk.encode())
            sender.stdin.flush()
            written += 2000
            time.sleep(0.02)
        # Part of a line, then death mid-stream.
        sender.stdin.write(f"line-{written:07d}-partial".encode())
        sender.stdin.flush()
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=10)
    finally:
        kill_and_reap(sender)
        reader.join(timeout=5)
    assert len(reported) >= 5, "the sender reported too little before being killed"
    last = max(reported)
    count = amq.queue(q)["messages"]
    assert count >= last
    bodies = amq("receive", q, "--count", str(count), timeout=120).lines
    assert bodies == [f"line-{i:07d}-{'p' * 50}" for i in range(count)]  # whole, in order


@pytest.mark.slow
def test_4_producers_4_consumers_20000_messages_each_once(amq, name):
    q = name()
    amq("declare", "queue", q)
    consumers = [amq.popen("receive", q, "--timeout", "5", "--prefetch", "50")
                 for _ in range(4)]
    try:
        amq.wait_for_consumers(q, 4)
        producers = []
        for p in range(4):
            data = "".join(f"p{p}-{i:05d}\n" for i in range(5000)).encode()
            proc = amq.popen("send", q, "--lines", stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
            producers.append((proc, data))
        for proc, data in producers:
            proc.stdin.write(data)
            proc.stdin.close()
        for proc, _ in producers:
            assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
        # Read every consumer at once, as the readers of four pipelines would: into a pipe
        # a message is acknowledged once its reader took it (and --prefetch 50 caps that).
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda c: c.communicate(timeout=180)[0], consumers))
        outputs = [out.decode().split() for out in outs]
    finally:
        for c in consumers:
            kill_and_reap(c)
    received = [m for out in outputs for m in out]
    expected = {f"p{p}-{i:05d}" for p in range(4) for i in range(5000)}
    assert len(received) == 20000, f"{len(received)} deliveries"
    assert set(received) == expected
    for out in outputs:  # each producer's messages stay in order within a consumer
        for p in range(4):
            mine = [m for m in out if m.startswith(f"p{p}-")]
            assert mine == sorted(mine)
    # RabbitMQ's unacked count comes from the management API, seconds behind.
    amq.wait_for(lambda: amq.queue(q)["unacked"] == 0, what="no unacked messages")
    assert amq.queue(q)["messages"] == 0


@pytest.mark.slow
def test_receive_crash_before_ack_redelivers_rather_than_loses(amq, name):
    """A receiver killed at any point: every message is either printed by it or back."""
    q = name()
    amq("send", q, "--lines", input="".join(f"{i}\n" for i in range(3000)))
    receiver = amq.popen("receive", q, "--prefetch", "10", "--format", "json")
    got = []
    for _ in range(500):
        got.append(json.loads(receiver.stdout.readline()))
    os.kill(receiver.pid, signal.SIGKILL)
    kill_and_reap(receiver)
    # What it wrote out before dying (still in the pipe) counts as received.
    got += [json.loads(line) for line in receiver.stdout.read().splitlines()]
    rest = amq("receive", q, "--timeout", "1", "--format", "json").json_lines()
    bodies = {m["body"] for m in got} | {m["body"] for m in rest}
    assert bodies == {str(i) for i in range(3000)}
