"""What only the RabbitMQ backend has: connecting (URLs, profiles, TLS), its failures, the
management API, and a connection lost mid-stream."""

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
from conftest import (
    AMQ_CMD,
    REQUIRE_RABBITMQ,
    Amq,
    kill_and_reap,
    management,
    rabbitmq_problem,
    rabbitmq_url,
    require_management,
)

HOST, PORT = "127.0.0.1", 5672


@pytest.fixture
def rabbit(tmp_path):
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(problem)
        pytest.skip(problem)
    client = Amq("rabbitmq", rabbitmq_url())
    yield client
    if client.created:
        from conftest import _cleaner
        _cleaner.delete(sorted(client.created))


@pytest.fixture
def name(request, rabbit):
    """Unique names, deleted from RabbitMQ after the test (this module is RabbitMQ only)."""
    import uuid

    def make(prefix="q"):
        made = f"{prefix}-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
        rabbit.created.add(made)
        return made
    return make


def run(*args, env=None, input=b""):
    proc = subprocess.run(AMQ_CMD + list(args), capture_output=True, input=input, timeout=60,
                          env=env or dict(os.environ, AMQ_URL=""))
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.returncode, proc.stdout.decode(), err


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_nothing_listening_fails_fast_with_exit_8(rabbit):
    started = time.monotonic()
    code, _, err = run("--url", f"amqp://guest:guest@{HOST}:{free_port()}/", "send", "q", "x")
    assert code == 8 and "cannot reach RabbitMQ" in err
    assert time.monotonic() - started < 15


def test_wrong_password_is_403_and_never_printed(rabbit):
    code, out, err = run("--url", f"amqp://guest:s3cr3t-pw@{HOST}:{PORT}/", "send", "q", "x")
    assert code == 5 and "403" in err and "login refused" in err
    assert "s3cr3t-pw" not in err + out
    code, out, err = run("--url", f"amqp://guest:s3cr3t-pw@{HOST}:{free_port()}/", "list",
                         "queues")
    assert "s3cr3t-pw" not in err + out


def test_unknown_vhost_is_530(rabbit):
    code, _, err = run("--url", f"amqp://guest:guest@{HOST}:{PORT}/no-such-vhost", "send", "q",
                       "x")
    assert code == 11 and "no-such-vhost" in err


def test_tls_to_a_plain_port_is_a_tls_failure(rabbit):
    code, _, err = run("--url", f"amqps://guest:guest@{HOST}:{PORT}/", "send", "q", "x")
    assert code == 8 and "TLS" in err


def test_url_query_options_reach_pika(rabbit, name):
    q = name()
    url = f"amqp://guest:guest@{HOST}:{PORT}/%2F?heartbeat=30&connection_attempts=2"
    assert run("--url", url, "send", q, "x")[0] == 0
    code, _, err = run("--url", f"amqp://guest:guest@{HOST}:{PORT}/%2F?heartbeat=x", "send",
                       q, "x")
    assert code == 2 and "heartbeat" in err


def test_management_api_unreachable_names_the_plugin(rabbit):
    env = dict(os.environ, AMQ_URL=rabbitmq_url(),
               AMQ_MANAGEMENT_URL=f"http://{HOST}:{free_port()}")
    code, _, err = run("list", "queues", env=env)
    assert code == 8 and "rabbitmq_management" in err


# --- profiles ---------------------------------------------------------------------------

def _vhost_path(client):
    """The vhost part of the test URL (this run's own vhost, percent-encoded)."""
    return urllib.parse.urlsplit(client.url).path[1:]


def test_broker_profile_with_password_from_environment(rabbit, name, tmp_path):
    q = name()
    config = tmp_path / "config.toml"
    config.write_text(
        '[brokers.local-rabbit]\n'
        f'url = "amqp://guest@{HOST}:{PORT}/{_vhost_path(rabbit)}"\n'
        'password_env = "TEST_RABBIT_PASSWORD"\n')
    env = dict(os.environ, AMQ_URL="", AMQ_CONFIG=str(config), TEST_RABBIT_PASSWORD="guest")
    assert run("--broker", "local-rabbit", "send", q, "via profile", env=env)[0] == 0
    assert rabbit("receive", q, "--count", "1").lines == ["via profile"]
    env["AMQ_BROKER"] = "local-rabbit"
    assert run("send", q, "via AMQ_BROKER", env=env)[0] == 0
    assert rabbit("receive", q, "--count", "1").lines == ["via AMQ_BROKER"]
    del env["TEST_RABBIT_PASSWORD"]
    code, _, err = run("send", q, "x", env=env)
    assert code == 2 and "TEST_RABBIT_PASSWORD" in err


def test_default_profile_and_password_file(rabbit, name, tmp_path):
    q = name()
    secret = tmp_path / "pw"
    secret.write_text("guest\n")
    config = tmp_path / "config.toml"
    config.write_text(
        'default = "main"\n[brokers.main]\n'
        f'url = "amqp://guest@{HOST}:{PORT}/{_vhost_path(rabbit)}"\npassword_file = "{secret}"\n')
    env = dict(os.environ, AMQ_URL="", AMQ_CONFIG=str(config))
    assert run("send", q, "default profile", env=env)[0] == 0
    assert rabbit("receive", q, "--count", "1").lines == ["default profile"]


@pytest.mark.parametrize("content,message", [
    ("[brokers.x\nurl=", "not valid TOML"),
    ('[brokers.x]\nuri = "amqp://h/"\n', "unknown key"),
    ('[brokers.x]\npassword = "p"\n', "needs a url"),
])
def test_bad_config_file_names_itself(tmp_path, content, message):
    config = tmp_path / "config.toml"
    config.write_text(content)
    env = dict(os.environ, AMQ_URL="", AMQ_CONFIG=str(config))
    code, _, err = run("--broker", "x", "list", "queues", env=env)
    assert code == 2 and str(config) in err and message in err


def test_unknown_profile(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[brokers.a]\nurl = "local"\n')
    env = dict(os.environ, AMQ_URL="", AMQ_CONFIG=str(config))
    code, _, err = run("--broker", "b", "list", "queues", env=env)
    assert code == 2 and "no broker profile 'b'" in err and "a" in err
    code, _, err = run("--broker", "a", "--url", "local", "list", "queues", env=env)
    assert code == 2 and "not both" in err


# --- TLS, for real: a TLS-terminating proxy with client certificates in front of RabbitMQ

class TLSProxy:
    """Accepts TLS (client certificate required) on a free port, forwards to RabbitMQ."""

    def __init__(self, tmp_path):
        import trustme
        self.ca = trustme.CA()
        server_cert = self.ca.issue_cert("localhost", HOST)
        self.client_cert = self.ca.issue_cert("amq-client")
        self.cafile = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))
        self.certfile = tmp_path / "client.pem"
        self.keyfile = tmp_path / "client.key"
        self.client_cert.cert_chain_pems[0].write_to_path(str(self.certfile))
        self.client_cert.private_key_pem.write_to_path(str(self.keyfile))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(self.context)
        self.ca.configure_trust(self.context)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        upstream = socket.create_connection((HOST, PORT))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def close(self):
        self.closed = True
        self.listener.close()


@pytest.fixture
def tls_proxy(rabbit, tmp_path):
    proxy = TLSProxy(tmp_path)
    yield proxy
    proxy.close()


def test_tls_with_ca_and_client_certificate(rabbit, tls_proxy, name):
    q = name()
    p = tls_proxy
    url = (f"amqps://guest:guest@localhost:{p.port}/%2F?cacertfile={p.cafile}"
           f"&certfile={p.certfile}&keyfile={p.keyfile}")
    code, _, err = run("--url", url, "send", q, "over TLS")
    assert code == 0, err
    code, out, err = run("--url", url, "receive", q, "--count", "1")
    assert (code, out) == (0, "over TLS\n"), err


def test_tls_without_client_certificate_is_refused(rabbit, tls_proxy):
    url = f"amqps://guest:guest@localhost:{tls_proxy.port}/%2F?cacertfile={tls_proxy.cafile}"
    code, _, err = run("--url", url, "send", "q", "x")
    assert code == 8, err


def test_tls_with_an_untrusted_server_is_refused(rabbit, tls_proxy, tmp_path):
    import trustme
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    p = tls_proxy
    url = (f"amqps://guest:guest@localhost:{p.port}/%2F?cacertfile={other}"
           f"&certfile={p.certfile}&keyfile={p.keyfile}")
    code, _, err = run("--url", url, "send", "q", "x")
    assert code == 8 and "TLS" in err and "certificate" in err


def test_missing_ca_file_is_a_usage_error(rabbit, tmp_path):
    url = f"amqps://guest:guest@localhost:{PORT}/%2F?cacertfile={tmp_path}/nope.pem"
    code, _, err = run("--url", url, "send", "q", "x")
    assert code == 2 and "nope.pem" in err


# --- a connection lost mid-stream -------------------------------------------------------

def test_connection_closed_mid_stream_is_reported_and_nothing_lost(rabbit, name):
    """With --no-reconnect: today's exit (tests/test_reconnect.py has the default)."""
    require_management()
    q = name()
    rabbit("send", q, "--lines", input="".join(f"{i}\n" for i in range(50)))
    receiver = rabbit.popen("receive", q, "--count", "100", "--prefetch", "10",
                            "--no-reconnect")
    try:
        seen = [receiver.stdout.readline().decode().strip() for _ in range(50)]

        def acknowledged():  # the last ones read are settled after the pipe's hold
            row = rabbit.queue(q)
            return row is not None and row["messages"] == 0 and row["unacked"] == 0
        rabbit.wait_for(acknowledged, 30, "the 50 read acknowledged")
        connection = rabbit.wait_for(
            lambda: [c for c in management("connections")
                     if c.get("client_properties", {}).get("connection_name")
                     == f"amq[{receiver.pid}]"], what="the receiver's connection")[0]
        management(f"connections/{urllib.parse.quote(connection['name'], safe='')}",
                    method="DELETE")
        assert receiver.wait(timeout=30) == 8
        err = receiver.stderr.read().decode()
        assert "CONNECTION_FORCED" in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    finally:
        kill_and_reap(receiver)
    assert seen == [str(i) for i in range(50)]
    assert rabbit.queue(q)["messages"] == 0  # all 50 were written out, then acked


def _close_amq_connection(rabbit, pid):
    """Close the connection of the amq process ``pid`` (by its name, ``amq[PID]``): only
    amq's own, never the others on the machine's RabbitMQ."""
    connection = rabbit.wait_for(
        lambda: [c for c in management("connections")
                 if c.get("client_properties", {}).get("connection_name") == f"amq[{pid}]"],
        what=f"the connection of amq[{pid}]")[0]
    management(f"connections/{urllib.parse.quote(connection['name'], safe='')}",
               method="DELETE")


def test_confirmed_send_survives_its_connection_closed_by_the_broker(rabbit, name, tmp_path):
    require_management()
    q = name()
    sender = rabbit.popen("send", q, "--lines", "--confirm", stdin=subprocess.PIPE)
    try:
        sender.stdin.write(b"".join(b"%d\n" % i for i in range(1000)))
        sender.stdin.flush()
        rabbit.wait_for(lambda: (rabbit.queue(q) or {}).get("messages", 0) >= 1000,
                        what="the first 1000 messages")
        _close_amq_connection(rabbit, sender.pid)
        time.sleep(0.5)  # the close reaches the sender before the next lines
        _, err = sender.communicate(b"".join(b"%d\n" % i for i in range(1000, 2000)),
                                    timeout=60)
        err = err.decode()
        assert sender.returncode == 0, err
        assert "CONNECTION_FORCED" in err and "reconnected to 127.0.0.1:5672" in err, err
    finally:
        kill_and_reap(sender)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        subprocess.run(AMQ_CMD + ["receive", q, "--timeout", "2"], stdout=f,
                       env=rabbit.env(), timeout=60, check=True)
    assert sorted(set(out.read_bytes().split())) == sorted(b"%d" % i for i in range(2000))


def test_receiver_killed_by_signal_leaves_messages_in_rabbitmq(rabbit, name):
    q = name()
    rabbit("send", q, "--lines", input="".join(f"{i}\n" for i in range(20)))
    receiver = rabbit.popen("receive", q, "--prefetch", "5", stdout=subprocess.DEVNULL)
    try:
        rabbit.wait_for(lambda: rabbit.queue(q)["messages"] == 0, what="consumption")
    finally:
        os.kill(receiver.pid, signal.SIGKILL)
        kill_and_reap(receiver)
    assert rabbit.queue(q)["messages"] == 0  # written to /dev/null, acked: gone


def test_streams_are_told_apart_without_the_management_api(rabbit, name):
    """Where the management API cannot answer (not enabled, or a user it refuses), amq asks
    the queue's type over AMQP: a stream is read from an offset (its consumer gets a
    prefetch of its own, not the channel-wide one a stream refuses), the other types are
    named in the error, and what a stream refuses is refused as with the API."""
    env = rabbit.env(AMQ_MANAGEMENT_URL="http://127.0.0.1:1")  # nothing listens there
    s, quorum, classic = name("s"), name("qq"), name("c")
    rabbit("declare", "queue", s, "--type", "stream", "--durable", env=env)
    rabbit("declare", "queue", quorum, "--type", "quorum", "--durable", env=env)
    rabbit("declare", "queue", classic, env=env)
    rabbit("send", s, "--lines", input="m0\nm1\nm2\n", env=env)
    r = rabbit("receive", s, "--offset", "first", "--count", "3", "--format", "json",
               "--timeout", "10", env=env)
    read = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [(m["body"], m["stream_offset"]) for m in read] == [("m0", 0), ("m1", 1), ("m2", 2)]
    for queue, kind in ((classic, "classic"), (quorum, "quorum")):
        r = rabbit("receive", queue, "--offset", "first", expect=2, env=env)
        assert f"queue '{queue}' is a {kind} queue" in r.stderr
    r = rabbit("receive", s, "--offset", "first", "--requeue", expect=11, env=env)
    assert f"basic.nack and basic.reject not supported by stream queues queue '{s}'" \
        in r.stderr
    r = rabbit("peek", s, "--count", "5", "--format", "json", env=env)
    assert [json.loads(line)["body"] for line in r.stdout.decode().splitlines()] == \
        ["m0", "m1", "m2"]
