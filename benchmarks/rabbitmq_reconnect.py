"""The cost of reconnect-readiness in the steady state, on a real RabbitMQ (issue 12).

`amq receive QUEUE --count N --format body` (whole process, stdout to a pipe read here,
every byte counted) with reconnecting on (the default: a ``Resilient`` consumer,
heartbeats of 10 s) and with `--no-reconnect`, alternately in the same run, on a fresh
non-durable queue `bench-<uuid>` (deleted at the end, even on failure) filled with pika
(untimed) before each run. Prints messages/s (median and best of --runs runs) of both,
the CPU seconds of the process (user + system: steadier than the wall time on a shared
machine), and the ratios of medians, with the goal: within 5% (ratio >= 0.95).

`--no-reconnect` runs the same consumer with its retries off, so that ratio shows what
reconnecting costs while nothing is lost (nothing but a call per batch, by design).
`--baseline AMQ` also measures another `amq` executable in the same rounds (an install
from before reconnecting existed, say), and prints the ratio against it.

Usage: python benchmarks/rabbitmq_reconnect.py [--url URL] [--count N] [--runs R]
                                               [--size BYTES] [--baseline AMQ]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import time
import uuid

import pika
from procs import amq_default as amq_command

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ON = "reconnect on (default)"


def channel(url: str) -> pika.adapters.blocking_connection.BlockingChannel:
    params = pika.URLParameters(url)
    params.heartbeat = 0  # it sits idle while amq runs
    return pika.BlockingConnection(params).channel()


def fill(url: str, queue: str, count: int, size: int) -> None:
    """Purge, publish ``count`` bodies of ``size`` bytes, wait until all are in."""
    ch = channel(url)
    try:
        ch.queue_purge(queue)
        body = b"x" * size
        for _ in range(count):
            ch.basic_publish("", queue, body)
        deadline = time.monotonic() + 15
        while ch.queue_declare(queue, passive=True).method.message_count < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the queue {queue} did not fill up to {count}")
            time.sleep(0.05)
    finally:
        ch.connection.close()


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def receive(url: str, queue: str, count: int, size: int, extra: list[str],
            amq: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of the whole `amq receive` process; checks what it wrote."""
    argv = [*amq, "receive", queue, "--count", str(count), "--format", "body",
            *extra]
    start, cpu = time.perf_counter(), cpu_of_children()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, AMQ_URL=url))
    assert proc.stdout is not None and proc.stderr is not None
    got = 0
    while chunk := proc.stdout.read(1 << 16):
        got += len(chunk)
    err = proc.stderr.read().decode(errors="replace")
    code = proc.wait()
    elapsed = time.perf_counter() - start
    cpu = cpu_of_children() - cpu
    if code != 0 or got != count * size:
        raise SystemExit(f"{' '.join(argv)}: exit {code}, {got} bytes of {count * size}\n"
                         f"{err}")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--baseline", metavar="AMQ", help="another amq to measure beside")
    args = parser.parse_args()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    ch = channel(args.url)
    ch.queue_declare(queue)
    ch.connection.close()
    amq = amq_command()
    runs = {ON: (amq, []),
            "--no-reconnect": (amq, ["--no-reconnect"])}
    if args.baseline:
        runs["baseline"] = ([args.baseline], [])
    rates: dict[str, list[float]] = {label: [] for label in runs}
    cpus: dict[str, list[float]] = {label: [] for label in runs}
    try:
        for _ in range(args.runs):
            for label, (command, extra) in runs.items():
                fill(args.url, queue, args.count, args.size)
                wall, cpu = receive(args.url, queue, args.count, args.size, extra, command)
                rates[label].append(args.count / wall)
                cpus[label].append(cpu)
    finally:
        ch = channel(args.url)
        ch.queue_delete(queue)
        ch.connection.close()
    print(f"amq receive --count {args.count:,} --format body, {args.size}-byte messages, "
          f"{args.runs} runs each (alternating), into a pipe:")
    for label, values in rates.items():
        print(f"  {label:<24} median {statistics.median(values):9.0f} msg/s   "
              f"best {max(values):9.0f} msg/s   CPU {statistics.median(cpus[label]):6.2f} s")
    on, cpu_on = statistics.median(rates[ON]), statistics.median(cpus[ON])
    for label in list(runs)[1:]:
        other = statistics.median(rates[label])
        cpu = statistics.median(cpus[label])
        print(f"  on / {label:<19} msg/s {on / other:6.3f}   CPU {label} / on "
              f"{cpu / cpu_on:6.3f}  (goal: within 5%, >= 0.95)")


if __name__ == "__main__":
    main()
