"""Routing through a topic exchange with many bindings, as whole `amq` processes and
through `amq broker serve`.

On a temporary store file, one topic exchange bound to four queues with --sizes bindings
(10, 1,000, 10,000 and 100,000 by default), added row by row. Binding i has the pattern
``a.<i>.*``, ``#.<i>`` or ``<i>.#`` (i mod 3), plus one bare ``#`` to a fifth queue,
``bench.all``, that is bound and unbound again before each measurement (so each
measurement starts on a fresh bindings version). For each row it prints messages/s of:

- lines: ``amq send -e X a.0.x --lines`` of --count lines from a pipe (one routing key,
  matching one binding);
- json:  ``amq send -e X --format json`` of --count objects with --keys distinct routing
  keys ``a.<i>.k<n>``, each matching one binding;
- serve: single publishes (pika BlockingConnection, one ``basic_publish`` per message, no
  confirms) of --serve-count messages through ``amq broker serve`` (port 0, started for
  the row and stopped after), cycling through the same distinct keys, after a warm-up;
- other: the wall time (and CPU time) in ms of ``amq send -e OTHER k x`` (one message to
  another, fanout, exchange), to show that this exchange's bindings do not slow others'
  start-up;

each the best of --runs runs, with its ratio to the 10-bindings row (the first row) of the
same run, by wall time and, in the "cpu" column, by the CPU time of the process doing the
work (``amq send``, or the server): on a busy machine the second is the steadier. Every
run checks that each message reached its queue and purges the queues after. A run that
takes longer than --timeout seconds is reported as "<N" (fewer than N/s). ``--amq "CMD
..."`` measures another amq (an older checkout's venv, say) with the same set-up.

Usage: python benchmarks/topic_routing.py [--sizes 10,1000,10000,100000] [--count N]
           [--keys K] [--serve-count N] [--runs R] [--timeout S] [--amq CMD]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from procs import cpu_seconds

from amqcli.broker.engine import Broker, Connection

EXCHANGE = "bench.topic"
OTHER = "bench.other"
QUEUES = [f"bench.q{i}" for i in range(4)]
ALL_QUEUE = "bench.all"


def amq_default() -> list[str]:
    beside = Path(sys.executable).parent / "amq"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "amqcli"]


def pattern(i: int) -> str:
    return (f"a.{i}.*", f"#.{i}", f"{i}.#")[i % 3]


def matching_keys(size: int, count: int) -> list[str]:
    """``count`` distinct keys, each matching exactly one binding (an ``a.<i>.*``)."""
    heads = list(range(0, size, 3))
    return [f"a.{heads[n % len(heads)]}.k{n}" for n in range(count)]


class Setup:
    """The benchmark's own broker connection on the store: bindings, checks, purges."""

    def __init__(self, store: str) -> None:
        self.broker = Broker(store)
        self.conn: Connection = self.broker.connect("topic_routing setup")
        self.size = 0
        self.conn.declare_exchange(EXCHANGE, "topic")
        self.conn.declare_exchange(OTHER, "fanout")
        for q in [*QUEUES, ALL_QUEUE]:
            self.conn.declare_queue(q)
        self.conn.bind(OTHER, ALL_QUEUE)

    def grow(self, size: int) -> None:
        with self.broker.store.transaction():  # one transaction: the binds join it
            for i in range(self.size, size):
                self.conn.bind(EXCHANGE, QUEUES[i % len(QUEUES)], pattern(i))
        self.size = size

    def touch(self) -> None:
        """Empty the queues, then bind and unbind ``#``: a binding change, so that caches
        start afresh."""
        self.take()
        self.conn.bind(EXCHANGE, ALL_QUEUE, "#")
        self.conn.unbind(EXCHANGE, ALL_QUEUE, "#")

    def take(self) -> int:
        """Messages in the queues (purged)."""
        return sum(self.conn.purge_queue(q) for q in [*QUEUES, ALL_QUEUE])

    def close(self) -> None:
        self.conn.close()
        self.broker.close()


class Took(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of the measured process


def timed(argv: list[str], env: dict[str, str], data: bytes, timeout: float) -> Took | None:
    """The time one process fed ``data`` took; None when it ran past ``timeout``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, input=data, env=env, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {shlex.join(argv)}\n"
                         f"{proc.stderr.decode(errors='replace')}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Took(wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


class Figure:
    """Messages/s, the best of the runs (noise on a shared machine only ever slows a run
    down), by wall time and by the CPU time of the process measured (steadier on a busy
    machine), or a bound after a timeout."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []
        self.bound: float | None = None

    def add(self, count: int, took: Took | None, timeout: float) -> None:
        if took is None:
            self.bound = count / timeout
        else:
            self.rates.append(count / took.wall)
            self.cpu_rates.append(count / max(took.cpu, 1e-3))

    @property
    def value(self) -> float:
        return max(self.rates) if self.rates else (self.bound or 0.0)

    @property
    def cpu_value(self) -> float | None:
        return max(self.cpu_rates) if self.cpu_rates else None

    def shown(self, base: Figure) -> str:
        text = f"{self.value:>9,.0f}" if self.rates else f"<{self.value:>8,.0f}"
        ratio = f"{self.value / base.value:.2f}x" if base.value else "-"
        cpu, base_cpu = self.cpu_value, base.cpu_value
        cpu_ratio = f"{cpu / base_cpu:.2f}x" if cpu and base_cpu else "-"
        return f"{text} {ratio:>6} {cpu_ratio:>6}"


def send_runs(args: argparse.Namespace, setup: Setup, env: dict[str, str],
              size: int) -> tuple[Figure, Figure, Figure]:
    lines = b"".join(b"%08d\n" % i for i in range(args.count))
    keys = matching_keys(size, args.keys)
    objects = "".join(json.dumps({"body": f"{n:08d}", "routing_key": keys[n % len(keys)]})
                      + "\n" for n in range(args.count)).encode()
    line_fig, json_fig, other = Figure(), Figure(), Figure()
    amq = args.amq
    for _ in range(args.runs):
        for figure, argv, data in ((line_fig, ["a.0.x", "--lines"], lines),
                                   (json_fig, ["--format", "json"], objects)):
            if figure.bound is not None:
                continue  # timed out once: not again
            setup.touch()
            took = timed(amq + ["send", "-e", EXCHANGE, *argv], env, data, args.timeout)
            figure.add(args.count, took, args.timeout)
            check(setup, args.count if took is not None else None)
        took = timed(amq + ["send", "-e", OTHER, "k", "x"], env, b"", args.timeout)
        other.rates.append(took.wall if took else args.timeout)
        other.cpu_rates.append(took.cpu if took else args.timeout)
        check(setup, 1)
    return line_fig, json_fig, other


def check(setup: Setup, expected: int | None) -> None:
    got = setup.take()
    if expected is not None and got != expected:
        raise SystemExit(f"expected {expected} messages in the queues, found {got}")


def start_server(amq: list[str], store: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(amq + ["broker", "serve", "--port", "0", "--url", f"local:{store}",
                                   "--log-level", "warning"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"amq broker serve did not start: {line!r}")
    host, port = line.split()[-1].rsplit(":", 1)
    return proc, f"amqp://guest:guest@{host}:{port}/%2F"


def serve_runs(args: argparse.Namespace, setup: Setup, store: str, size: int) -> Figure:
    import pika  # here: only this part needs it

    keys = matching_keys(size, args.keys)
    figure = Figure()
    proc, url = start_server(args.amq, store)
    try:
        setup.touch()
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()

        def publish(count: int) -> Took | None:
            start, cpu = time.perf_counter(), cpu_seconds(proc.pid)
            try:
                for n in range(count):
                    ch.basic_publish(EXCHANGE, keys[n % len(keys)], b"%08d" % n)
                    if n % 100 == 0 and time.perf_counter() - start > args.timeout:
                        return None  # given up: the server is stopped with its backlog
                ch.queue_declare(QUEUES[0], passive=True)  # synchronous: after all of them
            except pika.exceptions.AMQPError:  # a server too busy to answer heartbeats
                return None
            return Took(time.perf_counter() - start, cpu_seconds(proc.pid) - cpu)

        warm = min(args.keys, args.serve_count)
        if publish(warm) is None:  # warm-up: the index, the keys
            figure.add(args.serve_count, None, args.timeout)
            return figure
        check(setup, warm)
        for _ in range(args.runs):
            took = publish(args.serve_count)
            figure.add(args.serve_count, took, args.timeout)
            if took is None:
                return figure
            check(setup, args.serve_count)
        with contextlib.suppress(pika.exceptions.AMQPError):
            conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()  # still busy with the backlog of a run given up
            proc.wait()
    return figure


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,1000,10000,100000",
                    help="binding counts, comma-separated, the first one the baseline")
    ap.add_argument("--count", type=int, default=20_000, help="messages per amq send")
    ap.add_argument("--keys", type=int, default=1_000, help="distinct routing keys (json)")
    ap.add_argument("--serve-count", type=int, default=5_000,
                    help="single publishes per run through amq broker serve")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (the best counts)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds before one amq send is given up")
    ap.add_argument("--amq", type=shlex.split, default=None,
                    help="the amq command to measure (default: this venv's)")
    ap.add_argument("--no-serve", action="store_true", help="leave out amq broker serve")
    args = ap.parse_args()
    args.amq = args.amq or amq_default()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def main() -> None:
    args = parse_args()
    print(f"{shlex.join(args.amq)}: {args.count:,} messages per amq send, {args.keys:,} keys "
          f"for json, {args.serve_count:,} single publishes through amq broker serve; "
          f"best of {args.runs} runs; ratios against the {args.sizes[0]:,}-bindings row",
          flush=True)
    columns = [f"{c + ' msg/s':>16} {'cpu':>6}" for c in ("lines", "json", "serve")]
    print(f"{'bindings':>9}  {'  '.join(columns)}  {'other send ms':>13} {'cpu':>5}")
    base: tuple[Figure, Figure, Figure] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "topic.db")
        env = dict(os.environ, AMQ_URL=f"local:{store}")
        setup = Setup(store)
        try:
            for _ in range(2):  # warm-up: the first processes of a run load cold files
                timed(args.amq + ["send", "-e", OTHER, "k", "x"], env, b"", args.timeout)
            for size in args.sizes:
                setup.grow(size)
                lines, objects, other = send_runs(args, setup, env, size)
                serve = Figure() if args.no_serve else serve_runs(args, setup, store, size)
                row = (lines, objects, serve)
                base = base or row
                shown = "  ".join(f.shown(b) for f, b in zip(row, base, strict=True))
                other_cpu = min(other.cpu_rates) * 1000
                other_wall = min(other.rates) * 1000  # seconds there, not rates: the least
                print(f"{size:>9,}  {shown}  {other_wall:>13.1f} {other_cpu:>5.0f}",
                      flush=True)
        finally:
            setup.close()


if __name__ == "__main__":
    main()
