"""A confirmed send survives a lost connection: ``amq send --confirm --lines`` through
``tests/faultproxy.py``, cut twice mid-stream, reconnects, publishes again what the broker
had not confirmed, says how many, and exits 0 with every line in the queue at least once.
Without ``--confirm`` the same cut exits 11 and says how far the send got. Against
``amq broker serve`` and the RabbitMQ on this machine alike (``broker``)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from .servers import AMQ_CMD, Target, unique

LINES = 200_000


def amq(url: str, *args: str, input: bytes = b"", timeout: float = 120
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run(AMQ_CMD + ["--url", url, *args], input=input, capture_output=True,
                          timeout=timeout, env=dict(os.environ, AMQ_URL="", AMQ_BROKER=""))
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def drain(url: str, queue: str, tmp_path: Path) -> list[bytes]:
    """Every message of the queue (read straight from the broker, not through the proxy),
    into a file (into a pipe, acknowledgements wait for the reader)."""
    out = tmp_path / "drained"
    with open(out, "wb") as f:
        got = subprocess.run(AMQ_CMD + ["--url", url, "receive", queue, "--timeout", "2"],
                             stdout=f, stderr=subprocess.PIPE, timeout=120,
                             env=dict(os.environ, AMQ_URL="", AMQ_BROKER=""))
    assert got.returncode == 0, got.stderr.decode()
    return out.read_bytes().splitlines()


@pytest.mark.slow
def test_confirmed_bulk_send_across_two_cuts_loses_nothing(broker: Target,
                                                         tmp_path: Path) -> None:
    queue = unique("resume")
    data = b"".join(b"line-%06d\n" % i for i in range(LINES))
    try:
        with FaultProxy(broker.host, broker.port) as proxy:
            proxy.cut_after(3_000_000, direction="up", grow=2)  # two cuts in ~14 MB
            sent = amq(proxy.url(broker.url), "send", queue, "--lines", "--confirm",
                       input=data)
            cuts = proxy.stats.cuts
        err = sent.stderr.decode()
        assert sent.returncode == 0, err
        assert cuts == 2, (cuts, err)
        reported = sum(int(n) for n in re.findall(r"republishing (\d+) message", err))
        total = re.search(r"every message is confirmed; (\d+) were published again", err)
        assert total and int(total.group(1)) == reported, err
        assert err.count("reconnecting") == 2, err
        got = drain(broker.url, queue, tmp_path)
        counts = collections.Counter(got)
        missing = [i for i in range(LINES) if counts[b"line-%06d" % i] == 0]
        assert not missing, (len(missing), missing[:5], err)
        duplicates = len(got) - LINES
        assert 0 <= duplicates <= reported, (duplicates, reported, err)
    finally:
        amq(broker.url, "delete", "queue", queue)


def test_unconfirmed_send_cut_short_exits_11_saying_how_far(broker: Target) -> None:
    queue = unique("cut")
    data = b"".join(b"line-%06d\n" % i for i in range(LINES))
    try:
        with FaultProxy(broker.host, broker.port) as proxy:
            proxy.cut_after(3_000_000, direction="up")
            sent = amq(proxy.url(broker.url), "send", queue, "--lines", input=data)
        err = sent.stderr.decode()
        assert sent.returncode == 11, err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(r"\d+ messages written to the connection, the last of them may be "
                         r"lost", err), err
        assert "--confirm makes a send resumable" in err
    finally:
        amq(broker.url, "delete", "queue", queue)


def test_confirmed_send_gives_up_after_its_reconnect_timeout(broker: Target) -> None:
    queue = unique("giveup")
    data = b"".join(b"line-%06d\n" % i for i in range(LINES))
    try:
        proxy = FaultProxy(broker.host, broker.port).start()
        try:
            url = proxy.url(broker.url)
            sender = subprocess.Popen(
                AMQ_CMD + ["--url", url, "send", queue, "--lines", "--confirm",
                           "--reconnect-timeout", "1.5"],
                stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
            assert sender.stdin is not None
            sender.stdin.write(data[:len(data) // 2])
            sender.stdin.flush()
            deadline = time.monotonic() + 30
            while proxy.stats.up < 100_000 and time.monotonic() < deadline:
                time.sleep(0.01)
            proxy.stop()  # cuts the connection, and from now on nothing listens there
            _, stderr = sender.communicate(data[len(data) // 2:], timeout=60)
        finally:
            proxy.stop()
        err = stderr.decode()
        assert sender.returncode == 8, err
        assert "gave up reconnecting after" in err and "resume from message" in err, err
    finally:
        amq(broker.url, "delete", "queue", queue)


@pytest.mark.slow
def test_refused_after_a_reconnect_are_published_again(broker: Target, tmp_path: Path) -> None:
    """After a failover, a quorum queue without its leader yet nacks publishes: a
    confirmed send that has reconnected publishes refused messages again, with backoff,
    for up to --reconnect-timeout. Here the refusals come from a full reject-publish queue
    that a receiver started later drains: every line ends up in it, exit 0."""
    queue = unique("refused")
    count = 20_000
    made = amq(broker.url, "declare", "queue", queue, "--max-length", "2000",
               "--overflow", "reject-publish")
    assert made.returncode == 0, made.stderr.decode()
    out = tmp_path / "received"
    try:
        with FaultProxy(broker.host, broker.port) as proxy:
            proxy.cut_after(60_000, direction="up", grow=1000)  # one cut, early
            sender = subprocess.Popen(
                AMQ_CMD + ["--url", proxy.url(broker.url), "send", queue, "--lines",
                           "--confirm"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL, env=dict(os.environ, AMQ_URL="", AMQ_BROKER=""))
            stdin = sender.stdin
            assert stdin is not None
            data = b"".join(b"line-%06d\n" % i for i in range(count))
            feeder = threading.Thread(target=lambda: (stdin.write(data), stdin.close()))
            feeder.start()  # in a thread: a sender retrying a batch reads no more for now
            time.sleep(2)  # the queue is full by now: what comes is refused
            with open(out, "wb") as f:
                receiver = subprocess.Popen(
                    AMQ_CMD + ["--url", broker.url, "receive", queue, "--timeout", "4"],
                    stdout=f, stderr=subprocess.DEVNULL,
                    env=dict(os.environ, AMQ_URL="", AMQ_BROKER=""))
            assert sender.stderr is not None
            err = sender.stderr.read().decode()
            assert sender.wait(timeout=90) == 0, err
            assert receiver.wait(timeout=90) == 0
            feeder.join(10)
        assert "refused" in err and "publishing them again" in err, err
        got = set(out.read_bytes().splitlines())
        missing = [i for i in range(count) if b"line-%06d" % i not in got]
        assert not missing, (len(missing), missing[:5], err)
    finally:
        amq(broker.url, "delete", "queue", queue)
