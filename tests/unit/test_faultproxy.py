"""The fault proxy of ``tests/faultproxy.py`` against a local echo server: it forwards, and
cuts, stalls and slows exactly as told."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy(*server.server_address) as p:
        yield p
    server.shutdown()
    server.server_close()


def _client(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=5)


def _read(sock: socket.socket, most: int, timeout: float = 5) -> bytes:
    """What arrives until ``most`` bytes, the end of the stream or ``timeout``."""
    sock.settimeout(timeout)
    out = b""
    try:
        while len(out) < most:
            data = sock.recv(most - len(out))
            if not data:
                break
            out += data
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_it_forwards_both_ways(proxy: FaultProxy) -> None:
    with _client(proxy) as sock:
        sock.sendall(b"hello" * 1000)
        assert _read(sock, 5000) == b"hello" * 1000
    assert proxy.stats.connections == 1 and proxy.stats.up == proxy.stats.down == 5000


def test_cut_after_forwards_exactly_the_allowance_then_cuts(proxy: FaultProxy) -> None:
    proxy.cut_after(300, direction="down", grow=2)
    with _client(proxy) as sock:
        sock.sendall(bytes(1000))
        assert _read(sock, 1000) == bytes(300)
    with _client(proxy) as sock:  # the allowance has doubled
        sock.sendall(bytes(1000))
        assert len(_read(sock, 1000)) == 600
    assert proxy.stats.cuts == 2
    proxy.heal()
    with _client(proxy) as sock:
        sock.sendall(bytes(1000))
        assert len(_read(sock, 1000)) == 1000


def test_cut_now_and_the_url(proxy: FaultProxy) -> None:
    with _client(proxy) as a, _client(proxy) as b:
        for s in (a, b):
            s.sendall(b"x")
            assert _read(s, 1) == b"x"
        assert proxy.cut() == 2
        assert _read(a, 1, timeout=2) == b"" and _read(b, 1, timeout=2) == b""
    host, port = proxy.address
    assert proxy.url("amqp://u:p@example.org:5672/%2F?heartbeat=1") == \
        f"amqp://u:p@{host}:{port}/%2F?heartbeat=1"


def test_stall_holds_traffic_until_resume(proxy: FaultProxy) -> None:
    with _client(proxy) as sock:
        proxy.stall()
        sock.sendall(b"held")
        assert _read(sock, 4, timeout=0.5) == b""
        proxy.resume()
        assert _read(sock, 4) == b"held"


def test_slow_limits_the_rate(proxy: FaultProxy) -> None:
    proxy.slow(20_000)
    with _client(proxy) as sock:
        start = time.monotonic()
        sock.sendall(bytes(10_000))
        assert len(_read(sock, 10_000, timeout=10)) == 10_000
        took = time.monotonic() - start
    assert took >= 0.4  # 10 kB up and 10 kB down at 20 kB/s: half a second at least
