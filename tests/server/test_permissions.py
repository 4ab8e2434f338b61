"""Users and permissions of `amq broker serve`, side by side with the RabbitMQ on this
machine: the same user (its own name, made with rabbitmqctl and deleted after; `guest` is
never touched) with the same configure/write/read expressions, loaded on the served side
from a definitions file (RabbitMQ's sha256 `password_hash`), must get the same answers
with the same 403/406/530 texts. Also: a refused login is answered after a delay, and
repeated refusals are logged once a second."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from amqcli.server.auth import FailureLog

from .servers import (
    AMQ_CMD,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    REQUIRE_RABBITMQ,
    rabbitmq_problem,
    start_server,
    unique,
)

PASSWORD = "s3cret"


def sha256_hash(password: str, salt: bytes = b"\x01\x02\x03\x04") -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + pw))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def ctl(*args: str) -> str:
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@dataclass
class Side:
    kind: str
    port: int
    prefix: str  # the names this side's user may touch start with it
    user: str

    def params(self) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            RABBITMQ_HOST, self.port, credentials=pika.PlainCredentials(self.user, PASSWORD),
            connection_attempts=1)

    def guest(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(RABBITMQ_HOST, self.port))

    def text(self, raw: str) -> str:
        return raw.replace(self.prefix, "P").replace(self.user, "U")


def definitions(user: str, prefix: str, extra_users: tuple[str, ...] = ()) -> dict:
    return {
        "users": [{"name": u, "password_hash": sha256_hash(PASSWORD),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [],
                   "limits": {}} for u in (user, *extra_users)],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": user, "vhost": "/", "configure": f"^{prefix}-c",
                         "write": f"^{prefix}-w", "read": f"^{prefix}-r"}],
    }


@pytest.fixture(scope="module")
def rabbit_user() -> Iterator[tuple[str, str]]:
    problem = rabbitmq_problem() or (None if shutil.which("rabbitmqctl") else
                                     "no rabbitmqctl")
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)
    user, prefix = unique("amqtest-user"), unique("p16")
    ctl("add_user", user, PASSWORD)
    try:
        ctl("set_permissions", "-p", "/", user, f"^{prefix}-c", f"^{prefix}-w", f"^{prefix}-r")
        yield user, prefix
    finally:
        ctl("delete_user", user)


QUEUES = ("c-q", "w-q", "r-q", "o-q", "c-dlq", "c-dlq2")
EXCHANGES = ("c-x", "w-x", "r-x", "o-x", "c-ae")


@pytest.fixture(params=["served", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Side]:
    if request.param == "rabbitmq":
        user, prefix = request.getfixturevalue("rabbit_user")
        here = Side("rabbitmq", RABBITMQ_PORT, prefix, user)
        server = None
    else:
        user, prefix = unique("amqtest-user"), unique("p16")
        path = tmp_path / "definitions.json"
        path.write_text(json.dumps(definitions(user, prefix)))
        server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                              "--definitions", str(path))
        here = Side("served", server.port, prefix, user)
    conn = here.guest()
    ch = conn.channel()
    for q in QUEUES[:4]:
        ch.queue_declare(f"{prefix}-{q}")
    for x in EXCHANGES[:4]:
        ch.exchange_declare(f"{prefix}-{x}", "direct")
    conn.close()
    try:
        yield here
    finally:
        conn = here.guest()
        ch = conn.channel()
        for q in QUEUES:
            ch.queue_delete(f"{prefix}-{q}")
        for x in EXCHANGES:
            ch.exchange_delete(f"{prefix}-{x}")
        conn.close()
        if server is not None:
            assert server.stop() == 0
            assert "Traceback" not in server.log()


Act = Callable[[pika.adapters.blocking_connection.BlockingChannel, str], object]


def outcome(side: Side, act: Act) -> str:
    """"ok", or the code and text the broker closed the channel with."""
    conn = pika.BlockingConnection(side.params())
    try:
        ch = conn.channel()
        act(ch, side.prefix)
        ch.basic_qos(prefetch_count=1)  # a round trip: a refused publish has closed it
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as err:
        return f"{err.reply_code} {side.text(err.reply_text)}"
    finally:
        if conn.is_open:
            conn.close()


def refused(kind: str, name: str) -> str:
    return f"403 ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'U'"


def publish(exchange: str) -> Act:
    def act(ch, p):
        ch.confirm_delivery()
        ch.basic_publish(exchange.replace("P", p), "k", b"x")
    return act


CASES = {
    "declare a queue it may configure": (
        lambda ch, p: ch.queue_declare(f"{p}-c-q"), "ok"),
    "declare a queue it may not configure": (
        lambda ch, p: ch.queue_declare(f"{p}-o-q"), refused("queue", "P-o-q")),
    "declare a queue passively": (
        lambda ch, p: ch.queue_declare(f"{p}-o-q", passive=True), "ok"),
    "declare an exchange it may not configure": (
        lambda ch, p: ch.exchange_declare(f"{p}-o-x", "direct"), refused("exchange", "P-o-x")),
    "declare an exchange passively": (
        lambda ch, p: ch.exchange_declare(f"{p}-o-x", "direct", passive=True), "ok"),
    "delete a queue it may not configure": (
        lambda ch, p: ch.queue_delete(f"{p}-o-q"), refused("queue", "P-o-q")),
    "delete an exchange it may not configure": (
        lambda ch, p: ch.exchange_delete(f"{p}-o-x"), refused("exchange", "P-o-x")),
    "purge needs read": (lambda ch, p: ch.queue_purge(f"{p}-c-q"), refused("queue", "P-c-q")),
    "purge a queue it may read": (lambda ch, p: ch.queue_purge(f"{p}-r-q"), "ok"),
    "get needs read": (lambda ch, p: ch.basic_get(f"{p}-c-q"), refused("queue", "P-c-q")),
    "consume needs read": (
        lambda ch, p: ch.basic_consume(f"{p}-o-q", lambda *a: None), refused("queue", "P-o-q")),
    "bind: write on the queue, read on the exchange": (
        lambda ch, p: ch.queue_bind(f"{p}-w-q", f"{p}-r-x", "k"), "ok"),
    "bind without write on the queue": (
        lambda ch, p: ch.queue_bind(f"{p}-r-q", f"{p}-r-x", "k"), refused("queue", "P-r-q")),
    "bind without read on the exchange": (
        lambda ch, p: ch.queue_bind(f"{p}-w-q", f"{p}-w-x", "k"),
        refused("exchange", "P-w-x")),
    "unbind without write on the queue": (
        lambda ch, p: ch.queue_unbind(f"{p}-r-q", f"{p}-r-x", "k"), refused("queue", "P-r-q")),
    "exchange bind: write on the destination first": (
        lambda ch, p: ch.exchange_bind(f"{p}-r-x", f"{p}-w-x", "k"),
        refused("exchange", "P-r-x")),
    "exchange bind allowed": (
        lambda ch, p: ch.exchange_bind(f"{p}-w-x", f"{p}-r-x", "k"), "ok"),
    "publish to the default exchange": (publish(""), refused("exchange", "amq.default")),
    "publish to an exchange it may write": (publish("P-w-x"), "ok"),
    "publish to an exchange it may not write": (publish("P-o-x"),
                                                refused("exchange", "P-o-x")),
    "a dead-letter exchange needs read on the queue": (
        lambda ch, p: ch.queue_declare(f"{p}-c-dlq", arguments={
            "x-dead-letter-exchange": f"{p}-w-x"}), refused("queue", "P-c-dlq")),
    "an alternate exchange needs read on the exchange": (
        lambda ch, p: ch.exchange_declare(f"{p}-c-ae", "direct", arguments={
            "alternate-exchange": f"{p}-w-x"}), refused("exchange", "P-c-ae")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_permissions_as_rabbitmq_checks_them(side: Side, case: str):
    act, expected = CASES[case]
    assert outcome(side, act) == expected


def test_a_server_named_queue_is_checked_by_its_name(side: Side):
    got = outcome(side, lambda ch, p: ch.queue_declare("", exclusive=True))
    assert got.startswith("403 ACCESS_REFUSED - access to queue 'amq.gen-")
    assert got.endswith("' in vhost '/' refused for user 'U'")


def test_user_id_must_be_the_users_own(side: Side):
    def act(ch, p, user_id):
        ch.confirm_delivery()
        ch.basic_publish(f"{p}-w-x", "k", b"x", pika.BasicProperties(user_id=user_id))
    assert outcome(side, lambda ch, p: act(ch, p, side.user)) == "ok"
    assert outcome(side, lambda ch, p: act(ch, p, "someone")) == (
        "406 PRECONDITION_FAILED - user_id property set to 'someone' but authenticated "
        "user was 'U'")


def test_a_user_without_permissions_on_the_vhost_gets_530(tmp_path: Path, rabbit_user):
    """RabbitMQ: a user with no permissions on '/' (rabbitmqctl add_user only)."""
    nobody = unique("amqtest-noperm")
    texts = []
    ctl("add_user", nobody, PASSWORD)
    try:
        texts.append(_open_error(RABBITMQ_PORT, nobody))
    finally:
        ctl("delete_user", nobody)
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(definitions("someone", "x", extra_users=(nobody,))))
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--definitions", str(path))
    try:
        texts.append(_open_error(server.port, nobody))
    finally:
        assert server.stop() == 0
    assert texts == [f"530 NOT_ALLOWED - access to vhost '/' refused for user '{nobody}'"] * 2


def _open_error(port: int, user: str) -> str:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(pika.ConnectionParameters(
            RABBITMQ_HOST, port, credentials=pika.PlainCredentials(user, PASSWORD),
            connection_attempts=1))
    closed = info.value.args[0]
    assert "ConnectionClosedByBroker" in closed
    return closed.split(": ", 1)[1].replace('"', "").replace("(", "").replace(")", "")


def test_a_refused_login_waits_and_repeats_are_logged_once_a_second(tmp_path: Path):
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(definitions("alice", "a")))
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--definitions", str(path))
    try:
        params = pika.ConnectionParameters(
            RABBITMQ_HOST, server.port, credentials=pika.PlainCredentials("alice", "wrong"),
            connection_attempts=1)
        started = time.monotonic()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError,
                           match="ACCESS_REFUSED - Login was refused"):
            pika.BlockingConnection(params)
        assert time.monotonic() - started >= 0.9  # the delay: a floor, not a speed

        def attempt() -> None:
            try:
                pika.BlockingConnection(params)
            except pika.exceptions.AMQPConnectionError:
                pass
        threads = [threading.Thread(target=attempt) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        good = pika.BlockingConnection(pika.ConnectionParameters(
            RABBITMQ_HOST, server.port, credentials=pika.PlainCredentials("alice", PASSWORD),
            connection_attempts=1))
        good.close()
    finally:
        assert server.stop() == 0
    lines = [line for line in server.log().splitlines() if "login refused" in line]
    assert 2 <= len(lines) <= 4, lines  # 7 refusals within about two seconds


def test_the_failure_log_says_once_a_second_how_many_it_left_out():
    now = [100.0]
    failures = FailureLog(clock=lambda: now[0])
    assert failures.note("10.0.0.1") == 0
    assert failures.note("10.0.0.1") is None
    assert failures.note("10.0.0.2") == 0  # another address has its own second
    now[0] += 0.5
    assert failures.note("10.0.0.1") is None
    now[0] += 0.6
    assert failures.note("10.0.0.1") == 2


def test_a_file_exported_by_rabbitmq_loads(tmp_path: Path, rabbit_user):
    """`rabbitmqctl export_definitions` with this test's user and topology in it, in '/'
    and in a vhost of the test's own (the rest, shared with other tests, left out)."""
    user, prefix = rabbit_user
    vhost = f"{prefix}-vh"
    ctl("add_vhost", vhost)
    try:
        for who in ("guest", user):
            ctl("set_permissions", "-p", vhost, who, ".*", ".*", ".*")
        conn = pika.BlockingConnection(pika.ConnectionParameters(RABBITMQ_HOST, RABBITMQ_PORT))
        ch = conn.channel()
        ch.exchange_declare(f"{prefix}-r-exported", "topic", durable=True)
        ch.queue_declare(f"{prefix}-r-exported", durable=True, arguments={"x-max-length": 10})
        ch.queue_bind(f"{prefix}-r-exported", f"{prefix}-r-exported", "a.#")
        other = pika.BlockingConnection(pika.ConnectionParameters(RABBITMQ_HOST, RABBITMQ_PORT,
                                                                  vhost))
        other.channel().queue_declare(f"{prefix}-in-vh", durable=True)
        other.close()
        try:
            text = ctl("export_definitions", "-")  # to stdout: its CLI may not see our /tmp
        finally:
            ch.queue_delete(f"{prefix}-r-exported")
            ch.exchange_delete(f"{prefix}-r-exported")
            conn.close()
    finally:
        ctl("delete_vhost", vhost)
    document = json.loads(text[text.index("{"):])
    exported = tmp_path / "rabbit.json"
    document["users"] = [u for u in document["users"] if u["name"] == user]
    document["permissions"] = [p for p in document["permissions"] if p["user"] == user]
    document["vhosts"] = [v for v in document["vhosts"] if v["name"] in ("/", vhost)]
    assert document["users"][0]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    for kind in ("queues", "exchanges", "bindings"):
        document[kind] = [e for e in document[kind] if e["vhost"] in ("/", vhost) and
                          e.get("name", e.get("source", "")).startswith(prefix)]
    document["policies"] = [{"vhost": "/", "name": "ha-all", "pattern": ".*",
                             "definition": {"max-length": 5}, "apply-to": "queues"}]
    exported.write_text(json.dumps(document))
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--definitions", str(exported))
    try:
        side = Side("served", server.port, prefix, user)
        assert outcome(side, lambda ch, p: ch.queue_declare(f"{p}-r-exported",
                                                            passive=True)) == "ok"
        assert outcome(side, lambda ch, p: ch.basic_get(f"{p}-r-exported")) == "ok"
        assert outcome(side, publish("P-w-x")) == "404 NOT_FOUND - no exchange 'P-w-x' in " \
            "vhost '/'"
        listed = server.amq("list", "bindings", "--format", "json").stdout.decode()
        assert "a.#" in listed
        in_vhost = pika.BlockingConnection(pika.ConnectionParameters(
            RABBITMQ_HOST, server.port, vhost, pika.PlainCredentials(user, PASSWORD),
            connection_attempts=1))
        try:  # the file's other vhost, with its queue and the user's permissions there
            in_vhost.channel().queue_declare(f"{prefix}-in-vh", passive=True)
        finally:
            in_vhost.close()
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "skipped 1 policies (not supported by the local broker yet): ha-all" in log
    assert "Traceback" not in log


def test_a_definitions_file_it_cannot_honour_stops_the_start(tmp_path: Path):
    bad = definitions("alice", "a")
    bad["users"][0]["hashing_algorithm"] = "rabbit_password_hashing_bcrypt"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    proc = subprocess.run(
        [*AMQ_CMD, "broker", "serve", "--memory", "--port", "0",
         "--definitions", str(path)], capture_output=True, text=True, timeout=60,
        check=False, env=dict(os.environ))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"amq: error: {path}: user 'alice': unknown hashing_algorithm "
        "'rabbit_password_hashing_bcrypt' (known: rabbit_password_hashing_sha256, "
        "rabbit_password_hashing_sha512, rabbit_password_hashing_md5)")
