"""`amq receive --count N | wc -l`: draining into a pipe, beside draining into a file.

Into a pipe, `amq receive` acknowledges a message only once the reader has taken its
bytes out of the pipe and is still there a little later (README, "Messages in
pipelines"); into a regular file it acknowledges after the write, as it always has. This
prints, for the local broker (a fresh store file) and for RabbitMQ (--url, skipped when
unreachable), messages/s (median and best of --runs runs) of:

a. `amq receive Q --count N | wc -l`   (stdout a pipe: the careful path), the line count
   checked;
b. `amq receive Q --count N > FILE`    (stdout a regular file: ack after the write), the
   baseline, measured in the same run;

and the ratio a/b of the medians "(target >= 0.8)", with the CPU seconds of each pipeline
(user + system, median), steadier than wall time on a busy machine. Each run refills the
queue (untimed, with `amq send --lines`) and checks it is empty afterwards. `--amq "CMD
..."` measures another `amq` (for example an older checkout's venv) with the same script.

Usage: python benchmarks/pipe_throughput.py [--count N] [--size B] [--runs R] [--url URL]
                                            [--amq CMD] [--broker local|rabbitmq|both]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import time
import uuid

from procs import amq_default

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def run(argv: list[str], env: dict[str, str], data: bytes = b"") -> bytes:
    proc = subprocess.run(argv, input=data, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {shlex.join(argv)}\n"
                         f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def timed_shell(cmd: str, env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall seconds, CPU seconds (user + system, of the whole pipeline) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = run(["bash", "-o", "pipefail", "-c", cmd], env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, out


def ready(amq: list[str], env: dict[str, str], queue: str) -> int:
    import json
    rows = json.loads(run(amq + ["list", "queues", "--format", "json"], env))
    return next((q["messages"] for q in rows if q["name"] == queue), 0)


def bench(amq: list[str], env: dict[str, str], queue: str, count: int, size: int,
          runs: int, label: str) -> None:
    data = b"".join((b"%08d" % i + b"x" * size)[:size] + b"\n" for i in range(count))
    amq_s = shlex.join(amq)
    pipe, file = [], []
    cpu: dict[str, list[float]] = {"pipe": [], "file": []}
    run(amq + ["declare", "queue", queue], env)
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "out")
        for _ in range(runs):
            for rates, cmd in ((pipe, f"{amq_s} receive {queue} --count {count} | wc -l"),
                               (file, f"{amq_s} receive {queue} --count {count} > {target}")):
                run(amq + ["purge", queue], env)
                run(amq + ["send", queue, "--lines"], env, data)
                seconds, used, out = timed_shell(cmd, env)
                cpu["pipe" if rates is pipe else "file"].append(used)
                if "wc" in cmd and int(out) != count:
                    raise SystemExit(f"{cmd}: {int(out)} lines, expected {count}")
                if "wc" not in cmd and os.path.getsize(target) != len(data):
                    raise SystemExit(f"{cmd}: {os.path.getsize(target)} bytes written")
                left = ready(amq, env, queue)
                if left:
                    raise SystemExit(f"{cmd}: {left} messages left in the queue")
                rates.append(count / seconds)
    a, b = statistics.median(pipe), statistics.median(file)
    print(f"{label}: {count} x {size} B, {runs} runs")
    ca, cb = statistics.median(cpu["pipe"]), statistics.median(cpu["file"])
    print(f"  a. receive --count N | wc -l   median {a:9.0f} msg/s  best {max(pipe):9.0f}"
          f"  CPU {ca:5.2f} s")
    print(f"  b. receive --count N > FILE    median {b:9.0f} msg/s  best {max(file):9.0f}"
          f"  CPU {cb:5.2f} s")
    print(f"  ratio a/b {a / b:5.2f}  (target >= 0.8)  CPU a/b {ca / cb:5.2f}")


def rabbitmq_reachable(url: str) -> bool:
    try:
        import pika
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except Exception:  # noqa: BLE001 - any failure: skip that broker
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--amq", help="the amq command to measure (default: this venv's)")
    ap.add_argument("--broker", choices=["local", "rabbitmq", "both"], default="both")
    args = ap.parse_args()
    amq = shlex.split(args.amq) if args.amq else amq_default()
    print(f"amq = {shlex.join(amq)}")
    if args.broker in ("local", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, AMQ_URL=f"local:{tmp}/bench.db")
            bench(amq, env, "bench", args.count, args.size, args.runs, "local broker")
    if args.broker in ("rabbitmq", "both"):
        if not rabbitmq_reachable(args.url):
            print(f"RabbitMQ at {args.url}: unreachable, skipped")
            return
        env = dict(os.environ, AMQ_URL=args.url)
        queue = f"bench-pipe-{uuid.uuid4().hex[:8]}"
        try:
            bench(amq, env, queue, args.count, args.size, args.runs, f"RabbitMQ {args.url}")
        finally:
            subprocess.run(amq + ["delete", "queue", queue], env=env, capture_output=True,
                           check=False)


if __name__ == "__main__":
    main()
