"""How closely `amq replay --speed 1` reproduces a capture's gaps.

It writes a capture of N messages (default 300) whose `received_at` gaps are drawn from
an exponential distribution (mean --gap ms, default 20, with a few gaps of 0 and some of
200 ms), then, for each broker (a fresh local store; RabbitMQ at --url, skipped when
unreachable), starts `amq tap X --format json` on a fanout exchange and runs `amq replay
--speed 1` of the capture to it. The tap's own `received_at` times are the replay as a
consumer sees it. It prints, over the messages: the error of each message's time since the
first (replayed minus captured, less its median: a constant delay is no pacing error),
p50/p99/max in ms, and of each gap, p50/p99/max (the
target: within 10 ms at p99), and how many arrived (all, in order). Figures only.

Usage: python benchmarks/replay_pacing.py [--count N] [--gap MS] [--url URL]
                                          [--broker local|rabbitmq|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
import uuid

from procs import amq_default, rabbitmq_problem

from amqcli.formats import from_rfc3339, rfc3339

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def capture(exchange: str, count: int, mean_gap: float) -> tuple[bytes, list[float]]:
    rng = random.Random(13)
    t, times, lines = 1_700_000_000.0, [], []
    for i in range(count):
        times.append(t)
        lines.append(json.dumps({"body": str(i), "exchange": exchange, "routing_key": "",
                                 "received_at": rfc3339(t)}))
        r = rng.random()
        t += 0.0 if r < 0.05 else 0.2 if r > 0.97 else rng.expovariate(1000 / mean_gap)
    return ("\n".join(lines) + "\n").encode(), [from_rfc3339(rfc3339(x)) for x in times]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def amq_ok(amq: list[str], env: dict[str, str], *args: str, data: bytes = b"") -> None:
    proc = subprocess.run([*amq, *args], input=data, env=env, capture_output=True,
                          check=False)
    if proc.returncode:
        raise SystemExit(f"amq {' '.join(args)}: exit {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace')}")


def measure(label: str, url: str, count: int, gap: float, tmp: str) -> None:
    amq = amq_default()
    env = dict(os.environ, AMQ_URL=url)
    x = f"replaybench-{uuid.uuid4().hex[:6]}"
    amq_ok(amq, env, "declare", "exchange", x, "--type", "fanout")
    data, captured = capture(x, count, gap)
    out_path = os.path.join(tmp, f"{label}.jsonl")
    try:
        with open(out_path, "wb") as out:
            tap = subprocess.Popen([*amq, "tap", x, "--count", str(count), "--timeout", "30",
                                    "--format", "json"], env=env, stdout=out,
                                   stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while x not in subprocess.run([*amq, "list", "bindings", "-F", "tsv"], env=env,
                                          capture_output=True).stdout.decode():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{label}: the tap did not bind")
                time.sleep(0.1)
            amq_ok(amq, env, "replay", "--speed", "1", data=data)
            tap.wait(timeout=120)
        with open(out_path, "rb") as f:
            got = [json.loads(line) for line in f.read().splitlines()]
    finally:
        subprocess.run([*amq, "delete", "exchange", x], env=env, capture_output=True)
    order = [int(m["body"]) for m in got]
    replayed = [from_rfc3339(m["received_at"]) for m in got]
    n = min(len(replayed), len(captured))
    drift = [((replayed[i] - replayed[0]) - (captured[i] - captured[0])) * 1000
             for i in range(n)]
    gaps = [abs((replayed[i] - replayed[i - 1]) - (captured[i] - captured[i - 1])) * 1000
            for i in range(1, n)]
    span = captured[n - 1] - captured[0]
    shift = pct(drift, 50)  # a constant delay is no pacing error
    offsets = [abs(d - shift) for d in drift]
    print(f"{label:9} {len(got)}/{count} arrived, in order: {order == list(range(count))}; "
          f"capture {span:.1f} s; time since the first, error ms (less the median {shift:+.2f}) "
          f"p50 {pct(offsets, 50):.2f} "
          f"p99 {pct(offsets, 99):.2f} max {max(offsets):.2f}; each gap, error ms p50 "
          f"{pct(gaps, 50):.2f} p99 {pct(gaps, 99):.2f} max {max(gaps):.2f} (target p99 <= 10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--gap", type=float, default=20.0, help="mean gap, ms")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--broker", choices=["local", "rabbitmq", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.broker in ("local", "both"):
            measure("local", f"local:{tmp}/replay.db", args.count, args.gap, tmp)
        if args.broker in ("rabbitmq", "both"):
            problem = rabbitmq_problem(args.url)
            if problem:
                print(f"rabbitmq  skipped: {problem}")
                return
            measure("rabbitmq", args.url, args.count, args.gap, tmp)


if __name__ == "__main__":
    main()
