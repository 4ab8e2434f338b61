"""Many receiver processes and senders on one queue: each message delivered exactly once.

On a fresh local store file (and, with --broker rabbitmq|both, on the RabbitMQ at --url
with smaller counts) this starts --receivers `amq receive tasks --format json --prefetch
250` (25 at a time), each writing into a pipe this script reads (--into file: a file of
its own, acknowledged once written), waits until the broker shows them all as consumers,
then runs --senders `amq send tasks --lines` at once, together publishing --messages
unique bodies. Once every body has come out (or --deadline passes) the receivers get
SIGINT, their output still read until they are gone.

It prints, per run: the seconds from the senders' start until the last new body came out,
messages/s, how the messages spread over the receivers (min / median / max, and how many
got none), how many came out flagged redelivered, duplicates and missing bodies over all
the outputs, and what the queue holds after (ready / unacked: 0 / 0).

The "kill -9" run kills --kill receivers (those that have put out most) once half the
bodies have come out. Everything must still come out at least once; a body may come out
twice only if its later copies are flagged redelivered (`"redelivered": true`): those
that are not are counted as "unflagged". What a killed receiver wrote before it died
counts as delivered. Into a pipe a receiver holds what it wrote unacknowledged until the
reader has taken it (and a tenth of a second more), so a kill -9 hits messages in flight;
into a file the window between writing and acknowledging is short.

Usage: python benchmarks/many_consumers.py [--receivers N] [--senders N] [--messages N]
           [--kill N] [--prefetch N] [--into pipe|file] [--broker local|rabbitmq|both]
           [--url URL]
           [--rabbitmq-receivers N] [--rabbitmq-messages N] [--amq CMD]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any, NamedTuple

from procs import amq_default, queue_row, wait_registered

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
WAVE = 25  # receivers started at once


def settled_row(amq: list[str], env: dict[str, str], queue: str) -> dict[str, Any]:
    """The queue once nothing is unacked, or as it is after 15 s (RabbitMQ's management
    API, which `amq list` reads, lags by seconds)."""
    deadline = time.monotonic() + 15
    row = queue_row(amq, env, queue)
    while row.get("unacked") and time.monotonic() < deadline:
        time.sleep(0.5)
        row = queue_row(amq, env, queue)
    return row


class Output:
    """A receiver's JSON lines as they come: (body, redelivered) of each complete one."""

    def __init__(self) -> None:
        self.partial = b""
        self.messages: list[tuple[str, bool]] = []

    def feed(self, data: bytes) -> list[str]:
        """Take more of the output; the bodies of the messages it completes."""
        *lines, self.partial = (self.partial + data).split(b"\n")
        new = [json.loads(line) for line in lines]
        self.messages += [(m["body"], bool(m["redelivered"])) for m in new]
        return [m["body"] for m in new]


class Receivers:
    """The `amq receive QUEUE --format json` processes, and what came out of each: into a
    pipe read here (``into="pipe"``) or into a file of its own (``"file"``)."""

    def __init__(self, amq: list[str], env: dict[str, str], queue: str, count: int,
                 prefetch: int, into: str, tmp: str) -> None:
        self.into = into
        self.tmp = tmp
        self.outputs = [Output() for _ in range(count)]
        self.offsets = [0] * count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.selector = selectors.DefaultSelector()
        argv = amq + ["receive", queue, "--format", "json", "--prefetch", str(prefetch)]
        for start in range(0, count, WAVE):
            for i in range(start, min(count, start + WAVE)):
                self.procs.append(self._start(argv, env, i))
            wait_registered(lambda: int(queue_row(amq, env, queue).get("consumers", 0)),
                            self.procs, tmp, 0.5)

    def _start(self, argv: list[str], env: dict[str, str], i: int) -> subprocess.Popen[bytes]:
        with open(f"{self.tmp}/err{i}", "wb") as err:
            if self.into == "file":
                with open(f"{self.tmp}/out{i}", "wb") as out:
                    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err)
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=err)
        assert p.stdout is not None
        self.selector.register(p.stdout, selectors.EVENT_READ, i)
        return p

    def collect(self, wait: float) -> list[str]:
        """The bodies that came out within about ``wait`` seconds."""
        new: list[str] = []
        if self.into == "file":
            time.sleep(wait)
            for i, out in enumerate(self.outputs):
                with open(f"{self.tmp}/out{i}", "rb") as f:
                    f.seek(self.offsets[i])
                    data = f.read()
                self.offsets[i] += len(data)
                new += out.feed(data)
            return new
        for key, _events in self.selector.select(wait):
            data = os.read(key.fd, 1 << 16)
            if data:
                new += self.outputs[key.data].feed(data)
            else:  # the receiver is gone and its pipe drained
                self.selector.unregister(key.fileobj)
        return new

    def kill(self, count: int) -> None:
        """kill -9 the ``count`` receivers that have put out most."""
        busiest = sorted(range(len(self.procs)), key=lambda i: -len(self.outputs[i].messages))
        for i in busiest[:count]:
            self.procs[i].kill()
            self.procs[i].wait()

    def stop(self) -> None:
        """Ctrl+C for each, reading their output meanwhile (into a pipe, a receiver
        acknowledges what the reader took before it goes); SIGKILL after 15 s."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        while any(p.poll() is None for p in self.procs) and time.monotonic() < deadline:
            self.collect(0.05)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        while self.selector.get_map():
            self.collect(0.05)
        self.collect(0)


class Tally(NamedTuple):
    seconds: float
    per_receiver: list[int]
    redelivered: int  # copies flagged redelivered
    duplicates: int
    unflagged: int  # duplicates without the redelivered flag on enough of their copies
    missing: int
    ready: int
    unacked: int


def tally(outputs: list[Output], bodies: list[str]) -> tuple[int, int, int, int]:
    """Copies flagged redelivered, duplicates, unflagged duplicates and missing, over all
    the outputs."""
    copies: collections.Counter[str] = collections.Counter()
    flagged: collections.Counter[str] = collections.Counter()
    for out in outputs:
        for body, redelivered in out.messages:
            copies[body] += 1
            flagged[body] += redelivered
    duplicates = sum(n - 1 for n in copies.values())
    unflagged = sum(max(0, n - 1 - flagged[b]) for b, n in copies.items())
    missing = sum(1 for b in bodies if b not in copies)
    return sum(flagged.values()), duplicates, unflagged, missing


def send_all(amq: list[str], env: dict[str, str], queue: str, bodies: list[str], senders: int,
             tmp: str) -> list[subprocess.Popen[bytes]]:
    """The senders, started at once, each publishing its share of ``bodies``."""
    for j in range(senders):
        with open(f"{tmp}/send{j}", "w") as f:
            f.writelines(b + "\n" for b in bodies[j::senders])
    procs = []
    for j in range(senders):
        with open(f"{tmp}/send{j}", "rb") as f:
            procs.append(subprocess.Popen(amq + ["send", queue, "--lines", "-q"], env=env,
                                          stdin=f, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
    return procs


def run(amq: list[str], env: dict[str, str], queue: str, args: argparse.Namespace,
        receivers: int, senders: int, messages: int, kill: int) -> Tally:
    bodies = [f"m{i:07d}" for i in range(messages)]
    with tempfile.TemporaryDirectory() as tmp:
        rs: Receivers | None = None
        sending: list[subprocess.Popen[bytes]] = []
        try:
            rs = Receivers(amq, env, queue, receivers, args.prefetch, args.into, tmp)
            t = time.monotonic()
            sending = send_all(amq, env, queue, bodies, senders, tmp)
            seen: set[str] = set()
            last_new = t
            killed = False
            while len(seen) < messages and time.monotonic() < t + args.deadline:
                new = rs.collect(0.1)
                if new:
                    seen.update(new)
                    last_new = time.monotonic()
                if kill and not killed and len(seen) >= messages // 2:
                    rs.kill(kill)
                    killed = True
            seconds = last_new - t
            for s in sending:
                if s.wait(timeout=60) != 0:
                    raise SystemExit(f"a sender exited {s.returncode}")
            give_up = time.monotonic() + 1
            while time.monotonic() < give_up:
                rs.collect(0.1)  # a late duplicate would show up by now
        finally:
            for s in sending:
                if s.poll() is None:
                    s.kill()
                s.wait()
            if rs is not None:
                rs.stop()
        assert rs is not None
        row = settled_row(amq, env, queue)
        redelivered, duplicates, unflagged, missing = tally(rs.outputs, bodies)
        return Tally(seconds, [len(o.messages) for o in rs.outputs], redelivered, duplicates,
                     unflagged, missing, row.get("messages", -1), row.get("unacked", -1))


def show(label: str, messages: int, result: Tally) -> None:
    spread = sorted(result.per_receiver)
    idle = sum(1 for n in spread if n == 0)
    print(f"{label:<30} {result.seconds:>7.1f} {messages / max(result.seconds, 1e-9):>8.0f} "
          f"{f'{spread[0]}/{statistics.median(spread):g}/{spread[-1]}':>20} {idle:>4} "
          f"{result.redelivered:>6} {result.duplicates:>5} {result.unflagged:>9} "
          f"{result.missing:>7}   "
          f"{result.ready}/{result.unacked}", flush=True)


def header() -> None:
    print(f"{'run':<30} {'seconds':>7} {'msg/s':>8} {'each: min/median/max':>20} {'none':>4} "
          f"{'redel.':>6} {'dups':>5} {'unflagged':>9} {'missing':>7}   after: ready/unacked")


def bench(amq: list[str], env: dict[str, str], queue: str, label: str, args: argparse.Namespace,
          receivers: int, senders: int, messages: int, kill: int) -> None:
    print(f"{label}: {receivers} receivers (--prefetch {args.prefetch}, into a {args.into}), "
          f"{senders} senders, {messages} messages")
    header()
    show("all delivered", messages,
         run(amq, env, queue, args, receivers, senders, messages, 0))
    if kill:
        subprocess.run(amq + ["purge", queue], env=env, capture_output=True, check=True)
        show(f"kill -9 {kill} receivers midway", messages,
             run(amq, env, queue, args, receivers, senders, messages, kill))


def rabbitmq_reachable(url: str) -> bool:
    try:
        import pika
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except Exception:  # noqa: BLE001 - any failure: skip that broker
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--receivers", type=int, default=100)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--kill", type=int, default=5, help="receivers to kill -9 (0: no run)")
    ap.add_argument("--prefetch", type=int, default=250, help="of each receiver")
    ap.add_argument("--into", choices=["pipe", "file"], default="pipe",
                    help="each receiver's stdout: a pipe read here, or a file")
    ap.add_argument("--deadline", type=float, default=600,
                    help="seconds to wait for every message, per run")
    ap.add_argument("--broker", choices=["local", "rabbitmq", "both"], default="local")
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--rabbitmq-receivers", type=int, default=20)
    ap.add_argument("--rabbitmq-messages", type=int, default=20_000)
    ap.add_argument("--amq", help="the amq command to measure (default: this venv's)")
    args = ap.parse_args()
    amq = shlex.split(args.amq) if args.amq else amq_default()
    print(f"amq = {shlex.join(amq)}; {os.cpu_count()} CPUs")
    if args.broker in ("local", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
            subprocess.run(amq + ["declare", "queue", "tasks"], env=env, check=True,
                           capture_output=True)
            bench(amq, env, "tasks", "local broker", args, args.receivers, args.senders,
                  args.messages, args.kill)
    if args.broker in ("rabbitmq", "both"):
        if not rabbitmq_reachable(args.url):
            print(f"RabbitMQ at {args.url}: unreachable, skipped")
            return
        env = dict(os.environ, AMQ_URL=args.url)
        queue = f"bench-many-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(amq + ["declare", "queue", queue], env=env, check=True,
                           capture_output=True)
            bench(amq, env, queue, f"RabbitMQ {args.url}", args, args.rabbitmq_receivers,
                  min(args.senders, args.rabbitmq_receivers), args.rabbitmq_messages,
                  min(args.kill, args.rabbitmq_receivers // 4))
        finally:
            subprocess.run(amq + ["delete", "queue", queue], env=env, capture_output=True,
                           check=False)


if __name__ == "__main__":
    main()
