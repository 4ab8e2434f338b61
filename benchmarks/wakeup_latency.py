"""Wake-up latency of a waiting `amq receive` on the local broker: publish to output.

One `amq receive q` waits on a fresh store file with its stdout a pipe this script reads
line by line; one `amq send q --lines` runs throughout, and the script writes it one line
at a time, each carrying the time it was written (a random 10-40 ms apart, so the sends do
not keep step with any polling period). The latency of a message is the time from writing
it to the sender to reading it from the receiver: the sender's publish, the receiver's
noticing and fetching it, and its write. Printed: p50, p90, p99 and max over --messages
messages (after 10 not counted), with 0, 50 and 200 (--others) other receivers waiting on
queues of their own, beside the goal: p99 <= 5 ms with 50 others waiting.

All processes are stopped (SIGINT, then SIGKILL) whatever happens.

Usage: python benchmarks/wakeup_latency.py [--messages N] [--others 0,50,200] [--amq CMD]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import tempfile
import time

from procs import amq_default, queues, stop, wait_registered

GOAL = (50, 5.0)  # p99 in ms with 50 other receivers waiting
WARMUP = 10
WAVE = 25  # receivers started at once: a storm of start-ups is not what this measures


def consumers(amq: list[str], env: dict[str, str]) -> int:
    """How many consumers the store shows, over all queues."""
    return sum(q["consumers"] for q in queues(amq, env))


def receiver_process(amq: list[str], env: dict[str, str], queue: str, stdout: int,
                     tmp: str, index: int) -> subprocess.Popen[bytes]:
    with open(f"{tmp}/err{index}", "wb") as err:
        return subprocess.Popen(amq + ["receive", queue, "--format", "raw"], env=env,
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


def latencies(amq: list[str], others: int, messages: int) -> list[float]:
    """Milliseconds from writing each message to the sender to reading it back."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
        subprocess.run(amq + ["declare", "queue", "q"], env=env, check=True,
                       capture_output=True)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for start in range(0, others, WAVE):
                procs += [receiver_process(amq, env, f"other{i}", subprocess.DEVNULL, tmp, i)
                          for i in range(start, min(others, start + WAVE))]
                wait_registered(lambda: consumers(amq, env), procs, tmp)
            receiver = receiver_process(amq, env, "q", subprocess.PIPE, tmp, others)
            procs.append(receiver)
            wait_registered(lambda: consumers(amq, env), procs, tmp)
            sender = subprocess.Popen(amq + ["send", "q", "--lines", "-q"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            procs.append(sender)
            time.sleep(2)  # start-up over
            assert sender.stdin is not None and receiver.stdout is not None
            result = []
            for i in range(WARMUP + messages):
                sender.stdin.write(b"%.6f %d\n" % (time.time(), i))
                sender.stdin.flush()
                line = receiver.stdout.readline()
                now = time.time()
                stamp, n = line.split()
                if int(n) != i:
                    raise SystemExit(f"message {i}: read {line!r}")
                if i >= WARMUP:
                    result.append(1000 * (now - float(stamp)))
                time.sleep(random.uniform(0.010, 0.040))
            sender.stdin.close()
            sender.wait(timeout=10)
            return result
        finally:
            stop(procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--others", default="0,50,200",
                    help="comma-separated counts of receivers waiting on other queues")
    ap.add_argument("--amq", help="the amq command to measure (default: this venv's)")
    args = ap.parse_args()
    amq = shlex.split(args.amq) if args.amq else amq_default()
    print(f"amq = {shlex.join(amq)}")
    print(f"one `amq receive q` waiting, `amq send q --lines` fed one line at a time; "
          f"publish to output, ms, {args.messages} messages; local broker, "
          f"{os.cpu_count()} CPUs")
    print(f"{'others waiting':>14}  {'p50':>6}  {'p90':>6}  {'p99':>6}  {'max':>6}  "
          f"{'mean':>6}")
    for others in (int(n) for n in args.others.split(",")):
        ms = sorted(latencies(amq, others, args.messages))
        goal = f"  (goal: p99 <= {GOAL[1]:g} ms)" if others == GOAL[0] else ""
        print(f"{others:>14}  {percentile(ms, 50):>6.1f}  {percentile(ms, 90):>6.1f}  "
              f"{percentile(ms, 99):>6.1f}  {ms[-1]:>6.1f}  {statistics.mean(ms):>6.1f}{goal}",
              flush=True)


if __name__ == "__main__":
    main()
