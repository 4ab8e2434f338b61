"""The server's lifetime and its clients': port taken, dead clients, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pika
import pika.exceptions

from .servers import AMQ_CMD, Served, start_server

CONSUMER = textwrap.dedent("""
    import sys, pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    print(q, flush=True)
    ch.basic_qos(prefetch_count=10)
    seen = 0
    for method, props, body in ch.consume("jobs"):
        seen += 1
        if seen == 10:
            print("holding 10", flush=True)
""")


def test_port_taken_is_a_clear_error(served: Served) -> None:
    proc = subprocess.run(AMQ_CMD + ["broker", "serve", "--port", str(served.port),
                                     "--memory"], capture_output=True, timeout=30,
                          check=False)
    assert proc.returncode == 13, proc.stderr
    assert b"already in use" in proc.stderr and b"RabbitMQ" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_killed_client_requeues_and_drops_exclusive_queue(served: Served) -> None:
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("jobs")
    for i in range(20):
        ch.basic_publish("", "jobs", str(i).encode())
    client = subprocess.Popen([sys.executable, "-c", CONSUMER, str(served.port)],
                              stdout=subprocess.PIPE)
    assert client.stdout is not None
    exclusive = client.stdout.readline().decode().strip()
    assert client.stdout.readline().strip() == b"holding 10"
    assert ch.queue_declare("jobs", passive=True).method.message_count == 10
    client.kill()
    client.wait()
    deadline = time.monotonic() + 10
    while ch.queue_declare("jobs", passive=True).method.message_count < 20:
        assert time.monotonic() < deadline, "the killed client's messages were not requeued"
        time.sleep(0.05)
    method, _p, body = ch.basic_get("jobs", auto_ack=True)
    assert (body, method.redelivered) == (b"0", True)
    try:
        ch.queue_declare(exclusive, passive=True)
        raise AssertionError("the exclusive queue outlived its connection")
    except pika.exceptions.ChannelClosedByBroker as err:
        assert err.reply_code == 404
    conn.close()


def test_sigterm_closes_clients_and_requeues(tmp_path: Path) -> None:
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log")
    conn = pika.BlockingConnection(server.params())
    ch = conn.channel()
    ch.queue_declare("held")
    ch.basic_publish("", "held", b"unacked")
    method, _p, _b = ch.basic_get("held")
    assert method is not None
    assert server.stop() == 0
    try:
        conn.process_data_events(1)
        conn.channel()
        raise AssertionError("the connection outlived the server")
    except pika.exceptions.ConnectionClosedByBroker as err:
        assert err.reply_code == 320
        assert "CONNECTION_FORCED" in err.reply_text
    except pika.exceptions.AMQPConnectionError:
        pass
    out = server.amq("receive", "held", "--count", "1", "--timeout", "5",
                     "--format", "json").stdout
    assert b'"redelivered": true' in out and b"unacked" in out
    assert "Traceback" not in server.log()


def test_serve_usage_errors() -> None:
    for args in (["--url", "amqp://guest:guest@127.0.0.1/"], ["--memory", "--url", "local:x"],
                 ["--log-level", "chatty", "--memory"], ["--user", "nopassword", "--memory"]):
        proc = subprocess.run(AMQ_CMD + ["broker", "serve", "--port", "0", *args],
                              capture_output=True, timeout=30, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(b"amq: error: ") and b"Traceback" not in proc.stderr


def test_memory_store_and_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen(AMQ_CMD + ["broker", "serve", "--port", "0", "--memory"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    port = int(proc.stdout.readline().split(b":")[-1])
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare("m")
    ch.basic_publish("", "m", b"kept in memory")
    assert ch.basic_get("m", auto_ack=True)[2] == b"kept in memory"
    conn.close()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    log = proc.stderr.read().decode()
    assert "a store in memory" in log and "stopped" in log and "Traceback" not in log
    proc.stdout.close()
    proc.stderr.close()
