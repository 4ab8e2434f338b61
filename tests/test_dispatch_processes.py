"""Several `amq receive` processes on one queue: how the broker dispatches among them.

Whole processes against each broker, as users run them: receivers with `--prefetch 1`
share a queue round-robin when they keep up; several receivers together deliver every
message exactly once; a receiver killed with unacked messages gives them back, flagged
redelivered, to another one within seconds. RabbitMQ is the reference for all three.
"""

import collections
import fcntl
import json
import signal
import struct
import termios
import time

from conftest import kill_and_reap


def _lines(path):
    """The complete lines written to ``path`` so far."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.decode().split("\n")[:data.count(b"\n")]


def _start(amq, queue, out, *args):
    """`amq receive QUEUE ARGS` writing to the file ``out`` (acknowledged once written)."""
    with open(out, "wb") as f:
        return amq.popen("receive", queue, *args, stdout=f)


def _wait_for_consumers(amq, queue, procs):
    """Wait until the queue shows a consumer for each of ``procs``; fail at once, with its
    stderr, if one of them has ended instead."""
    def check():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a receiver exited {p.returncode}: "
                                     f"{p.stderr.read().decode()}")
        q = amq.queue(queue)
        return bool(q) and q["consumers"] >= len(procs)
    amq.wait_for(check, timeout=30, what=f"{len(procs)} consumers on {queue}")


def _stop(procs):
    """Ctrl+C for each receiver: each ends as a user's would (exit 130, no traceback)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    try:
        for p in procs:
            assert p.wait(timeout=10) == 130, p.stderr.read().decode()
            assert "Traceback" not in p.stderr.read().decode()
    finally:
        for p in procs:
            kill_and_reap(p)


def _unread(pipe):
    """Bytes waiting in a pipe, not yet read."""
    buf = fcntl.ioctl(pipe.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


def test_prefetch_1_receivers_that_keep_up_share_the_messages_round_robin(amq, name,
                                                                          tmp_path):
    # Into a file each message is acknowledged once written: both receivers keep up, so
    # each message should go to the next one with room. RabbitMQ gives 10/10 of a burst
    # of 20 on a quiet machine; on a busy one whichever acks first gets the next (from 5/15
    # to 10/10 seen, 1/19 once under heavy load; 63/37 over five bursts). So five bursts
    # of 20: in each, each receiver gets some (a receiver that takes a whole burst before
    # the other looks is what this catches), and over all 100 each gets at least 30.
    q = name("tasks")
    amq("declare", "queue", q)
    outs = [tmp_path / "r1.out", tmp_path / "r2.out"]
    receivers = [_start(amq, q, out, "--prefetch", "1") for out in outs]
    bursts = []
    try:
        _wait_for_consumers(amq, q, receivers)
        for burst in range(5):
            before = [len(_lines(o)) for o in outs]
            amq("send", q, "--lines",
                input="".join(f"{i}\n" for i in range(burst * 20 + 1, burst * 20 + 21)))
            amq.wait_for(lambda n=burst: sum(len(_lines(o)) for o in outs) >= (n + 1) * 20,
                         what=f"burst {burst + 1} of 20 messages out of the two receivers")
            bursts.append(tuple(len(_lines(o)) - b for o, b in zip(outs, before, strict=True)))
        time.sleep(0.3)  # a message delivered twice would be out by now
    finally:
        _stop(receivers)
    got = [_lines(o) for o in outs]
    assert sorted(got[0] + got[1], key=int) == [str(i) for i in range(1, 101)]
    assert all(min(shares) >= 1 for shares in bursts), f"shares of each burst: {bursts}"
    assert min(len(got[0]), len(got[1])) >= 30, f"shares of each burst: {bursts}"
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0


def test_several_receivers_deliver_every_message_exactly_once(amq, name, tmp_path):
    q = name("tasks")
    amq("declare", "queue", q)
    bodies = [f"m{i:04d}" for i in range(2000)]
    outs = [tmp_path / f"r{i}.out" for i in range(5)]
    receivers = [_start(amq, q, out, "--prefetch", "10") for out in outs]
    try:
        _wait_for_consumers(amq, q, receivers)
        amq("send", q, "--lines", input="".join(f"{b}\n" for b in bodies))
        amq.wait_for(lambda: sum(len(_lines(o)) for o in outs) >= len(bodies), timeout=30,
                     what="2,000 messages out of the receivers")
        time.sleep(0.5)  # a message delivered twice would be out by now
    finally:
        _stop(receivers)
    copies = collections.Counter(line for o in outs for line in _lines(o))
    assert sorted(b for b, n in copies.items() if n > 1) == []
    assert sorted(set(bodies) - set(copies)) == []
    assert sorted(copies) == bodies
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0


def test_a_killed_receivers_unacked_messages_go_to_another_flagged_redelivered(amq, name,
                                                                               tmp_path):
    q = name("tasks")
    amq("declare", "queue", q)
    bodies = [f"job-{i}" for i in range(5)]
    # Into a pipe nobody reads, a message stays unacknowledged: the reader never took it.
    holder = amq.popen("receive", q, "--prefetch", "10", "--format", "raw")
    out = tmp_path / "other.jsonl"
    other = None
    try:
        _wait_for_consumers(amq, q, [holder])
        amq("send", q, "--lines", input="".join(f"{b}\n" for b in bodies))
        size = sum(len(b) + 1 for b in bodies)
        amq.wait_for(lambda: _unread(holder.stdout) == size,
                     what="the holder to have all 5 messages written, unread")
        other = _start(amq, q, out, "--format", "json")
        _wait_for_consumers(amq, q, [holder, other])
        time.sleep(0.5)
        assert _lines(out) == []  # the holder has them all: none is ready
        holder.kill()
        holder.wait(timeout=10)
        killed = time.monotonic()
        amq.wait_for(lambda: len(_lines(out)) >= len(bodies), timeout=10,
                     what="the killed receiver's messages at the other receiver")
        waited = time.monotonic() - killed
        time.sleep(0.3)  # a message delivered twice would be out by now
    finally:
        kill_and_reap(holder)
        holder.stdout.close()
        if other is not None:
            _stop([other])
    got = [json.loads(line) for line in _lines(out)]
    assert sorted(m["body"] for m in got) == bodies, f"after {waited:.1f} s"
    assert all(m["redelivered"] for m in got), got
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0
