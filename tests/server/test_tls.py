"""`amq broker serve --tls-port`: amqps:// with pika and aio-pika, certificates made by
the test (trustme), beside the plain port or alone (`--port none`), client certificates
checked with --tls-verify-peer, and bad TLS options refused in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pika
import pika.exceptions
import pytest
import trustme

from .servers import AMQ_CMD


@dataclass
class Tls:
    ca: trustme.CA
    cert: Path
    key: Path
    ca_file: Path


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(ca, cert, key, ca_file)


@dataclass
class Serving:
    proc: subprocess.Popen
    lines: list[str]
    log: Path

    def address(self, tls: bool) -> tuple[str, int]:
        prefix = "listening for TLS on " if tls else "listening on "
        for line in self.lines:
            if line.startswith(prefix):
                host, port = line[len(prefix):].rsplit(":", 1)
                return host, int(port)
        raise AssertionError(f"no {prefix!r} line in {self.lines}")


def serve(tmp_path: Path, *args: str) -> Serving:
    log = tmp_path / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(AMQ_CMD + ["broker", "serve", "--memory", *args],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    lines = []
    expected = 1 + (args.count("--tls-port") if "none" not in args else 0)
    while len(lines) < expected:
        line = proc.stdout.readline().decode()
        if not line:
            proc.wait(5)
            raise AssertionError(f"server ended: {log.read_text()}")
        lines.append(line.strip())
    return Serving(proc, lines, log)


@pytest.fixture
def running() -> Iterator[list[Serving]]:
    started: list[Serving] = []
    yield started
    for serving in started:
        serving.proc.send_signal(signal.SIGTERM)
        assert serving.proc.wait(15) == 0
        assert serving.proc.stdout is not None
        serving.proc.stdout.close()
        assert "Traceback" not in serving.log.read_text(), serving.log.read_text()


def tls_args(tls: Tls, *more: str) -> list[str]:
    return ["--tls-port", "0", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), *more]


def client_context(tls: Tls, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls.ca.configure_trust(context)
    if with_cert:
        tls.ca.issue_cert("client@example.com").configure_cert(context)
    return context


def pika_round_trip(host: str, port: int, context: ssl.SSLContext | None) -> bytes:
    params = pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(context, "localhost") if context else None,
        connection_attempts=1)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.queue_declare("tls-q")
        ch.basic_publish("", "tls-q", b"over tls" if context else b"plain")
        _m, _p, body = ch.basic_get("tls-q", auto_ack=True)
        return body
    finally:
        conn.close()


def test_pika_over_tls_beside_the_plain_port(tmp_path, tls, running):
    serving = serve(tmp_path, "--port", "0", *tls_args(tls))
    running.append(serving)
    assert serving.lines[0].startswith("listening on 127.0.0.1:")
    assert serving.lines[1].startswith("listening for TLS on 127.0.0.1:")
    assert pika_round_trip(*serving.address(tls=True), client_context(tls)) == b"over tls"
    assert pika_round_trip(*serving.address(tls=False), None) == b"plain"


def test_aio_pika_with_an_amqps_url_and_tls_only(tmp_path, tls, running):
    serving = serve(tmp_path, "--port", "none", *tls_args(tls))
    running.append(serving)
    assert len(serving.lines) == 1
    _host, port = serving.address(tls=True)

    async def flow() -> bytes:
        conn = await aio_pika.connect(f"amqps://guest:guest@localhost:{port}/",
                                      ssl_context=client_context(tls))
        async with conn:
            ch = await conn.channel()
            queue = await ch.declare_queue("tls-aio")
            await ch.default_exchange.publish(aio_pika.Message(b"aio over tls"), "tls-aio")
            message = await queue.get(timeout=5)
            await message.ack()
            return message.body

    assert asyncio.run(flow()) == b"aio over tls"


def test_a_plain_client_on_the_tls_port_gets_nowhere(tmp_path, tls, running):
    serving = serve(tmp_path, "--port", "none", *tls_args(tls))
    running.append(serving)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika_round_trip(*serving.address(tls=True), None)


def test_verify_peer_wants_a_client_certificate_of_the_ca(tmp_path, tls, running):
    serving = serve(tmp_path, "--port", "none", *tls_args(
        tls, "--tls-ca", str(tls.ca_file), "--tls-verify-peer"))
    running.append(serving)
    address = serving.address(tls=True)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika_round_trip(*address, client_context(tls))
    assert pika_round_trip(*address, client_context(tls, with_cert=True)) == b"over tls"
    stranger = trustme.CA()
    context = client_context(tls)
    stranger.issue_cert("intruder@example.com").configure_cert(context)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika_round_trip(*address, context)


@pytest.mark.parametrize(("args", "message"), [
    (["--tls-port", "0"], "--tls-port needs --tls-cert FILE"),
    (["--tls-cert", "x.pem"], "the --tls-* options need --tls-port PORT"),
    (["--port", "none"], "--port none serves TLS only: give --tls-port too"),
    (["--port", "70000"], "--port: expected a port (0 to 65535) or none, got '70000'"),
    (["--tls-port", "0", "--tls-cert", "missing.pem"],
     "cannot load the TLS certificate missing.pem: No such file or directory"),
    (["--tls-port", "0", "--tls-cert", "{cert}", "--tls-verify-peer"],
     "--tls-verify-peer needs --tls-ca FILE"),
])
def test_bad_tls_options_are_one_line_and_exit_2(tmp_path, tls, args, message):
    args = [a.format(cert=tls.cert) for a in args]
    proc = subprocess.run(AMQ_CMD + ["broker", "serve", "--memory", *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    assert "Traceback" not in proc.stderr
