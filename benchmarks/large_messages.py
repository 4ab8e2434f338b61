"""Peak memory with large messages: the server and the CLI, beside small-message baselines.

Deliveries are claimed in batches bounded in bytes (16 MiB, or one message) as well as in
count, so a consumer with a prefetch of 250 never has 250 large messages in memory at once.
This prints peak RSS (VmHWM) for --count messages of --size MiB:

1. `amq broker serve` on a fresh store file: a pika publisher sends them (peak while
   receiving them), then a pika consumer with prefetch 250 (amq receive's default) takes
   them all (peak while delivering; the high-water mark is reset in between);
2. the CLI on a local store: `amq send --file` of each, then `amq receive --count N`
   (default prefetch) into /dev/null.

Each figure is printed beside the same flow with messages of 1 KiB (the process's own
footprint) and beside what holding every message at once would take. Linux only (reads
/proc). Usage: python benchmarks/large_messages.py [--count N] [--size MIB]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pika
from procs import amq_default as amq

MiB = 1024 * 1024


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def run_child(cmd: list[str], **kwargs: object) -> int:
    """Run a command; its peak RSS in KiB (from wait4)."""
    proc = subprocess.Popen(cmd, **kwargs)  # type: ignore[call-overload]
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")
    return usage.ru_maxrss


def server_peaks(count: int, size: int, tmp: str) -> tuple[int, int]:
    """(peak KiB while receiving the publishes, peak KiB while delivering them)."""
    server = subprocess.Popen(
        amq() + ["broker", "serve", "--port", "0", "--url", f"local:{tmp}/serve.db",
                 "--log-level", "warning"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split(b":")[-1])
        params = pika.ConnectionParameters("127.0.0.1", port, blocked_connection_timeout=300)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("big")
        body = b"x" * size
        for _ in range(count):
            ch.basic_publish("", "big", body)
        del body
        conn.close()
        publish_peak = peak_kib(server.pid)
        reset_peak(server.pid)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=250)
        for got, (method, _props, data) in enumerate(
                ch.consume("big", inactivity_timeout=120), 1):
            if method is None:
                raise RuntimeError("the server stopped delivering")
            assert len(data) == size
            ch.basic_ack(method.delivery_tag)
            if got == count:
                break
        ch.cancel()
        conn.close()
        return publish_peak, peak_kib(server.pid)
    finally:
        server.terminate()
        server.wait()


def cli_peaks(count: int, size: int, tmp: str) -> tuple[int, int]:
    """(peak KiB of the largest `amq send --file`, peak KiB of `amq receive --count`)."""
    env = dict(os.environ, AMQ_URL=f"local:{tmp}/cli.db")
    path = Path(tmp) / "body"
    path.write_bytes(b"y" * size)
    send = max(run_child(amq() + ["send", "big", "--file", str(path)], env=env,
                         stdout=subprocess.DEVNULL) for _ in range(count))
    path.unlink()
    receive = run_child(amq() + ["receive", "big", "--count", str(count)], env=env,
                        stdout=subprocess.DEVNULL)
    return send, receive


def mib(kib: int) -> str:
    return f"{kib / 1024:7.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--size", type=int, default=100, help="MiB per message")
    args = ap.parse_args()
    size = args.size * MiB
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        small_server = server_peaks(args.count, 1024, tmp)
        small_cli = cli_peaks(args.count, 1024, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        big_server = server_peaks(args.count, size, tmp)
        big_cli = cli_peaks(args.count, size, tmp)
    everything = args.count * size // 1024
    print(f"{args.count} messages of {args.size} MiB (all at once would be "
          f"{mib(everything).strip()}); baseline: the same flow with 1 KiB messages")
    rows = [("amq broker serve, receiving publishes", big_server[0], small_server[0]),
            ("amq broker serve, delivering (prefetch 250)", big_server[1], small_server[1]),
            ("amq send --file (largest)", big_cli[0], small_cli[0]),
            ("amq receive --count (prefetch 250)", big_cli[1], small_cli[1])]
    for what, big, small in rows:
        print(f"  {what:45} peak RSS {mib(big)}   baseline {mib(small)}   "
              f"= {(big - small) / size * 1024:4.1f} x message size above baseline")
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
