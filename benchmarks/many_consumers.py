"""Many receiver processes and senders on one queue: each message delivered exactly once.

On a fresh local store file (and, with --broker rabbitmq|both, on the RabbitMQ at --url
with smaller counts) this starts --receivers `amq receive tasks --format json`, each
writing to a file of its own, waits until the broker shows them all as consumers, then
runs --senders `amq send tasks --lines` at once, together publishing --messages unique
bodies. Once every body has come out (or --deadline passes) the receivers get SIGINT.

It prints, per run: the seconds from the senders' start until the last new body came out,
messages/s, how the messages spread over the receivers (min / median / max, and how many
got none), duplicates and missing bodies over all the outputs, and what the queue holds
after (ready / unacked: 0 / 0).

The "kill -9" run kills --kill receivers (those that have put out most) once half the
bodies have come out. Everything must still come out at least once; a body may come out
twice only if its later copies are flagged redelivered (`"redelivered": true`): those
that are not are counted as "unflagged". What a killed receiver wrote before it died
counts as delivered.

Usage: python benchmarks/many_consumers.py [--receivers N] [--senders N] [--messages N]
           [--kill N] [--broker local|rabbitmq|both] [--url URL]
           [--rabbitmq-receivers N] [--rabbitmq-messages N] [--amq CMD]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import NamedTuple

from procs import amq_default, queue_row, stop

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class Output:
    """A receiver's JSON lines, read as they grow: (body, redelivered) of each."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.messages: list[tuple[str, bool]] = []

    def read(self) -> list[tuple[str, bool]]:
        """The messages written since the last read (complete lines only)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        new = []
        for line in lines:
            m = json.loads(line)
            new.append((m["body"], bool(m["redelivered"])))
        self.messages += new
        return new


class Tally(NamedTuple):
    seconds: float
    per_receiver: list[int]
    duplicates: int
    unflagged: int  # duplicates without the redelivered flag on enough of their copies
    missing: int
    ready: int
    unacked: int


def tally(outputs: list[Output], bodies: list[str]) -> tuple[int, int, int]:
    """Duplicates, unflagged duplicates and missing, over all the outputs."""
    copies: collections.Counter[str] = collections.Counter()
    flagged: collections.Counter[str] = collections.Counter()
    for out in outputs:
        for body, redelivered in out.messages:
            copies[body] += 1
            flagged[body] += redelivered
    duplicates = sum(n - 1 for n in copies.values())
    unflagged = sum(max(0, n - 1 - flagged[b]) for b, n in copies.items())
    missing = sum(1 for b in bodies if b not in copies)
    return duplicates, unflagged, missing


def run(amq: list[str], env: dict[str, str], queue: str, receivers: int, senders: int,
        messages: int, kill: int, deadline: float) -> Tally:
    with tempfile.TemporaryDirectory() as tmp:
        bodies = [f"s{j:02d}-m{i:07d}" for j in range(senders)
                  for i in range(messages // senders + (j < messages % senders))]
        outputs = [Output(os.path.join(tmp, f"r{i}.jsonl")) for i in range(receivers)]
        procs: list[subprocess.Popen[bytes]] = []
        sending: list[subprocess.Popen[bytes]] = []
        try:
            for out in outputs:
                with open(out.path, "wb") as f:
                    procs.append(subprocess.Popen(
                        amq + ["receive", queue, "--format", "json"], env=env,
                        stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL))
            give_up = time.monotonic() + 60 + receivers
            while queue_row(amq, env, queue).get("consumers", 0) < receivers:
                if time.monotonic() > give_up or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"{receivers} receivers did not all register")
                time.sleep(0.5)
            for j in range(senders):
                path = os.path.join(tmp, f"s{j}.txt")
                with open(path, "w") as f:
                    f.writelines(b + "\n" for b in bodies if b.startswith(f"s{j:02d}-"))
            t = time.monotonic()
            for j in range(senders):
                with open(os.path.join(tmp, f"s{j}.txt"), "rb") as f:
                    sending.append(subprocess.Popen(
                        amq + ["send", queue, "--lines", "-q"], env=env, stdin=f,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            seen: set[str] = set()
            last_new = t
            killed = False
            while len(seen) < messages and time.monotonic() < t + deadline:
                time.sleep(0.1)
                for out in outputs:
                    new = out.read()
                    if new:
                        seen.update(b for b, _r in new)
                        last_new = time.monotonic()
                if kill and not killed and len(seen) >= messages // 2:
                    busiest = sorted(range(receivers), key=lambda i: -len(outputs[i].messages))
                    for i in busiest[:kill]:
                        procs[i].kill()
                        procs[i].wait()
                    killed = True
            seconds = last_new - t
            for s in sending:
                if s.wait(timeout=60) != 0:
                    raise SystemExit(f"a sender exited {s.returncode}")
            time.sleep(1)  # a late duplicate would show up by now
        finally:
            stop(sending + procs)
        for out in outputs:
            out.read()
        row = queue_row(amq, env, queue)
        duplicates, unflagged, missing = tally(outputs, bodies)
        return Tally(seconds, [len(o.messages) for o in outputs], duplicates, unflagged,
                     missing, row.get("messages", -1), row.get("unacked", -1))


def show(label: str, messages: int, result: Tally) -> None:
    spread = sorted(result.per_receiver)
    idle = sum(1 for n in spread if n == 0)
    print(f"{label:<30} {result.seconds:>7.1f} {messages / max(result.seconds, 1e-9):>8.0f} "
          f"{f'{spread[0]}/{statistics.median(spread):g}/{spread[-1]}':>20} {idle:>4} "
          f"{result.duplicates:>5} {result.unflagged:>9} {result.missing:>7}   "
          f"{result.ready}/{result.unacked}", flush=True)


def header() -> None:
    print(f"{'run':<30} {'seconds':>7} {'msg/s':>8} {'each: min/median/max':>20} {'none':>4} "
          f"{'dups':>5} {'unflagged':>9} {'missing':>7}   after: ready/unacked")


def bench(amq: list[str], env: dict[str, str], queue: str, label: str, receivers: int,
          senders: int, messages: int, kill: int, deadline: float) -> None:
    print(f"{label}: {receivers} receivers, {senders} senders, {messages} messages")
    header()
    show("all delivered", messages,
         run(amq, env, queue, receivers, senders, messages, 0, deadline))
    if kill:
        subprocess.run(amq + ["purge", queue], env=env, capture_output=True, check=True)
        show(f"kill -9 {kill} receivers midway", messages,
             run(amq, env, queue, receivers, senders, messages, kill, deadline))


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
            bench(amq, env, "tasks", "local broker", args.receivers, args.senders,
                  args.messages, args.kill, args.deadline)
    if args.broker in ("rabbitmq", "both"):
        if not rabbitmq_reachable(args.url):
            print(f"RabbitMQ at {args.url}: unreachable, skipped")
            return
        env = dict(os.environ, AMQ_URL=args.url)
        queue = f"bench-many-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(amq + ["declare", "queue", queue], env=env, check=True,
                           capture_output=True)
            bench(amq, env, queue, f"RabbitMQ {args.url}", args.rabbitmq_receivers,
                  min(args.senders, args.rabbitmq_receivers), args.rabbitmq_messages,
                  min(args.kill, args.rabbitmq_receivers // 4), args.deadline)
        finally:
            subprocess.run(amq + ["delete", "queue", queue], env=env, capture_output=True,
                           check=False)


if __name__ == "__main__":
    main()
