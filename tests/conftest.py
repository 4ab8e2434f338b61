"""Test harness: run `amq` as a real process against each broker, with unique names.

The ``amq`` fixture runs the command line in a subprocess (as users do: separate
processes sharing a broker) and fails the test on an unexpected exit code, showing
stderr. Every behaviour test takes ``amq`` and so runs against each broker in
``BROKERS``; names come from ``name()`` so tests never collide on a shared RabbitMQ.

On RabbitMQ the tests run in a vhost of their own, made for the test run (through the
management API, or ``rabbitmqctl`` where the API is off) and deleted after it, so what
the machine's RabbitMQ already holds, or another run at the same time, cannot meet them.
Tests that list (``amq list``: RabbitMQ's management API) skip, saying so, when that API
is not reachable, unless ``AMQ_TEST_REQUIRE_RABBITMQ`` is set (as in CI).

A test about one broker alone is marked ``local_only`` or ``rabbitmq_only``: it is not run
against the other at all (deselected at collection, not skipped), whether it takes the
``amq`` fixture here or the ``backend`` fixture of ``tests/contract``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# Fixtures of other modules: extra RabbitMQ nodes (rabbit_nodes).
pytest_plugins = ["rabbitnodes"]

AMQ_EXE = shutil.which("amq")
AMQ_CMD = [AMQ_EXE] if AMQ_EXE else [sys.executable, "-m", "amqcli"]

# The brokers every behaviour test runs against: the same commands, the same assertions.
BROKERS = ["local", "rabbitmq"]
RABBITMQ_URL = os.environ.get("AMQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# Set (to 1) in CI: the RabbitMQ tests must run there, so an unreachable broker fails them.
# The tests stop the amq processes they start with SIGINT, as Ctrl+C does. A suite started
# in the background by a script (`pytest &`) has SIGINT ignored, and an ignored signal stays
# ignored across exec, so every amq it started would ignore it too (and rightly: that is
# how `amq receive q &` in a script outlives a Ctrl+C). Handled here, it is the default
# again in the children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REQUIRE_RABBITMQ = os.environ.get("AMQ_TEST_REQUIRE_RABBITMQ", "") not in ("", "0")
_rabbitmq_problem: list[str | None] = []
# What `amq list` says on RabbitMQ when the management API is not there.
NO_MANAGEMENT = "listing needs RabbitMQ's management API"


# The fixtures parametrized by broker, and the markers that keep a test to one of them.
BROKER_FIXTURES = ("amq", "backend")
ONLY = {"local_only": "local", "rabbitmq_only": "rabbitmq"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the runs of ``local_only``/``rabbitmq_only`` tests against the other broker."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        brokers = {params[f] for f in BROKER_FIXTURES if f in params}
        wanted = {b for marker, b in ONLY.items() if item.get_closest_marker(marker)}
        (drop if wanted and brokers and not brokers <= wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def rabbitmq_problem() -> str | None:
    """Why the test RabbitMQ cannot be used (None when it can), checked once."""
    if not _rabbitmq_problem:
        import pika
        try:
            pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
            problem = None
        except Exception as err:  # noqa: BLE001 - any failure means "not usable"
            problem = f"no RabbitMQ at {RABBITMQ_URL} ({type(err).__name__}: {err})"
        _rabbitmq_problem.append(problem)
    return _rabbitmq_problem[0]


def _management_base() -> str:
    given = os.environ.get("AMQ_MANAGEMENT_URL")
    if given:
        return given.rstrip("/")
    host = urllib.parse.urlsplit(RABBITMQ_URL).hostname or "127.0.0.1"
    return f"http://{host}:15672"


def management(path: str, method: str = "GET", body: Any = None) -> Any:
    """A call of the test RabbitMQ's management API (the JSON answer of a GET)."""
    parts = urllib.parse.urlsplit(RABBITMQ_URL)
    user = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{_management_base()}/api/{path}", method=method, data=data,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response) if method == "GET" else None


class TestVhost:
    """The vhost of this test run on the test RabbitMQ, made on first use."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.how = ""  # "management", "rabbitmqctl", or "" (the URL's own vhost)

    def url(self) -> str:
        """RABBITMQ_URL with this run's vhost (made now if it is not yet)."""
        if self.name is None:
            self._make()
        if not self.how:
            return RABBITMQ_URL
        parts = urllib.parse.urlsplit(RABBITMQ_URL)
        path = "/" + urllib.parse.quote(self.name or "", safe="")
        return urllib.parse.urlunsplit(parts._replace(path=path))

    def _make(self) -> None:
        self.name = f"amq-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        user = urllib.parse.unquote(urllib.parse.urlsplit(RABBITMQ_URL).username or "guest")
        quoted = urllib.parse.quote(self.name, safe="")
        try:
            management(f"vhosts/{quoted}", "PUT", {})
            management(f"permissions/{quoted}/{urllib.parse.quote(user)}", "PUT",
                       {"configure": ".*", "write": ".*", "read": ".*"})
            self.how = "management"
            return
        except (urllib.error.URLError, OSError):
            pass
        ctl = shutil.which("rabbitmqctl")
        if ctl and urllib.parse.urlsplit(RABBITMQ_URL).hostname in ("127.0.0.1", "localhost"):
            made = subprocess.run([ctl, "-q", "add_vhost", self.name], capture_output=True,
                                  timeout=60)
            if made.returncode == 0:
                subprocess.run([ctl, "-q", "set_permissions", "-p", self.name, user,
                                ".*", ".*", ".*"], capture_output=True, timeout=60, check=True)
                self.how = "rabbitmqctl"

    def delete(self) -> None:
        if self.how == "management":
            try:
                management(f"vhosts/{urllib.parse.quote(self.name or '', safe='')}", "DELETE")
            except (urllib.error.URLError, OSError):
                pass
        elif self.how == "rabbitmqctl":
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name or ""],
                           capture_output=True, timeout=60)


test_vhost = TestVhost()

# Set, the local broker's tests run in a vhost of this name instead of '/' (each test's
# store gets it): the same behaviours, with every text naming that vhost.
LOCAL_VHOST = "AMQ_TEST_LOCAL_VHOST"


@pytest.fixture(scope="session", autouse=True)
def _delete_test_vhost() -> Iterator[None]:
    yield
    test_vhost.delete()


def rabbitmq_url() -> str:
    """The URL the RabbitMQ tests use: the test RabbitMQ, in this run's own vhost."""
    return test_vhost.url()


_management_problem: list[str | None] = []


def needs_management(broker: str) -> None:
    """For a test whose assertions need RabbitMQ's management API on the RabbitMQ run: skip
    it there, saying why, when the API is absent (fail when RabbitMQ is required)."""
    if broker != "rabbitmq":
        return
    problem = management_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(problem)
        pytest.skip(problem)


def management_problem() -> str | None:
    """Why the test RabbitMQ's management API cannot be used (None when it can)."""
    if not _management_problem:
        try:
            management("overview")
            _management_problem.append(None)
        except (urllib.error.URLError, OSError) as err:
            _management_problem.append(
                f"RabbitMQ's management API is not reachable at {_management_base()} "
                f"({getattr(err, 'reason', err)}): `amq list` needs it")
    return _management_problem[0]


def require_management() -> None:
    """Skip (or, where RabbitMQ is required, fail) a test that needs the management API."""
    problem = management_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)


class RabbitCleaner:
    """Deletes what a test created on the shared RabbitMQ (tests use unique names)."""

    def __init__(self) -> None:
        self.connection: Any = None

    def delete(self, names: list[str]) -> None:
        import pika.exceptions
        try:
            self._delete(names)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.ConnectionWrongStateError):
            # The kept connection was cut meanwhile (a test closed every connection, as the
            # reconnect tests do): one fresh connection finishes the job.
            self.connection = None
            self._delete(names)

    def _delete(self, names: list[str]) -> None:
        import pika
        import pika.exceptions
        if self.connection is None or not self.connection.is_open:
            self.connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
        for kind in ("queue", "exchange"):
            for n in names:
                ch = self.connection.channel()
                try:
                    if kind == "queue":
                        ch.queue_delete(n)
                    else:
                        ch.exchange_delete(n)
                    ch.close()
                except pika.exceptions.AMQPChannelError:
                    pass


_cleaner = RabbitCleaner()


def wait_until(check: Callable[[], Any], what: str = "condition", timeout: float = 15) -> Any:
    """Poll ``check`` until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]


@dataclass
class Amq:
    """Runs ``amq`` against one broker."""

    broker: str
    url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # names to delete after the test

    @property
    def vhost(self) -> str:
        """The vhost error texts name: this run's own on RabbitMQ, ``/`` locally (or the
        local URL's ``?vhost=``)."""
        if self.broker != "rabbitmq":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
            return query.get("vhost", ["/"])[0]
        path = urllib.parse.urlsplit(self.url).path[1:]
        return urllib.parse.unquote(path) if path else "/"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, AMQ_URL=self.url, PYTHONUNBUFFERED="1")
        env.pop("COLUMNS", None)
        env.update({k: v for k, v in self.env_extra.items() if v})
        env.update(extra)
        return env

    def __call__(self, *args: str, input: bytes | str | None = b"", expect: int | None = 0,
                 timeout: float = 60, env: dict[str, str] | None = None) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            AMQ_CMD + list(args), input=data, capture_output=True, timeout=timeout,
            env=env or self.env())
        result = Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
        assert "Traceback" not in result.stderr, result.stderr
        if (expect is not None and result.code != expect and self.broker == "rabbitmq"
                and NO_MANAGEMENT in result.stderr and not REQUIRE_RABBITMQ
                and management_problem()):
            pytest.skip(management_problem() or "")
        if expect is not None:
            assert result.code == expect, (
                f"amq {' '.join(args)} exited {result.code}, expected {expect}\n"
                f"stderr: {result.stderr}\nstdout: {result.out[:2000]}")
        return result

    def popen(self, *args: str, stdout: Any = subprocess.PIPE, stdin: Any = subprocess.DEVNULL,
              stderr: Any = subprocess.PIPE, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(AMQ_CMD + list(args), stdout=stdout, stdin=stdin,
                                stderr=stderr, env=kwargs.pop("env", None) or self.env(),
                                **kwargs)

    def queue(self, name: str) -> dict[str, Any] | None:
        """The queue as ``amq list queues --format json`` shows it, or None."""
        for q in self("list", "queues", "--format", "json").json_lines()[0]:
            if q["name"] == name:
                return q
        return None

    def settled_queue(self, name: str) -> dict[str, Any] | None:
        """The queue once nothing of it is held unacknowledged (on RabbitMQ the unacked
        count comes from the management API, which lags by seconds), or None if missing."""
        def settled() -> tuple[dict[str, Any] | None] | None:
            q = self.queue(name)
            return (q,) if q is None or q["unacked"] == 0 else None
        try:
            return wait_until(settled, f"nothing unacked on {name}", 15)[0]
        except AssertionError:
            return self.queue(name)  # the test's own assertion says what it found

    def queue_names(self) -> list[str]:
        return [q["name"] for q in self("list", "queues", "--format", "json").json_lines()[0]]

    def wait_for(self, check: Callable[[], Any], timeout: float = 15,
                 what: str = "condition") -> Any:
        return wait_until(check, what, timeout)

    def subscribe(self, exchange: str, *args: str, **popen: Any) -> tuple[subprocess.Popen, str]:
        """``amq receive -e EXCHANGE ARGS`` in the background, and the name of the
        server-named queue it subscribed through, once it exists."""
        before = set(self.queue_names())
        receiver = self.popen("receive", "-e", exchange, *args, **popen)
        try:
            queue = self.wait_for(lambda: [q for q in self.queue_names() if q not in before],
                                  what="the subscription queue")[0]
        except BaseException:
            kill_and_reap(receiver)
            raise
        return receiver, queue

    def wait_for_consumers(self, queue: str, count: int = 1,
                           process: subprocess.Popen | None = None) -> None:
        """Wait until the queue has ``count`` consumers; fail at once, with its stderr, if
        the consuming ``process`` given ended instead."""
        def check() -> bool:
            if process is not None and process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"the consumer exited {process.returncode}: {err}")
            q = self.queue(queue)
            return bool(q) and q["consumers"] >= count
        self.wait_for(check, timeout=30, what=f"{count} consumer(s) on {queue}")


@pytest.fixture(params=BROKERS)
def amq(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Amq]:
    """``amq`` bound to a fresh local store, or to the shared RabbitMQ."""
    if request.param == "local":
        # The store exists before the test, as a user's does: a command that makes a new
        # store says so on stderr, which the tests of that note check on purpose.
        from amqcli.broker.store import Store
        store = Store(f"{tmp_path}/amq.db")
        vhost = os.environ.get(LOCAL_VHOST, "")
        if vhost:  # the whole local half of the suite in a vhost other than '/'
            from amqcli.broker.vhosts import Registry
            Registry(store).add(vhost)
        store.close()
        yield Amq("local", f"local:{tmp_path}/amq.db" + (
            f"?vhost={urllib.parse.quote(vhost, safe='')}" if vhost else ""))
        return
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)
    client = Amq("rabbitmq", rabbitmq_url(),
                 env_extra={"AMQ_MANAGEMENT_URL": os.environ.get("AMQ_MANAGEMENT_URL", "")})
    yield client
    if client.created:
        _cleaner.delete(sorted(client.created))


def unique_names(request: pytest.FixtureRequest, made: set[str]) -> Callable[[str], str]:
    """A maker of unique names for a test (``q-test_x-1a2b3c4d``), each added to ``made``
    (what to delete from RabbitMQ after the test)."""
    test = request.node.name.split("[")[0][:40]

    def make(prefix: str = "q") -> str:
        name = f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"
        made.add(name)
        return name
    return make


@pytest.fixture
def name(request: pytest.FixtureRequest, amq: Amq) -> Callable[[str], str]:
    """Unique names for queues and exchanges: ``name("q")`` -> ``q-test_x-1a2b3c4d``.
    On RabbitMQ, queues and exchanges of these names are deleted after the test."""
    return unique_names(request, amq.created)


def kill_and_reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
