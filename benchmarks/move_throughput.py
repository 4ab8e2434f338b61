"""Throughput of `amq move` beside `amq send --confirm` of the same messages.

For N messages (--count, default 100,000) of --size bytes (default 100), one per line, this
prints messages/s (median of --runs runs, default 1) of three moves, each beside a
confirmed send to the same destination broker, and their ratio (goal: move >= 0.7x a
confirmed send):

1. local -> local: `amq move SRC DST` in a fresh store (a temporary file);
2. local -> RabbitMQ: `amq move SRC DST --to-url URL`;
3. RabbitMQ -> RabbitMQ: `amq move SRC DST` with AMQ_URL=URL.

Both sides are whole `amq` processes, wall time; beside it, the CPU seconds the `amq`
process used (user + system): on a machine loaded by others the wall times swing, while
amq's own CPU is steadier. When RabbitMQ runs on this machine (a `beam.smp` process
readable in /proc), its CPU seconds for each side are printed too, and the ratio the
machine's cores allow at best: the send's rate against N over (move's amq + RabbitMQ CPU)
/ cores, what a move that kept every core busy would reach. The source is filled with `amq send
--lines` (untimed) before each move; afterwards SRC must be empty and DST must hold the N
messages (passive declares), else the run stops with the command and its stderr. The
send side is `amq send DST --lines --confirm` into an emptied queue. RabbitMQ queues are
`bench-move-<uuid>-*`, deleted at the end, even on failure.

Usage: python benchmarks/move_throughput.py [--url URL] [--count N] [--size BYTES]
                                            [--runs R] [--skip-rabbitmq]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from procs import cpu_seconds, rabbitmq_pid

SETTLE_SECONDS = 15.0
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
AMQ = [shutil.which("amq") or sys.executable, *([] if shutil.which("amq") else
                                               ["-m", "amqcli"])]


CPU: list[float] = []  # the CPU seconds of the last amq run, then RabbitMQ's in it


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


BEAM = rabbitmq_pid()


def beam_cpu() -> float:
    """RabbitMQ's CPU seconds so far (0 without a local beam.smp)."""
    if BEAM is None:
        return 0.0
    try:
        return cpu_seconds(BEAM)
    except OSError:
        return 0.0


def amq(url: str, *args: str, data: bytes = b"") -> float:
    """Run amq against ``url``; its wall time in seconds (a failure stops the run), and
    its CPU seconds in ``CPU``."""
    env = dict(os.environ, AMQ_URL=url)
    cpu, broker = children_cpu(), beam_cpu()
    started = time.perf_counter()
    proc = subprocess.run([*AMQ, *args], input=data, capture_output=True, env=env)
    took = time.perf_counter() - started
    CPU[:] = [children_cpu() - cpu, beam_cpu() - broker]
    if proc.returncode != 0:
        sys.exit(f"amq {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return took


def depth(url: str, queue: str) -> int:
    from amqcli.backends import open_backend
    from amqcli.config import resolve
    backend = open_backend(resolve(url, None))
    try:
        return backend.declare_queue(queue, passive=True).message_count
    finally:
        backend.close()


def settled(url: str, queue: str, n: int) -> int:
    """The queue's depth once it is ``n`` (RabbitMQ's counts lag a publish by a moment),
    or what it is after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (found := depth(url, queue)) != n and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def fresh(url: str, queue: str) -> None:
    amq(url, "declare", "queue", queue)
    amq(url, "purge", queue)


def one_move(src_url: str, dst_url: str, src: str, dst: str, data: bytes,
             n: int) -> tuple[float, float, float]:
    fresh(src_url, src)
    fresh(dst_url, dst)
    amq(src_url, "send", src, "--lines", data=data)
    if (found := settled(src_url, src, n)) != n:
        sys.exit(f"{src}: {found} messages after sending {n}")
    extra = ["--to-url", dst_url] if dst_url != src_url else []
    took = amq(src_url, "move", src, dst, *extra)
    cpu, broker = CPU
    left, moved = settled(src_url, src, 0), settled(dst_url, dst, n)
    if left or moved != n:
        sys.exit(f"after the move: {left} left in {src}, {moved} in {dst} (expected {n})")
    return n / took, cpu, broker


def one_send(url: str, dst: str, data: bytes, n: int) -> tuple[float, float, float]:
    fresh(url, dst)
    took = amq(url, "send", dst, "--lines", "--confirm", data=data)
    cpu, broker = CPU
    if (found := settled(url, dst, n)) != n:
        sys.exit(f"{dst}: {found} messages after a confirmed send of {n}")
    return n / took, cpu, broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQ_BENCH_RABBITMQ_URL", DEFAULT_URL))
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--skip-rabbitmq", action="store_true")
    args = parser.parse_args()
    n = args.count
    body = b"x" * max(0, args.size - 7)
    data = b"".join(b"%07d" % i + body + b"\n" for i in range(n))
    tag = f"bench-move-{uuid.uuid4().hex[:8]}"
    store = tempfile.mkdtemp(prefix="amq-bench-move-")
    local = f"local:{store}/amq.db"
    rabbit = args.url
    cases = [("local -> local", local, local)]
    if not args.skip_rabbitmq:
        cases += [("local -> RabbitMQ", local, rabbit), ("RabbitMQ -> RabbitMQ", rabbit, rabbit)]
    print(f"amq move of {n:,} messages of {args.size} bytes, median of {args.runs} run(s)")
    try:
        for label, src_url, dst_url in cases:
            moves, sends = [], []
            for _ in range(args.runs):  # alternately: both see the same load
                moves.append(one_move(src_url, dst_url, f"{tag}-src", f"{tag}-dst", data, n))
                sends.append(one_send(dst_url, f"{tag}-send", data, n))
            move, send = (statistics.median(r for r, _c, _b in runs)
                          for runs in (moves, sends))
            move_cpu, send_cpu = (statistics.median(c for _r, c, _b in runs)
                                  for runs in (moves, sends))
            line = (f"{label:22} move {move:9,.0f} msg/s   send --confirm {send:9,.0f} msg/s"
                    f"   ratio {move / send:.2f} (goal >= 0.7)   amq CPU: move "
                    f"{move_cpu:.2f} s, send {send_cpu:.2f} s")
            if BEAM is not None and "RabbitMQ" in label:
                move_b, send_b = (statistics.median(b for _r, _c, b in runs)
                                  for runs in (moves, sends))
                cores = os.cpu_count() or 1
                best = n / ((move_cpu + move_b) / cores) / send
                line += (f"   RabbitMQ CPU: move {move_b:.2f} s, send {send_b:.2f} s"
                         f"   (at best {best:.2f} on {cores} cores)")
            print(line, flush=True)
    finally:
        if not args.skip_rabbitmq:
            for q in ("src", "dst", "send"):
                subprocess.run([*AMQ, "delete", "queue", f"{tag}-{q}"], capture_output=True,
                               env=dict(os.environ, AMQ_URL=rabbit))
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
