"""Jobs per second of `amq receive --exec true` on the local broker, beside a baseline.

What it measures, each the median of --runs runs on a fresh store file:
- baseline: this script running `sh -c true` N times one after another (subprocess,
  no broker): the floor any per-message command runner pays per job;
- `amq receive q --exec true --count N` with --prefetch 1 and with --prefetch 4 (N
  messages queued first by `amq send --lines`, not timed).

The figures show what amq adds per job over starting the command itself (the per-job
supervisor that kills a command's process group when the worker dies, the fetch and the
ack). ``--other "CMD"`` adds the same rows for another amq (for example an older
checkout: ``--other "env PYTHONPATH=/tmp/old python -m amqcli"``), interleaved, for a
before/after in one run. Usage: python benchmarks/exec_throughput.py [--count N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import tempfile
import time

from procs import amq_default as amq


def baseline(count: int) -> float:
    t = time.perf_counter()
    for _ in range(count):
        subprocess.run(["sh", "-c", "true"], check=True)
    return count / (time.perf_counter() - t)


def exec_rate(count: int, prefetch: int, command: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
        data = b"".join(b"%d\n" % i for i in range(count))
        subprocess.run(command + ["send", "jobs", "--lines", "-q"], input=data, env=env,
                       check=True, stderr=subprocess.DEVNULL)
        t = time.perf_counter()
        subprocess.run(command + ["receive", "jobs", "--exec", "true", "--count", str(count),
                                "--prefetch", str(prefetch)], env=env, check=True)
        return count / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--other", metavar="CMD", help="another amq command line to compare")
    args = ap.parse_args()
    rows = [("baseline: sh -c true in a loop", lambda: baseline(args.count))]
    amqs = [("amq", amq())] + ([("other", shlex.split(args.other))] if args.other else [])
    for label, command in amqs:
        for prefetch in (1, 4):
            rows.append((f"{label} receive --exec true --prefetch {prefetch}",
                         lambda p=prefetch, c=command: exec_rate(args.count, p, c)))
    results = {label: [] for label, _ in rows}
    for _ in range(args.runs):  # interleaved, so machine noise hits every row alike
        for label, run in rows:
            results[label].append(run())
    base = statistics.median(results[rows[0][0]])
    for label, rates in results.items():
        median = statistics.median(rates)
        print(f"{label:45} {args.count} jobs: median {median:7.0f} jobs/s  "
              f"best {max(rates):7.0f}  ({median / base:.2f}x baseline)")


if __name__ == "__main__":
    main()
