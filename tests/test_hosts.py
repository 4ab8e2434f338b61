"""Several hosts in one URL (``amqp://u:p@host1:5672,host2:5673/vhost``) on RabbitMQ: the
first that answers is used, a reconnect fails over to the next, and what cannot be
reached or parsed is one line with its exit code. The dead host is a port nobody listens
on (bound on port 0, then closed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse

import pytest
from conftest import AMQ_CMD, REQUIRE_RABBITMQ, Amq, rabbitmq_problem, rabbitmq_url

HOST, PORT = "127.0.0.1", 5672

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def rabbit() -> Amq:
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(problem)
        pytest.skip(problem)
    return Amq("rabbitmq", rabbitmq_url())


def dead_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def with_hosts(url: str, *netlocs: str) -> str:
    """``url`` with its host part replaced by ``netlocs`` (its user, vhost and query kept)."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{','.join(netlocs)}"))


def run(*args: str, url: str, input: bytes = b"") -> tuple[int, str, str]:
    proc = subprocess.run(AMQ_CMD + list(args), capture_output=True, input=input, timeout=60,
                          env=dict(os.environ, AMQ_URL=url, AMQ_BROKER=""))
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.returncode, proc.stdout.decode(), err


def test_a_dead_first_host_is_skipped(rabbit: Amq) -> None:
    q = f"hosts-{os.getpid()}-{dead_port()}"
    url = with_hosts(rabbit.url, f"{HOST}:{dead_port()}", f"{HOST}:{PORT}")
    try:
        assert run("send", q, "via the second host", url=url)[0] == 0
        code, out, err = run("receive", q, "--count", "1", url=url)
        assert (code, out) == (0, "via the second host\n"), err
    finally:
        rabbit("delete", "queue", q)


def test_no_host_answering_names_each_and_exits_8(rabbit: Amq) -> None:
    one, two = dead_port(), dead_port()
    url = with_hosts(rabbit.url, f"{HOST}:{one}", f"{HOST}:{two}")
    code, _, err = run("send", "q", "x", url=url, input=b"")
    assert code == 8
    assert "cannot reach any of the 2 hosts" in err
    assert f"{HOST}:{one}" in err and f"{HOST}:{two}" in err
    assert "guest:guest" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("hosts, why", [
    (f"{HOST}:{PORT},,{HOST}", "a host is empty"),
    (f"{HOST}:99999", "not a number from 1 to 65535"),
    (f"{HOST}:{PORT},{HOST}:http", "port 'http'"),
])
def test_bad_host_lists_are_usage_errors(rabbit: Amq, hosts: str, why: str) -> None:
    url = f"amqp://guest:s3cret@{hosts}/%2F"
    code, _, err = run("send", "q", "x", url=url)
    assert code == 2 and why in err and "s3cret" not in err
    assert len(err.strip().splitlines()) == 1


def test_profile_urls_fail_over(rabbit: Amq, tmp_path) -> None:
    vhost = urllib.parse.urlsplit(rabbit.url).path
    config = tmp_path / "config.toml"
    config.write_text(
        "[brokers.cluster]\n"
        f'urls = ["amqp://guest@{HOST}:{dead_port()}{vhost}", "amqp://guest@{HOST}:{PORT}{vhost}"]\n'
        'password = "guest"\n')
    q = f"hosts-profile-{os.getpid()}-{dead_port()}"
    env = dict(os.environ, AMQ_URL="", AMQ_CONFIG=str(config))
    try:
        done = subprocess.run(AMQ_CMD + ["--broker", "cluster", "send", q, "x"],
                              capture_output=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert rabbit("receive", q, "--count", "1").lines == ["x"]
    finally:
        rabbit("delete", "queue", q)


def test_reconnect_goes_to_the_next_host(rabbit: Amq) -> None:
    """In process: the backend's reconnect starts at the host after the one it had."""
    from amqcli.backends.rabbitmq import RabbitMQBackend
    from amqcli.config import parse_url
    url = parse_url(with_hosts(rabbit.url, f"{HOST}:{PORT}", f"localhost:{dead_port()}",
                               f"localhost:{PORT}"))
    backend = RabbitMQBackend(url)
    try:
        assert backend.host == f"{HOST}:{PORT}"
        backend.reconnect()  # the next is dead: the one after it
        assert backend.host == f"localhost:{PORT}"
        assert backend.declare_queue("", exclusive=True).queue.startswith("amq.gen-")
        backend.reconnect()  # round again, to the first
        assert backend.host == f"{HOST}:{PORT}"
    finally:
        backend.close()


def test_shuffle_reaches_every_host(rabbit: Amq) -> None:
    from amqcli.backends.rabbitmq import RabbitMQBackend
    from amqcli.config import parse_url
    url = parse_url(with_hosts(rabbit.url, f"{HOST}:{PORT}", f"localhost:{PORT}")
                    + "?shuffle=true")
    seen = set()
    for _ in range(30):
        backend = RabbitMQBackend(url)
        seen.add(backend.host)
        backend.close()
        if len(seen) == 2:
            break
    assert seen == {f"{HOST}:{PORT}", f"localhost:{PORT}"}


def test_management_api_of_the_host_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQ_MANAGEMENT_URL", raising=False)  # the URL derived from the host
    from amqcli.backends.management import ManagementAPI
    from amqcli.config import parse_url
    url = parse_url("amqp://u:p@r1:5672,r2:5673/vh")
    assert ManagementAPI.for_url(url).base == "http://r1:15672"
    assert ManagementAPI.for_url(url, url.hosts[1]).base == "http://r2:15672"
    assert json.dumps(ManagementAPI.for_url(url, url.hosts[1]).vhost) == '"vh"'


def test_a_long_running_commands_reconnect_goes_to_the_next_host(rabbit: Amq) -> None:
    """What the consumers' reconnect loop calls (``Environment.reopen``): the same
    backend, connected again to the host after the one it had."""
    from amqcli.cli.env import Environment
    env = Environment(url=with_hosts(rabbit.url, f"{HOST}:{PORT}", f"localhost:{PORT}"))
    try:
        first = env.backend(long_running=True)
        assert first.host == f"{HOST}:{PORT}"  # type: ignore[attr-defined]
        again = env.reopen(long_running=True)
        assert again is first and again.host == f"localhost:{PORT}"  # type: ignore[attr-defined]
        assert "heartbeat=10" in again.url.hosts[1]  # type: ignore[attr-defined]
    finally:
        env.close()
