"""Failover on a real three-node RabbitMQ cluster: how long amq pauses when the node it is
connected to stops.

It starts three nodes of the installed RabbitMQ (``tests/rabbitnodes.py``: root or the
``rabbitmq`` user; the machine's own node is not touched), joins them in one cluster and,
for each of --runs runs (node A is started again between runs), measures with a URL that
names the three nodes, A first:

1. a confirmed bulk send: ``amq send Q --lines --confirm`` fed without pause into a quorum
   queue whose leader is A; A is stopped (``rabbitmqctl stop``) mid-stream. Printed: when
   amq saw the connection go (its "reconnecting" line; RabbitMQ closes client connections
   some seconds into its shutdown), how long after that it was back (its "reconnected"
   line), and the pause: the longest time the queue (counted on node B every 20 ms with a
   passive declare) did not grow. Checked: exit 0, every line in the queue.
2. a receiver: ``amq receive Q`` connected to A (``?heartbeat=2``), a publisher on node C
   sending a message every 5 ms; A is stopped; printed: the time from the stop to the
   first message received again (the end of the longest gap between two received
   messages), and that gap (the time the receiver got nothing: from the connection's
   close to consuming again on another node). It needs receive to reconnect (issue 12,
   part A: ``--no-reconnect`` exists); without it, this part says so and is skipped.

Usage: python benchmarks/failover.py [--runs N] [--lines N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue as queues
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rabbitnodes  # the test suite's node starter
from procs import amq_default as amq_command
from rabbitnodes import HOST, Node

AMQ = amq_command()
ENV = dict(os.environ, AMQ_URL="", AMQ_BROKER="")
nan = float("nan")


def hosts_url(nodes: list[Node], query: str = "") -> str:
    hosts = ",".join(f"{HOST}:{n.port}" for n in nodes)
    return f"amqp://guest:guest@{hosts}/%2F" + (f"?{query}" if query else "")


def count(node: Node, queue: str) -> int | None:
    """Ready messages of ``queue`` on ``node`` (None if it cannot say just now)."""
    try:
        with pika.BlockingConnection(node.params(socket_timeout=2)) as connection:
            return int(connection.channel().queue_declare(queue, passive=True)
                       .method.message_count)
    except pika.exceptions.AMQPError:
        return None


def declare_quorum(node: Node, queue: str) -> None:
    subprocess.run(AMQ + ["--url", node.url, "declare", "queue", queue, "--type", "quorum",
                          "--durable"], env=ENV, check=True, capture_output=True)


def delete(node: Node, queue: str) -> None:
    subprocess.run(AMQ + ["--url", node.url, "delete", "queue", queue], env=ENV,
                   capture_output=True)


def lines_of(proc: subprocess.Popen[bytes], out: queues.Queue[tuple[float, bytes]]) -> None:
    """Each line of the process's stderr, with the time it came."""
    assert proc.stderr is not None
    for line in proc.stderr:
        out.put((time.monotonic(), line))


def confirmed_send(nodes: list[Node], lines: int) -> dict[str, float]:
    a, b, _c = nodes
    queue = f"failover-send-{uuid.uuid4().hex[:8]}"
    declare_quorum(a, queue)
    data = b"".join(b"line-%07d\n" % i for i in range(lines))
    sender = subprocess.Popen(AMQ + ["--url", hosts_url(nodes), "send", queue, "--lines",
                                     "--confirm"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    said: queues.Queue[tuple[float, bytes]] = queues.Queue()
    threading.Thread(target=lines_of, args=(sender, said), daemon=True).start()
    stdin = sender.stdin
    assert stdin is not None
    feeder = threading.Thread(target=lambda: (stdin.write(data), stdin.close()), daemon=True)
    feeder.start()
    samples: list[tuple[float, int]] = []
    while (samples[-1][1] if samples else 0) < lines // 5:
        got = count(b, queue)
        samples.append((time.monotonic(), got or 0))
        time.sleep(0.02)
    stopped = time.monotonic()
    stopper = threading.Thread(target=a.stop, kwargs={"keep": True})
    stopper.start()
    while sender.poll() is None:
        got = count(b, queue)
        if got is not None:
            samples.append((time.monotonic(), got))
        time.sleep(0.02)
    stopper.join()
    if sender.returncode != 0:
        raise SystemExit(f"amq send exited {sender.returncode}")
    final = count(b, queue) or 0
    delete(b, queue)
    if final < lines:
        raise SystemExit(f"the queue holds {final} of {lines} lines")
    events = {}
    while not said.empty():
        when, line = said.get()
        if b"reconnecting" in line and "lost" not in events:
            events["lost"] = when - stopped
        if b"reconnected" in line and "back" not in events:
            events["back"] = when - stopped
    pause, last_growth, last = 0.0, stopped, None
    for when, value in samples:
        if when < stopped:
            last = value
            continue
        if last is not None and value > last:
            pause = max(pause, when - last_growth)
            last_growth = when
        last = value if last is None else max(last, value)
    events["pause"] = pause
    events["duplicates"] = final - lines
    return events


def receive_reconnects() -> bool:
    done = subprocess.run(AMQ + ["receive", "--help"], capture_output=True, env=ENV)
    return b"--no-reconnect" in done.stdout


def receiver_failover(nodes: list[Node]) -> tuple[float, float]:
    """(From the stop to the first message received again, the longest gap itself.)"""
    a, b, c = nodes
    queue = f"failover-recv-{uuid.uuid4().hex[:8]}"
    declare_quorum(b, queue)
    receiver = subprocess.Popen(AMQ + ["--url", hosts_url(nodes, "heartbeat=2"), "receive",
                                       queue, "--prefetch", "10"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)
    got: list[float] = []

    def read() -> None:
        assert receiver.stdout is not None
        for _line in receiver.stdout:
            got.append(time.monotonic())
    threading.Thread(target=read, daemon=True).start()
    stopped = 0.0
    with pika.BlockingConnection(c.params()) as connection:
        channel = connection.channel()
        for i in range(4000):
            channel.basic_publish("", queue, b"m-%05d" % i)
            if i == 400:
                stopped = time.monotonic()
                threading.Thread(target=a.stop, kwargs={"keep": True}).start()
            time.sleep(0.005)
            if stopped and got and got[-1] > stopped + 1 and i > 1000:
                break
    time.sleep(2)
    receiver.terminate()
    receiver.wait(30)
    delete(b, queue)
    after = [t for t in got if t > stopped]
    gaps = [(t2 - t1, t2) for t1, t2 in itertools.pairwise(after)]
    if not after:
        return nan, nan
    longest = max(gaps, default=(0.0, after[0]))
    return longest[1] - stopped, longest[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=300_000)
    args = parser.parse_args()
    why = rabbitnodes.problem()
    if why:
        raise SystemExit(why)
    began = time.monotonic()
    nodes = rabbitnodes.start_nodes(3)
    try:
        rabbitnodes.join_cluster(nodes)
        print(f"three nodes up and joined in {time.monotonic() - began:.1f} s")
        sends = []
        for run in range(args.runs):
            if nodes[0].stopped:
                nodes[0].start_again()
            sends.append(confirmed_send(nodes, args.lines))
            s = sends[-1]
            print(f"send run {run + 1}: connection closed {s.get('lost', nan):.2f} s after "
                  f"`rabbitmqctl stop` (the node's shutdown), reconnected "
                  f"{s.get('back', nan) - s.get('lost', nan):.2f} s after that; the queue "
                  f"stopped growing for at most {s['pause']:.2f} s; {s['duplicates']} "
                  "duplicates")
        pauses = [s["pause"] for s in sends]
        gaps = [s.get("back", nan) - s.get("lost", nan) for s in sends]
        print(f"confirmed send --lines, node stopped: connection lost to reconnected "
              f"{statistics.median(gaps):.2f} s median of {len(sends)}; the queue's "
              f"longest pause {statistics.median(pauses):.2f} s median, {max(pauses):.2f} s "
              "worst")
        if not receive_reconnects():
            print("receiver: n/a (amq receive does not reconnect yet: issue 12, part A)")
            return
        times, outages = [], []
        for run in range(args.runs):
            if nodes[0].stopped:
                nodes[0].start_again()
            again, gap = receiver_failover(nodes)
            times.append(again)
            outages.append(gap)
            print(f"receive run {run + 1}: a message received again {again:.2f} s after "
                  f"`rabbitmqctl stop`; none for {gap:.2f} s before it")
        print(f"receive, node stopped, to the first message received again: "
              f"{statistics.median(times):.2f} s median of {len(times)}, "
              f"{max(times):.2f} s worst; the receiver's longest wait "
              f"{statistics.median(outages):.2f} s median")
    finally:
        rabbitnodes.stop_nodes(nodes)


if __name__ == "__main__":
    main()
