"""TLS and definitions loaded at boot, side by side: a RabbitMQ node this test starts
(``rabbitnodes``: `listeners.ssl`, `ssl_options`, `load_definitions`) and
`amq broker serve --tls-port --definitions`, with the same certificates (trustme) and the
same definitions file, must answer a TLS client of the file's user the same way."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
import trustme
from rabbitnodes import free_ports

from .test_tls import serve

pytestmark = pytest.mark.slow

USER, PASSWORD = "boot-user", "boot-pw"


def _hash(password: str) -> str:
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


DEFINITIONS = {
    "users": [{"name": USER, "password_hash": _hash(PASSWORD),
               "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [],
               "limits": {}}],
    "vhosts": [{"name": "/"}, {"name": "boot-v"}],
    "permissions": [{"user": USER, "vhost": "/", "configure": "^boot-",
                     "write": "^boot-", "read": "^boot-"},
                    {"user": USER, "vhost": "boot-v", "configure": "^boot-v",
                     "write": "^boot-v", "read": "^boot-v"}],
    "queues": [{"name": "boot-q", "vhost": "/", "durable": True, "auto_delete": False,
                "arguments": {"x-max-length": 2}},
               {"name": "boot-vq", "vhost": "boot-v", "durable": True, "auto_delete": False,
                "arguments": {}}],
    "exchanges": [{"name": "boot-x", "vhost": "/", "type": "topic", "durable": True,
                   "auto_delete": False, "internal": False, "arguments": {}}],
    "bindings": [{"source": "boot-x", "vhost": "/", "destination": "boot-q",
                  "destination_type": "queue", "routing_key": "a.#", "arguments": {}}],
}


@pytest.fixture(scope="module")
def files() -> Iterator[dict[str, str]]:
    """Certificates and definitions in a folder the node's `rabbitmq` user can read."""
    folder = Path(tempfile.mkdtemp(prefix="amq-boot-"))
    folder.chmod(0o755)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem",
             "definitions": folder / "definitions.json"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    paths["definitions"].write_text(json.dumps(DEFINITIONS))
    for path in paths.values():
        path.chmod(0o644)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    yield {**{k: str(v) for k, v in paths.items()}, "context": context}  # type: ignore[dict-item]
    for path in paths.values():
        path.unlink()
    folder.rmdir()


@pytest.fixture(params=["served", "rabbitmq"])
def tls_port(request: pytest.FixtureRequest, files, tmp_path: Path) -> Iterator[int]:
    if request.param == "rabbitmq":
        port, = free_ports(1)
        request.getfixturevalue("rabbit_nodes").start(config=[
            f"listeners.ssl.local = 127.0.0.1:{port}",
            f"ssl_options.cacertfile = {files['ca']}",
            f"ssl_options.certfile = {files['cert']}",
            f"ssl_options.keyfile = {files['key']}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
            f"load_definitions = {files['definitions']}",
        ])
        yield port
        return
    serving = serve(tmp_path, "--port", "none", "--tls-port", "0", "--tls-cert",
                    files["cert"], "--tls-key", files["key"], "--definitions",
                    files["definitions"])
    try:
        yield serving.address(tls=True)[1]
    finally:
        serving.proc.terminate()
        assert serving.proc.wait(15) == 0
        assert serving.proc.stdout is not None
        serving.proc.stdout.close()


def _connect(tls_port: int, files, vhost: str = "/") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", tls_port, vhost, credentials=pika.PlainCredentials(USER, PASSWORD),
        ssl_options=pika.SSLOptions(files["context"], "localhost"), connection_attempts=1))


def test_a_tls_client_of_the_files_user_sees_the_files_topology(tls_port: int, files):
    conn = _connect(tls_port, files)
    try:
        ch = conn.channel()
        ch.queue_purge("boot-q")
        ch.confirm_delivery()
        for n in range(3):
            ch.basic_publish("boot-x", "a.b", f"m{n}".encode())
        got = [ch.basic_get("boot-q", auto_ack=True)[2] for _ in range(3)]
        assert got == [b"m1", b"m2", None]  # x-max-length 2 from the file: the oldest went
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("other-q")
        assert (info.value.reply_code, info.value.reply_text) == (
            403, f"ACCESS_REFUSED - access to queue 'other-q' in vhost '/' refused for "
                 f"user '{USER}'")
    finally:
        if conn.is_open:
            conn.close()
    conn = _connect(tls_port, files, "boot-v")  # the file's other vhost, its own world
    try:
        ch = conn.channel()
        assert ch.queue_declare("boot-vq", passive=True).method.message_count == 0
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("boot-q", passive=True)
        assert (info.value.reply_code, info.value.reply_text) == (
            404, "NOT_FOUND - no queue 'boot-q' in vhost 'boot-v'")
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("boot-other")
        assert (info.value.reply_code, info.value.reply_text) == (
            403, f"ACCESS_REFUSED - access to queue 'boot-other' in vhost 'boot-v' refused "
                 f"for user '{USER}'")
    finally:
        if conn.is_open:
            conn.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as denied:
        _connect(tls_port, files, "boot-none")
    assert "(530) 'NOT_ALLOWED - vhost boot-none not found'" in str(denied.value)
