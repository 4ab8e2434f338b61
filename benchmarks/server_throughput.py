"""`amq broker serve` against RabbitMQ, in one run, with the same pika client on both.

For each broker (a fresh `amq broker serve --port 0` on a temporary store, and the
RabbitMQ at --rabbitmq-url), on a fresh queue, the runs of the two alternating:

1. throughput: a pika consumer process (BlockingConnection, basic_consume, prefetch
   --prefetch, one basic_ack per message) and a pika publisher process (BlockingConnection,
   one basic_publish per message, no confirms) of --count messages of --size bytes, running
   together; messages/s = count / (last delivery - first publish). Median of --runs runs.
2. latency: the publisher sends --latency-count messages at --rate messages/s, each
   carrying its send time; the consumer takes delivery time - send time: p50 and p99.

Latency runs alternate too, --runs of each. Prints the figures for both brokers, the
ratio of their throughputs (issue 11's target: >= 1.5) and of their p99 latencies, the
median of each broker's runs (target: <= 2.0).

Usage: python benchmarks/server_throughput.py [--count N] [--size BYTES] [--runs R]
           [--prefetch N] [--latency-count N] [--rate R] [--rabbitmq-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import struct
import subprocess
import tempfile
import time
import uuid

import pika
from procs import amq_default as amq_command

DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
STAMP = struct.Struct(">d")


def consumer(url: str, queue: str, count: int, prefetch: int, ready: mp.Event,
             results: mp.Queue) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    latencies: list[float] = []
    state = {"n": 0, "last": 0.0}

    def on_message(channel, method, _props, body):  # type: ignore[no-untyped-def]
        now = time.time()
        latencies.append(now - STAMP.unpack_from(body)[0])
        channel.basic_ack(method.delivery_tag)
        state["n"] += 1
        if state["n"] == count:
            state["last"] = now
            channel.stop_consuming()

    ch.basic_consume(queue, on_message)
    ready.set()
    ch.start_consuming()
    conn.close()
    results.put((state["last"], latencies))


def publisher(url: str, queue: str, count: int, size: int, rate: float | None,
              results: mp.Queue) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    padding = b"x" * max(0, size - STAMP.size)
    start = time.time()
    for i in range(count):
        if rate:
            wait = start + i / rate - time.time()
            if wait > 0:
                time.sleep(wait)
        ch.basic_publish("", queue, STAMP.pack(time.time()) + padding)
    conn.process_data_events(0)
    conn.close()
    results.put(start)


def measure(url: str, count: int, size: int, prefetch: int,
            rate: float | None) -> tuple[float, list[float]]:
    """(messages/s, latencies in seconds) of one publisher and one consumer."""
    queue = f"bench-serve-{uuid.uuid4().hex[:8]}"
    setup = pika.BlockingConnection(pika.URLParameters(url))
    setup.channel().queue_declare(queue, auto_delete=False)
    try:
        ready, results = mp.Event(), mp.Queue()
        starts: mp.Queue = mp.Queue()
        c = mp.Process(target=consumer, args=(url, queue, count, prefetch, ready, results))
        c.start()
        if not ready.wait(30):
            raise RuntimeError("the consumer did not start")
        p = mp.Process(target=publisher, args=(url, queue, count, size, rate, starts))
        p.start()
        start = starts.get(timeout=600)
        last, latencies = results.get(timeout=600)
        p.join(30)
        c.join(30)
    finally:
        setup.channel().queue_delete(queue)
        setup.close()
    return count / (last - start), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, rates: list[float], runs: list[list[float]], rate: float) -> float:
    """Throughput (median of the runs) and latency: each run's p50 and p99, and their
    medians."""
    median = statistics.median(rates)
    p50s = [percentile(run, 0.5) * 1000 for run in runs]
    p99s = [percentile(run, 0.99) * 1000 for run in runs]
    print(f"{label:<18} {median:>10,.0f} msg/s (best {max(rates):,.0f})   latency at "
          f"{rate:,.0f} msg/s: p50 {statistics.median(p50s):.2f} ms, "
          f"p99 {statistics.median(p99s):.2f} ms (runs: "
          f"{', '.join(f'{p:.2f}' for p in p99s)})", flush=True)
    return median


def start_server(store: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(amq_command() + ["broker", "serve", "--port", "0", "--url",
                                             f"local:{store}", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"amq broker serve did not start: {line!r}")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, f"amqp://guest:guest@{host}:{port}/%2F"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=250)
    parser.add_argument("--latency-count", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=2_000)
    parser.add_argument("--rabbitmq-url", default=DEFAULT_RABBITMQ)
    args = parser.parse_args()
    print(f"pika {pika.__version__}: {args.count:,} messages of {args.size} bytes, prefetch "
          f"{args.prefetch}, median of {args.runs} runs; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(os.path.join(tmp, "amq.db"))
        targets = {"amq broker serve": url, "RabbitMQ": args.rabbitmq_url}
        rates: dict[str, list[float]] = {label: [] for label in targets}
        latencies: dict[str, list[list[float]]] = {label: [] for label in targets}
        try:
            for _ in range(args.runs):  # alternating, so that both see the same machine
                for label, target in targets.items():
                    rates[label].append(
                        measure(target, args.count, args.size, args.prefetch, None)[0])
            for _ in range(args.runs):  # the latency runs alternate too
                for label, target in targets.items():
                    latencies[label].append(measure(target, args.latency_count, args.size,
                                                    args.prefetch, args.rate)[1])
        finally:
            proc.terminate()
            proc.wait(30)
    served, rabbit = (report(label, rates[label], latencies[label], args.rate)
                      for label in targets)
    print(f"throughput amq broker serve / RabbitMQ: {served / rabbit:.2f} (target >= 1.5)")
    p99 = {label: statistics.median(percentile(run, 0.99) for run in latencies[label])
           for label in targets}
    print(f"latency p99 amq broker serve / RabbitMQ (medians of {args.runs} runs): "
          f"{p99['amq broker serve'] / p99['RabbitMQ']:.2f} (target <= 2.0)")


if __name__ == "__main__":
    main()
