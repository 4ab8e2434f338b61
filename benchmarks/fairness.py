"""How `amq receive --prefetch 1` receivers on one queue share its messages, local broker.

For 2 and 8 receivers (--receivers) `amq receive tasks --prefetch 1` are started on a fresh
store file; once the store shows them all as consumers, `seq 1 N | amq send tasks --lines`
publishes N messages (--count, default 200; and 20, the figure quoted for two receivers).
Each receiver consumes in one of four ways:

- file:  stdout a regular file (each message acknowledged once written: keeps up);
- pipe:  stdout a pipe this script reads at once (acknowledged once the reader has taken
         it and is still there, a tenth of a second later);
- exec:  `--exec` appending the body to a file of its own (keeps up);
- slow:  the same, but receiver 1's command sleeps 0.05 s first (`--exec 'sleep 0.05; ...'`).

It prints, per row, the messages each receiver got, duplicates and missing (over all the
receivers' outputs: each message should be delivered once) and the seconds from the start
of `amq send` until the last one came out. Round-robin among consumers with room gives N/k
each when all keep up (RabbitMQ gives 10/10 for 20 messages to two on a quiet machine); a
slow receiver should get fewer, not hold up the rest.
Receivers are stopped with SIGINT (SIGKILL after 10 s) whatever happens.

Usage: python benchmarks/fairness.py [--receivers 2,8] [--count 20,200]
                                     [--modes file,pipe,exec,slow] [--amq CMD]
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import subprocess
import tempfile
import threading
import time
from typing import IO

from procs import amq_default, queue_row, stop

QUEUE = "tasks"
MODES = ("file", "pipe", "exec", "slow")
SLOW = "sleep 0.05; "


class Receiver:
    """One `amq receive tasks --prefetch 1` and the bodies it has put out so far."""

    def __init__(self, amq: list[str], env: dict[str, str], mode: str, index: int,
                 tmp: str) -> None:
        self.path = os.path.join(tmp, f"r{index}.out")
        self.pipe_lines: list[bytes] = []
        argv = amq + ["receive", QUEUE, "--prefetch", "1"]
        stdout: int | IO[bytes] = subprocess.DEVNULL
        if mode in ("exec", "slow"):
            pause = SLOW if mode == "slow" and index == 0 else ""
            argv += ["--exec", f"{pause}{{ cat; echo; }} >> {shlex.quote(self.path)}"]
        elif mode == "file":
            stdout = open(self.path, "wb")  # noqa: SIM115 - closed once the process is up
        else:
            stdout = subprocess.PIPE
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.DEVNULL)
        if not isinstance(stdout, int):
            stdout.close()
        if mode == "pipe":
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.pipe_lines.append(line.rstrip(b"\n"))

    def bodies(self) -> list[bytes]:
        if self.proc.stdout is not None:
            return list(self.pipe_lines)
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return data.split(b"\n")[:data.count(b"\n")]  # complete lines only


def consumers(amq: list[str], env: dict[str, str], queue: str) -> int:
    return int(queue_row(amq, env, queue).get("consumers", 0))


def run(amq: list[str], receivers: int, count: int, mode: str) -> str:
    """One row of the table: what each receiver got, duplicates, missing, seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
        subprocess.run(amq + ["declare", "queue", QUEUE], env=env, check=True,
                       capture_output=True)
        rs: list[Receiver] = []
        try:
            rs = [Receiver(amq, env, mode, i, tmp) for i in range(receivers)]
            deadline = time.monotonic() + 60
            while consumers(amq, env, QUEUE) < receivers:
                if time.monotonic() > deadline or any(r.proc.poll() is not None for r in rs):
                    raise SystemExit(f"{receivers} receivers did not all register")
                time.sleep(0.1)
            data = b"".join(b"%d\n" % i for i in range(1, count + 1))
            t = time.monotonic()
            subprocess.run(amq + ["send", QUEUE, "--lines", "-q"], input=data, env=env,
                           check=True)
            deadline = t + 60 + count * 0.1
            while sum(len(r.bodies()) for r in rs) < count and time.monotonic() < deadline:
                time.sleep(0.01)
            seconds = time.monotonic() - t
            time.sleep(0.5)  # a late duplicate would show up by now
        finally:
            stop([r.proc for r in rs])
        got = [r.bodies() for r in rs]
    seen = collections.Counter(b for bodies in got for b in bodies)
    duplicates = sum(n - 1 for n in seen.values())
    missing = sum(1 for i in range(1, count + 1) if b"%d" % i not in seen)
    shares = "/".join(str(len(b)) for b in got)
    return (f"{receivers:>9}  {mode:>5}  {count:>5}  {shares:<36} {duplicates:>4}  "
            f"{missing:>7}  {seconds:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--receivers", default="2,8", help="comma-separated receiver counts")
    ap.add_argument("--count", default="20,200", help="comma-separated message counts")
    ap.add_argument("--modes", default=",".join(MODES), help="of " + ",".join(MODES))
    ap.add_argument("--amq", help="the amq command to measure (default: this venv's)")
    args = ap.parse_args()
    amq = shlex.split(args.amq) if args.amq else amq_default()
    modes = args.modes.split(",")
    if not set(modes) <= set(MODES):
        raise SystemExit(f"--modes: choose from {','.join(MODES)}")
    print(f"amq = {shlex.join(amq)}")
    print("`amq receive tasks --prefetch 1` x k, then `seq 1 N | amq send tasks --lines`; "
          "local broker (slow: receiver 1 sleeps 0.05 s a message)")
    print(f"{'receivers':>9}  {'mode':>5}  {'N':>5}  {'messages each (r1/r2/...)':<36} "
          f"{'dups':>4}  {'missing':>7}  {'s, from send':>12}")
    for receivers in (int(k) for k in args.receivers.split(",")):
        for count in (int(n) for n in args.count.split(",")):
            for mode in modes:
                print(run(amq, receivers, count, mode), flush=True)


if __name__ == "__main__":
    main()
