"""Streams' speed figures (issue 14), printed; the machine is shared, so they are noisy.

Local broker, inside one process on a fresh store (the engine, as `amq` and the server
use it):
- append: 1,000,000 messages of 100 bytes, in publish batches of 10,000, msg/s;
- read from first: the whole stream through a reader (prefetch 10,000), msg/s;
- time to the first message from offset 900,000 of 1,000,000, and from a time near the
  end, measured from the consume to the first delivery, ms (goal: under 50 ms);
- 10 readers at different offsets at once: 10 `amq receive --offset K --count 100000`
  processes into pipes, msg/s in all.
RabbitMQ (``--rabbitmq``): `amq receive STREAM --offset first --count 100000` into a pipe,
beside a plain pika consumer of the stream with the same prefetch (goal >= 0.9x).

Usage: python benchmarks/streams.py [--count N] [--rabbitmq] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

from procs import amq_default as amq
from procs import rabbitmq_problem

from amqcli.amqp.model import Properties
from amqcli.broker.engine import Broker

BATCH = 10_000
PREFETCH = 10_000
STREAM = {"x-queue-type": "stream"}


def _reader(broker: Broker, queue: str, offset: object) -> tuple[object, str]:
    ch = broker.connect().channel(2)
    ch.qos(PREFETCH)
    return ch, ch.consume(queue, arguments={"x-stream-offset": offset})


def run_local(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(f"{tmp}/bench.db")
        conn = broker.connect()
        conn.declare_queue("events", durable=True, arguments=STREAM)
        body = b"x" * 100
        props = Properties()
        t = time.perf_counter()
        for start in range(0, count, BATCH):
            conn.publish_bodies("", "events", props, [body] * min(BATCH, count - start))
        append = count / (time.perf_counter() - t)
        print(f"append        {count} x 100 B, batches of {BATCH}:  {append:9.0f} msg/s  "
              "(target >= 200000)")

        ch, tag = _reader(broker, "events", "first")
        t, seen = time.perf_counter(), 0
        while seen < count:
            got = ch.deliver(tag, PREFETCH)  # type: ignore[attr-defined]
            seen += len(got)
            ch.ack(got[-1].delivery_tag, multiple=True, lazy=True)  # type: ignore[attr-defined]
        read = count / (time.perf_counter() - t)
        print(f"read          from first, prefetch {PREFETCH}:       {read:9.0f} msg/s  "
              "(target >= 200000)")

        middle = int(count * 0.9)
        for label, offset in ((f"offset {middle}", middle), ("a time near the end", None)):
            if offset is None:
                import datetime as dt
                offset = dt.datetime.now(dt.UTC)  # type: ignore[assignment]
                conn.publish_bodies("", "events", props, [body])  # one message after it
            t = time.perf_counter()
            ch, tag = _reader(broker, "events", offset)
            first = ch.deliver(tag, 1)  # type: ignore[attr-defined]
            ms = (time.perf_counter() - t) * 1000
            assert first, "nothing delivered"
            print(f"first message from {label}: {ms:7.2f} ms  (goal < 50 ms)")
        broker.close()
        run_readers(f"local:{tmp}/bench.db", count)


def run_readers(url: str, count: int, readers: int = 10) -> None:
    each = count // readers
    env = dict(os.environ, AMQ_URL=url)
    t = time.perf_counter()
    procs = [subprocess.Popen(amq() + ["receive", "events", "--offset", str(i * each),
                                       "--count", str(each)],
                              env=env, stdout=subprocess.PIPE) for i in range(readers)]
    lines = [len(p.communicate()[0].splitlines()) for p in procs]
    wall = time.perf_counter() - t
    assert lines == [each] * readers, lines
    print(f"{readers} readers at offsets 0, {each}, ... at once, {each} each: "
          f"{readers * each / wall:9.0f} msg/s in all  ({wall:.2f} s, start-ups included)")


def run_rabbitmq(url: str, count: int, prefetch: int = 1000) -> None:
    problem = rabbitmq_problem(url)
    if problem:
        print(f"RabbitMQ: not measured ({problem})")
        return
    import pika
    queue = f"bench-stream-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, AMQ_URL=url)
    subprocess.run(amq() + ["declare", "queue", queue, "--type", "stream", "--durable"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        data = b"".join(b"%08d" % i + b"x" * 92 + b"\n" for i in range(count))
        subprocess.run(amq() + ["send", queue, "--lines"], input=data, env=env, check=True)
        t = time.perf_counter()
        out = subprocess.run(amq() + ["receive", queue, "--offset", "first", "--count",
                                      str(count), "--prefetch", str(prefetch)],
                             env=env, check=True, stdout=subprocess.PIPE).stdout
        ours = count / (time.perf_counter() - t)
        assert len(out.splitlines()) == count
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=prefetch)
        seen = [0]

        def on_message(chx: object, method: object, _p: object, _b: bytes) -> None:
            seen[0] += 1
            if seen[0] % (prefetch // 2) == 0 or seen[0] == count:
                ch.basic_ack(method.delivery_tag, multiple=True)  # type: ignore[attr-defined]
        t = time.perf_counter()
        ch.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
        while seen[0] < count:
            conn.process_data_events(0.1)
        plain = count / (time.perf_counter() - t)
        conn.close()
        print(f"RabbitMQ      amq receive --offset first --count {count}: {ours:9.0f} msg/s; "
              f"pika, same prefetch {prefetch}: {plain:9.0f} msg/s; ratio {ours / plain:.2f} "
              "(goal >= 0.9; amq's includes its start-up)")
    finally:
        subprocess.run(amq() + ["delete", "queue", queue], env=env, check=False,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--rabbitmq", action="store_true")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = parser.parse_args()
    print("figures on a shared machine: noisy", file=sys.stderr)
    run_local(args.count)
    if args.rabbitmq:
        run_rabbitmq(args.url, min(args.count, 100_000))


if __name__ == "__main__":
    main()
