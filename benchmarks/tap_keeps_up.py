"""Does `amq tap` keep up with a bulk `amq send --lines` to a fanout exchange?

For each broker (a fresh local store; RabbitMQ at --url, skipped when unreachable), it
declares a fanout exchange with one bound queue (so the publishes are routed; the
queue is purged after), starts `amq tap X --count N > FILE` (raw, one body per line), waits
for the tap's binding, then times `amq send -e X "" --lines` of N numbered lines
(default 100,000) and waits for the tap to end. It prints the send's messages/s, the tap's
(from its first to its last line, by the file's growth: to the end of the send), how long
after the send the tap finished, and how many of the N lines are missing from the tap's
output (the goal: none), or duplicated. Figures only.

Usage: python benchmarks/tap_keeps_up.py [--count N] [--url URL] [--broker local|rabbitmq|both]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid

from procs import amq_default, rabbitmq_problem

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def run(amq: list[str], env: dict[str, str], *args: str, data: bytes = b"") -> None:
    proc = subprocess.run([*amq, *args], input=data, env=env, capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"amq {' '.join(args)} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace')}")


def tap_bound(amq: list[str], env: dict[str, str], exchange: str) -> bool:
    out = subprocess.run([*amq, "list", "bindings", "-F", "tsv"], env=env,
                         capture_output=True, check=False).stdout.decode()
    return any(line.split("\t")[0] == exchange and "amq.gen-" in line
               for line in out.splitlines())


def measure(label: str, url: str, count: int, tmp: str) -> None:
    amq = amq_default()
    env = dict(os.environ, AMQ_URL=url)
    x, q = f"tapbench-{uuid.uuid4().hex[:6]}", f"tapbench-q-{uuid.uuid4().hex[:6]}"
    run(amq, env, "declare", "exchange", x, "--type", "fanout")
    run(amq, env, "declare", "queue", q)
    run(amq, env, "bind", x, q)
    out_path = os.path.join(tmp, f"{label}.out")
    try:
        with open(out_path, "wb") as out:
            tap = subprocess.Popen([*amq, "tap", x, "--count", str(count), "--timeout", "60"],
                                   env=env, stdout=out, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not tap_bound(amq, env, x):
                if time.monotonic() > deadline or tap.poll() is not None:
                    raise SystemExit(f"{label}: the tap did not bind")
                time.sleep(0.1)
            data = b"".join(b"%d\n" % i for i in range(count))
            t0 = time.perf_counter()
            run(amq, env, "send", "-e", x, "", "--lines", data=data)
            sent = time.perf_counter() - t0
            tap.wait(timeout=300)
            done = time.perf_counter() - t0
        with open(out_path, "rb") as f:
            lines = f.read().splitlines()
        seen = set(lines)
        missing = count - len(seen & {b"%d" % i for i in range(count)})
        print(f"{label:9} send --lines {count:,}: {count / sent:9,.0f} msg/s ({sent:.2f} s); "
              f"tap done {done - sent:+.2f} s after the send ({count / done:9,.0f} msg/s "
              f"overall); missing {missing}, duplicated {len(lines) - len(seen)}, "
              f"exit {tap.returncode}")
    finally:
        subprocess.run([*amq, "delete", "queue", q], env=env, capture_output=True)
        subprocess.run([*amq, "delete", "exchange", x], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--broker", choices=["local", "rabbitmq", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.broker in ("local", "both"):
            measure("local", f"local:{tmp}/tap.db", args.count, tmp)
        if args.broker in ("rabbitmq", "both"):
            problem = rabbitmq_problem(args.url)
            if problem:
                print(f"rabbitmq  skipped: {problem}")
                return
            measure("rabbitmq", args.url, args.count, tmp)


if __name__ == "__main__":
    main()
