"""`amq receive` into pipes: nothing lost when the reader stops early (issue 9).

Into a pipe, a message is acknowledged only once the reader has taken its bytes out of
the pipe and is still there a moment later; when the reader goes (`head -1`, a reader
that exits while receive waits), receive stops quietly and what the reader may not have
used goes back to the queue, flagged redelivered. Both brokers, real processes.
"""

from __future__ import annotations

import shlex
import subprocess
import time

import pytest
from conftest import AMQ_CMD, kill_and_reap

AMQ = shlex.join(AMQ_CMD)


def _fill(amq, q, count, size=0):
    lines = [(f"{i:06d}" + "x" * size)[:max(size, 6)] for i in range(1, count + 1)]
    amq("send", q, "--lines", input="\n".join(lines) + "\n")
    return lines


def _shell(amq, script, timeout=60):
    """Run a bash pipeline (pipefail off, as by default); stdout, stderr."""
    r = subprocess.run(["bash", "-c", script], capture_output=True, env=amq.env(),
                       timeout=timeout, check=False)
    return r.stdout.decode(), r.stderr.decode()


def _settled(amq, q, at_least):
    """The queue once its consumer is gone and nothing is unacked (requeues take a moment
    on RabbitMQ), with at least ``at_least`` ready messages."""
    def check():
        info = amq.queue(q)
        done = info and info["consumers"] == 0 and info["unacked"] == 0
        return info if done and info["messages"] >= at_least else None
    return amq.wait_for(check, what=f"{q} to settle with >= {at_least} messages")


def _drain_json(amq, q, count):
    return amq("receive", q, "--count", str(count), "--format", "json").json_lines()


def _quiet(err):
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipe" not in err
    assert "error" not in err, err


@pytest.mark.parametrize("queued", [100, 5000])
def test_head_takes_one_and_the_rest_stay_queued(amq, name, queued):
    q = name()
    lines = _fill(amq, q, queued)
    out, err = _shell(amq, f"{AMQ} receive {q} | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
                      timeout=30)  # it used to hang here until killed
    assert out.splitlines() == [lines[0], "status=0"], out[-300:] + err
    _quiet(err)
    info = _settled(amq, q, queued - 1)
    assert info["messages"] in (queued - 1, queued)
    back = _drain_json(amq, q, info["messages"])
    bodies = [m["body"] for m in back]
    assert sorted(bodies) == sorted(lines[-len(bodies):])  # none lost but maybe the first
    assert set(bodies) >= set(lines[1:])
    by_body = {m["body"]: m for m in back}
    if lines[0] in by_body:  # the one head printed came back: flagged, it was seen
        assert by_body[lines[0]]["redelivered"] is True
    assert any(m["redelivered"] for m in back)


def test_a_reader_that_leaves_while_receive_waits_ends_it(amq, name):
    q = name()
    amq("declare", "queue", q)
    script = (f"{AMQ} receive {q} | {{ read -r line; echo \"got=$line\"; }}; "
              "echo \"status=${PIPESTATUS[0]}\"")
    proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=amq.env())
    try:
        amq.wait_for_consumers(q, 1)
        amq("send", q, "only")
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        ended = time.monotonic() - sent
    finally:
        kill_and_reap(proc)
    assert out.decode().splitlines() == ["got=only", "status=0"], out + err
    _quiet(err.decode())
    # Before, receive waited for a next message to find the pipe closed: it never ended.
    assert ended < 8, f"receive took {ended:.1f}s to notice its reader had gone"
    info = _settled(amq, q, 1)
    [m] = _drain_json(amq, q, info["messages"])
    assert m["body"] == "only" and m["redelivered"] is True  # read, then the reader left


def test_a_reader_that_leaves_before_any_message_ends_it(amq, name):
    q = name()
    amq("declare", "queue", q)
    t = time.monotonic()
    out, err = _shell(amq, f"{AMQ} receive {q} | sleep 1; echo \"status=${{PIPESTATUS[0]}}\"",
                      timeout=30)
    assert out.strip() == "status=0", out + err
    _quiet(err)
    assert time.monotonic() - t < 8
    info = _settled(amq, q, 0)
    assert info["messages"] == 0


def test_a_reader_that_reads_to_the_end_gets_everything_acknowledged(amq, name):
    q = name()
    lines = _fill(amq, q, 300)
    out, err = _shell(amq, f"{AMQ} receive {q} --count 250 | cat; "
                           "echo \"status=${PIPESTATUS[0]}\"")
    assert out.splitlines() == lines[:250] + ["status=0"], err
    info = _settled(amq, q, 50)
    assert info["messages"] == 50
    rest = _drain_json(amq, q, 50)
    assert [m["body"] for m in rest] == lines[250:]  # (RabbitMQ may have sent some ahead)


def test_pretty_and_json_into_a_pipe_are_acknowledged_once_read(amq, name):
    q = name()
    _fill(amq, q, 4)
    out, _err = _shell(amq, f"{AMQ} receive {q} --count 2 --format pretty | cat")
    assert "#1" in out and "#2" in out and "000001" in out and "000002" in out
    out, _err = _shell(amq, f"{AMQ} receive {q} --count 2 --format json | cat")
    assert [line.count('"body"') for line in out.splitlines()] == [1, 1]
    assert amq.queue(q)["messages"] == 0


def test_a_reader_that_never_drains_holds_its_messages_unacknowledged(amq, name):
    q = name()
    lines = _fill(amq, q, 5)
    receiver = amq.popen("receive", q, "--count", "5")  # stdout: a pipe nobody reads
    try:
        def held():
            info = amq.queue(q)
            return info and info["unacked"] == 5 and info["messages"] == 0
        amq.wait_for(held, what="5 unacked messages")
        time.sleep(1.0)  # long past the hold: still not acknowledged, nothing was read
        assert held()
        assert receiver.poll() is None
        receiver.stdout.close()  # the reader goes without reading
        assert receiver.wait(timeout=15) == 0
        err = receiver.stderr.read().decode()
    finally:
        kill_and_reap(receiver)
    _quiet(err)
    info = _settled(amq, q, 5)
    back = _drain_json(amq, q, 5)
    assert info["messages"] == 5 and [m["body"] for m in back] == lines
    assert all(m["redelivered"] for m in back)


@pytest.mark.rabbitmq_only  # heartbeats are RabbitMQ's
def test_a_slow_reader_does_not_starve_rabbitmq_heartbeats(amq, name):
    """A full pipe used to block os.write, so pika answered no heartbeats and RabbitMQ
    closed the connection: now receive keeps servicing it while the reader sleeps."""
    q = name()
    lines = _fill(amq, q, 200, size=1000)  # 200 kB: far more than a pipe holds
    env = amq.env(AMQ_URL=amq.url + "?heartbeat=1")
    script = (f"{AMQ} receive {q} --count 200 | {{ sleep 6; wc -l; }}; "
              "echo \"status=${PIPESTATUS[0]}\"")
    r = subprocess.run(["bash", "-c", script], capture_output=True, env=env, timeout=60,
                       check=False)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.split() == ["200", "status=0"], out + err
    assert amq.queue(q)["messages"] == 0 and len(lines) == 200


def test_the_window_keeps_held_bytes_bounded_whatever_the_prefetch(amq, name, monkeypatch):
    """In-process, on a real connection to each broker: into a pipe, the prefetch count is
    large, and the channel's window keeps what is held unacknowledged near PIPE_BYTES
    (made small here so that small messages show it)."""
    from amqcli import config
    from amqcli.amqp.model import Properties
    from amqcli.backends import open_backend
    from amqcli.cli import receive

    monkeypatch.setattr(receive, "PIPE_BYTES", 64 * 1024)
    q = name()
    backend = open_backend(config.resolve(amq.url))
    try:
        backend.ensure_queue(q)
        backend.publish_bodies("", q, Properties(), [b"x" * 1024] * 300)
        sub = backend.consume(q, prefetch=receive.PIPE_PREFETCH, window=receive.WINDOW_START)
        window = receive._Window(sub, receive.PIPE_PREFETCH, receive.WINDOW_START)
        held = []

        def take(most):
            while True:
                batch = sub.fetch(most, 0.3)
                if not batch:
                    return
                held.extend(batch)
                window.update(batch)

        take(1000)
        assert len(held) == receive.WINDOW_START  # the window started it, not the prefetch
        assert window.size == 64  # 64 KiB of 1 KiB messages
        sub.ack(held[39].delivery_tag, multiple=True)  # 60 left held: room for 4 more
        take(1000)
        assert len(held) == 104
        sub.cancel()
    finally:
        backend.close()
    _settled(amq, q, 300 - 40)
