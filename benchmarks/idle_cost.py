"""CPU cost of idle `amq receive` processes on the local broker: receivers waiting, nothing sent.

For each count of receivers (--receivers, default 1, 20, 50 and 200) this starts that many
`amq receive qN` on a fresh store file (25 at a time), each on its own queue so none has
anything to receive, waits until the store shows every one as a consumer, lets them settle
(--settle seconds: start-up is over), then sums the CPU time (utime + stime of
/proc/PID/stat) they use over a --window second window. It prints, per count, the total in
% of one core and the share of one receiver, beside the goal for 50 receivers (at most 3%
of a core in total: a waiting receiver should sleep until something is there for it).

The receivers write to /dev/null and are stopped (SIGINT, then SIGKILL) whatever happens.
`--amq "CMD ..."` measures another `amq` (for example an older checkout's venv).

Usage: python benchmarks/idle_cost.py [--receivers 1,20,50,200] [--window S] [--settle S]
                                      [--amq CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time

from procs import amq_default, cpu_seconds, queues, stop, wait_registered

GOAL = (50, 3.0)  # 50 idle receivers: at most 3% of a core in total
WAVE = 25  # receivers started at once: a storm of start-ups is not what this measures


def consumers(amq: list[str], env: dict[str, str]) -> int:
    """How many consumers the store shows, over all queues."""
    return sum(q["consumers"] for q in queues(amq, env))


def measure(amq: list[str], count: int, window: float, settle: float) -> float:
    """Total CPU of ``count`` idle receivers over ``window`` seconds, in % of a core."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
        subprocess.run(amq + ["declare", "queue", "q0"], env=env, check=True,
                       capture_output=True)  # the store exists before they start
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for start in range(0, count, WAVE):
                for i in range(start, min(count, start + WAVE)):
                    with open(f"{tmp}/err{i}", "wb") as err:
                        procs.append(subprocess.Popen(
                            amq + ["receive", f"q{i}"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err))
                wait_registered(lambda: consumers(amq, env), procs, tmp)
            time.sleep(settle)
            before = sum(cpu_seconds(p.pid) for p in procs)
            t = time.monotonic()
            time.sleep(window)
            used = sum(cpu_seconds(p.pid) for p in procs) - before
            elapsed = time.monotonic() - t
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a receiver exited during the window")
            return 100 * used / elapsed
        finally:
            stop(procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--receivers", default="1,20,50,200",
                    help="comma-separated counts of idle receivers")
    ap.add_argument("--window", type=float, default=10.0, help="seconds measured")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after all registered, before the window")
    ap.add_argument("--amq", help="the amq command to measure (default: this venv's)")
    args = ap.parse_args()
    amq = shlex.split(args.amq) if args.amq else amq_default()
    counts = [int(c) for c in args.receivers.split(",")]
    print(f"amq = {shlex.join(amq)}")
    print(f"idle `amq receive qN` (each its own empty queue), local broker, "
          f"{args.window:g} s window after {args.settle:g} s settling; "
          f"{os.cpu_count()} CPUs")
    print(f"{'receivers':>9}  {'total % core':>12}  {'per receiver':>12}")
    for count in counts:
        total = measure(amq, count, args.window, args.settle)
        goal = f"  (goal <= {GOAL[1]:g}%)" if count == GOAL[0] else ""
        print(f"{count:>9}  {total:>11.1f}%  {total / count:>11.2f}%{goal}", flush=True)


if __name__ == "__main__":
    main()
