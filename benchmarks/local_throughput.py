"""Local broker throughput and latency, as whole `amq` processes (issue 2's speed figures).

Prints, for the built-in local broker on a fresh store file:
- bulk publish: `amq send q --lines` of N messages of SIZE bytes, messages/s;
- drain: `amq receive q --count N` into a pipe, messages/s;
- latency: a waiting `amq receive` and `amq send` from another process, p50/p99 in ms;
- idle CPU: a waiting `amq receive` with nothing to do, % of one core.

Each throughput figure is the median of --runs runs (best beside it), since a shared
machine is noisy. Usage: python benchmarks/local_throughput.py [--count N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from procs import amq_default as amq
from procs import cpu_seconds


def run_throughput(count: int, size: int, runs: int) -> None:
    line = lambda i: (b"%08d" % i + b"x" * (size - 8))[:size]  # noqa: E731
    data = b"\n".join(line(i) for i in range(count)) + b"\n"
    send_rates, recv_rates = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
            t = time.perf_counter()
            subprocess.run(amq() + ["send", "bench", "--lines"], input=data, env=env,
                           check=True)
            send_rates.append(count / (time.perf_counter() - t))
            t = time.perf_counter()
            out = subprocess.run(amq() + ["receive", "bench", "--count", str(count)],
                                 env=env, check=True, stdout=subprocess.PIPE).stdout
            recv_rates.append(count / (time.perf_counter() - t))
            assert out == data, "drained bodies differ from what was sent"
    print(f"bulk publish  amq send --lines   {count} x {size} B: "
          f"median {statistics.median(send_rates):9.0f} msg/s  best {max(send_rates):9.0f}"
          f"  (target >= 100000)")
    print(f"drain         amq receive --count {count}:       "
          f"median {statistics.median(recv_rates):9.0f} msg/s  best {max(recv_rates):9.0f}"
          f"  (target >= 100000)")


def run_latency(samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
        subprocess.run(amq() + ["declare", "queue", "lat"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        receiver = subprocess.Popen(amq() + ["receive", "lat", "--format", "raw"], env=env,
                                    stdout=subprocess.PIPE)
        try:
            time.sleep(1.0)
            idle_start, t0 = cpu_seconds(receiver.pid), time.monotonic()
            time.sleep(5.0)
            idle = (cpu_seconds(receiver.pid) - idle_start) / (time.monotonic() - t0) * 100
            # Publish from this process through the engine, so the figure is the
            # store-to-consumer hop, not the start-up of an `amq send` process.
            sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            from amqcli.amqp.model import Message
            from amqcli.broker.engine import Broker
            broker = Broker(f"{tmp}/bench.db")
            conn = broker.connect()
            latencies = []
            assert receiver.stdout is not None
            for i in range(samples):
                sent = time.perf_counter()
                conn.publish("", [Message(b"%d" % i, routing_key="lat")])
                receiver.stdout.readline()
                latencies.append((time.perf_counter() - sent) * 1000)
                time.sleep(0.02)
            conn.close()
        finally:
            receiver.terminate()
            receiver.wait()
    q = statistics.quantiles(latencies, n=100)
    print(f"latency       publish -> waiting receiver ({samples} msgs): "
          f"p50 {q[49]:.1f} ms  p99 {q[98]:.1f} ms  (target p99 < 50)")
    print(f"idle receiver CPU: {idle:.2f}% of a core  (target < 2%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    run_throughput(args.count, args.size, args.runs)
    run_latency(args.samples)


if __name__ == "__main__":
    main()
