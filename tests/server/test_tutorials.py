"""RabbitMQ's six Python tutorials, as programs (tests/server/tutorials/), run unchanged
against ``amq broker serve`` and against the RabbitMQ on this machine."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from .servers import Target

TUTORIALS = Path(__file__).parent / "tutorials"


class Program:
    """A tutorial program running in the background, its stdout read line by line."""

    def __init__(self, target: Target, suffix: str, script: str, *args: str) -> None:
        env = dict(os.environ, AMQP_URL=target.url, TUTORIAL_SUFFIX=suffix,
                   PYTHONUNBUFFERED="1")
        self.name = script
        self.target, self.suffix = target, suffix
        self.proc = subprocess.Popen([sys.executable, str(TUTORIALS / script), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=TUTORIALS)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put("")  # end of output

    def expect(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = None
            if line is None or (line == "" and self.proc.poll() is not None):
                raise AssertionError(f"{self.name}: no line with {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def quiet(self, seconds: float) -> list[str]:
        """The lines printed within ``seconds``."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line:
                got.append(line)
        self.seen += got
        return got

    def wait_consumers(self, queue_name: str, count: int, timeout: float = 20) -> None:
        """Until the tutorial's queue has ``count`` consumers (a program prints that it
        waits before its ``basic.consume`` has reached the broker)."""
        import pika
        conn = pika.BlockingConnection(self.target.params())
        try:
            deadline = time.monotonic() + timeout
            while conn.channel().queue_declare(queue_name + self.suffix, passive=True,
                                               durable=True).method.consumer_count < count:
                assert time.monotonic() < deadline, f"{count} consumers of {queue_name}"
                time.sleep(0.05)
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(target: Target, suffix: str, script: str, *args: str) -> str:
    env = dict(os.environ, AMQP_URL=target.url, TUTORIAL_SUFFIX=suffix)
    proc = subprocess.run([sys.executable, str(TUTORIALS / script), *args],
                          capture_output=True, timeout=60, env=env, cwd=TUTORIALS,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.fixture
def tutorial(broker: Target):  # type: ignore[no-untyped-def]
    """Start and run tutorial programs against the broker; stop them and clean up after."""
    suffix = f"-{uuid.uuid4().hex[:8]}"
    programs: list[Program] = []

    def start(script: str, *args: str) -> Program:
        program = Program(broker, suffix, script, *args)
        programs.append(program)
        return program

    def once(script: str, *args: str) -> str:
        return run(broker, suffix, script, *args)

    yield start, once
    for program in programs:
        program.stop()
    if broker.kind == "rabbitmq":
        _cleanup(broker, suffix)


def _cleanup(broker: Target, suffix: str) -> None:
    import pika
    conn = pika.BlockingConnection(broker.params())
    for queue_name in ("hello", "task_queue", "rpc_queue"):
        conn.channel().queue_delete(queue_name + suffix)
    for exchange in ("logs", "direct_logs", "topic_logs"):
        conn.channel().exchange_delete(exchange + suffix)
    conn.close()


def test_hello_world(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    receiver = start("receive.py")
    receiver.expect("Waiting for messages")
    assert " [x] Sent 'Hello World!'" in once("send.py")
    receiver.expect(" [x] Received b'Hello World!'")


def test_work_queues_fair_dispatch(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    once("new_task.py", "warm-up")  # declares the durable queue
    first = start("worker.py")
    first.expect("Received warm-up")
    first.expect("Done")
    second = start("worker.py")
    second.expect("Waiting for messages")
    second.wait_consumers("task_queue", 2)  # its basic.consume is on its way
    once("new_task.py", "Slow task..")  # two seconds for whoever takes it
    once("new_task.py", "Task A")
    once("new_task.py", "Task B")
    once("new_task.py", "Task C")
    lines = first.quiet(3) + second.quiet(0.5)
    received = sorted(line.split("Received ", 1)[1] for line in lines if "Received" in line)
    assert received == ["Slow task..", "Task A", "Task B", "Task C"]
    # prefetch_count=1: while one worker is busy with the slow task, the other takes the rest
    busy = first if any("Slow task" in s for s in first.seen) else second
    other = second if busy is first else first
    assert not any("Task " in s for s in busy.seen if "Received" in s)
    assert sum("Received Task" in s for s in other.seen) == 3


def test_publish_subscribe(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    receivers = [start("receive_logs.py"), start("receive_logs.py")]
    for receiver in receivers:
        receiver.expect("Waiting for logs")
    once("emit_log.py", "info: Hello World!")
    for receiver in receivers:
        receiver.expect(" [x] b'info: Hello World!'")


def test_routing(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    errors_only = start("receive_logs_direct.py", "warning", "error")
    everything = start("receive_logs_direct.py", "info", "warning", "error")
    errors_only.expect("Waiting for logs")
    everything.expect("Waiting for logs")
    once("emit_log_direct.py", "info", "Just so you know.")
    once("emit_log_direct.py", "error", "Run. Run. Or it will explode.")
    everything.expect(" [x] info:b'Just so you know.'")
    everything.expect(" [x] error:b'Run. Run. Or it will explode.'")
    errors_only.expect(" [x] error:b'Run. Run. Or it will explode.'")
    errors_only.quiet(0.3)
    assert not any("info:" in line for line in errors_only.seen)


def test_topics(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    kernel = start("receive_logs_topic.py", "kern.*")
    critical = start("receive_logs_topic.py", "*.critical")
    everything = start("receive_logs_topic.py", "#")
    for receiver in (kernel, critical, everything):
        receiver.expect("Waiting for logs")
    once("emit_log_topic.py", "kern.critical", "A critical kernel error")
    once("emit_log_topic.py", "kern.info", "kernel info")
    once("emit_log_topic.py", "app.critical", "app down")
    once("emit_log_topic.py", "app.info.detail", "chatter")
    everything.expect("app.info.detail:b'chatter'")
    kernel.quiet(0.5)
    critical.quiet(0.2)
    assert [s for s in kernel.seen if "[x]" in s] == [
        " [x] kern.critical:b'A critical kernel error'", " [x] kern.info:b'kernel info'"]
    assert [s for s in critical.seen if "[x]" in s] == [
        " [x] kern.critical:b'A critical kernel error'", " [x] app.critical:b'app down'"]


def test_rpc(tutorial) -> None:  # type: ignore[no-untyped-def]
    start, once = tutorial
    server = start("rpc_server.py")
    server.expect("Awaiting RPC requests")
    out = once("rpc_client.py", "20")
    assert " [.] Got 6765" in out
    server.expect(" [.] fib(20)")
