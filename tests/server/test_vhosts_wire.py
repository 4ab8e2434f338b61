"""Vhosts over the wire, side by side: `amq broker serve` on a store whose vhosts
`amq vhost add|delete` makes and removes while it runs, and the RabbitMQ on this machine
with the same vhosts made by rabbitmqctl (the test's own names, deleted after). Clients
must get the same answers: isolation, 404 texts naming the vhost, 530 for an unknown one,
and 320 when the vhost of an open connection is deleted."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions
import pytest

from .servers import (
    AMQ_CMD,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    Served,
    require_rabbitmq,
    start_server,
    unique,
)


def _ctl(*args: str) -> None:
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


@dataclass
class Side:
    kind: str
    port: int
    add: Callable[[str], None]
    delete: Callable[[str], None]
    made: list[str] = field(default_factory=list)

    def vhost(self) -> str:
        name = unique("amq-test-wire-vh")
        self.add(name)
        self.made.append(name)
        return name

    def connect(self, vhost: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            RABBITMQ_HOST if self.kind == "rabbitmq" else "127.0.0.1", self.port, vhost,
            connection_attempts=1))

    def gone(self, vhost: str) -> None:
        self.delete(vhost)
        self.made.remove(vhost)


def _served_side(server: Served) -> Side:
    def run(*args: str) -> None:
        proc = subprocess.run(AMQ_CMD + ["--url", f"local:{server.store}", "vhost", *args],
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
    return Side("served", server.port, lambda v: run("add", v), lambda v: run("delete", v))


@pytest.fixture(params=["served", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Side]:
    if request.param == "rabbitmq":
        require_rabbitmq()

        def add(vhost: str) -> None:
            _ctl("add_vhost", vhost)
            _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        made = Side("rabbitmq", RABBITMQ_PORT, add, lambda v: _ctl("delete_vhost", v))
        try:
            yield made
        finally:
            for vhost in list(made.made):
                made.gone(vhost)
        return
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log")
    made = _served_side(server)
    try:
        yield made
    finally:
        for vhost in list(made.made):
            made.gone(vhost)
        code = server.stop()
        log = server.log()
    assert "Traceback" not in log, log
    assert code == 0, f"server exited {code}\n{log}"


def _closed(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        call()
    return info.value.reply_code, info.value.reply_text


def test_vhosts_are_isolated_with_their_names_in_the_texts(side: Side):
    a, b = side.vhost(), side.vhost()
    q = unique("q")
    in_a, in_b = side.connect(a), side.connect(b)
    try:
        ch_a, ch_b = in_a.channel(), in_b.channel()
        ch_a.queue_declare(q)
        ch_a.confirm_delivery()
        ch_a.basic_publish("", q, b"only in a")
        assert _closed(lambda: ch_b.queue_declare(q, passive=True)) == (
            404, f"NOT_FOUND - no queue '{q}' in vhost '{b}'")
        ch_b = in_b.channel()
        ch_b.queue_declare(q)  # the same name in b: another queue
        assert ch_b.basic_get(q, auto_ack=True)[2] is None
        assert ch_a.basic_get(q, auto_ack=True)[2] == b"only in a"
        assert _closed(lambda: ch_b.exchange_declare(unique("x"), passive=True))[1].endswith(
            f"in vhost '{b}'")
    finally:
        for conn in (in_a, in_b):
            if conn.is_open:
                conn.close()


def test_an_unknown_vhost_is_refused_with_530(side: Side):
    missing = unique("amq-test-wire-none")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        side.connect(missing)
    assert f"(530) 'NOT_ALLOWED - vhost {missing} not found'" in str(info.value)


def test_deleting_the_vhost_of_open_connections_closes_them_with_320(side: Side):
    vhost = side.vhost()
    conn = side.connect(vhost)
    conn.channel().queue_declare(unique("q"))
    side.gone(vhost)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
    # RabbitMQ says "is deleted", or "is down" when the vhost's processes stop first
    said = {f"CONNECTION_FORCED - vhost '{vhost}' is deleted"}
    if side.kind == "rabbitmq":
        said.add(f"CONNECTION_FORCED - vhost '{vhost}' is down")
    assert info.value.reply_code == 320 and info.value.reply_text in said, info.value
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        side.connect(vhost)
    side.add(vhost)  # the same name again: a new, empty vhost
    side.made.append(vhost)
    again = side.connect(vhost)
    try:
        ch = again.channel()
        q = unique("q")
        assert ch.queue_declare(q).method.message_count == 0
    finally:
        again.close()


def test_serve_vhost_adds_it(tmp_path: Path):
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--vhost", "orders", "--vhost", "billing")
    try:
        for vhost in ("orders", "billing", "/"):
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                server.host, server.port, vhost, connection_attempts=1))
            conn.channel().queue_declare(f"q-{vhost.strip('/') or 'root'}")
            conn.close()
        listed = server.amq("vhost", "list").stdout.decode().split("\n")
        assert [line.split("\t")[0] for line in listed if line] == ["/", "billing", "orders"]
        queues = subprocess.run(AMQ_CMD + ["--url", f"local:{server.store}?vhost=orders",
                                           "list", "queues"], capture_output=True,
                                timeout=60, check=True).stdout.decode()
        assert queues.split("\t")[0] == "q-orders"
    finally:
        assert server.stop() == 0
