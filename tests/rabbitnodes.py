"""Extra RabbitMQ nodes for tests that need a node of their own: settings the machine's
node must keep (``consumer_timeout = 2000``), or several nodes (a cluster).

``start_nodes(count, config, advanced)`` starts ``count`` nodes of the installed RabbitMQ
at once, each with its own name (``amqt<pid>x<n>@localhost``), AMQP port and distribution
port (free ones, found by binding port 0), and its own folder under the system's temp
directory: its config file (``listeners.tcp.local`` and the ``config`` lines given; the
machine's ``/etc/rabbitmq/rabbitmq.conf`` pins port 5672, so each node needs its own),
``advanced.config`` (Erlang terms, for what rabbitmq.conf cannot set, such as
``channel_tick_interval``), an empty plugins file, the feature flags file, its database,
its log and its pid file. The server drops to the ``rabbitmq`` user, so the folder belongs
to it, and only root (or that user) can start a node.

Each node runs as a child process of the tests (``rabbitmq-server`` in the foreground, in
a session of its own, its output in ``BASE/console.log``) rather than ``-detached``: a node
that cannot boot (a bad config line) then says why at once instead of never writing its
pid file. ``Node.stop`` stops a node this module started (``rabbitmqctl -n NAME stop``; by
its pid if that fails) and removes its folder (``stop(keep=True)`` keeps it, and
``start_again`` starts the node again on it: a cluster member that comes back). Nothing
here stops, or talks to, the machine's own node (``rabbit@localhost``, port 5672).

The ``rabbit_nodes`` fixture (session scope; registered in ``tests/conftest.py``) hands
out nodes by their settings, starting each set once per session and stopping all of them
at the end of the session, also after failures::

    node, = rabbit_nodes.start(config=["consumer_timeout = 2000"])
    n1, n2, n3 = rabbit_nodes.start(3)   # then join_cluster([n1, n2, n3]) for a cluster

A node boots in about 8 s on a 2-core machine, three at once in about 15 s; stopping takes
about 4 s. Tests that take the fixture are marked ``slow`` and ``rabbitmq_only``; without
a usable ``rabbitmq-server`` they skip, saying why, unless ``AMQ_TEST_REQUIRE_RABBITMQ``
is set (then they fail).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_RABBITMQ = os.environ.get("AMQ_TEST_REQUIRE_RABBITMQ", "") not in ("", "0")
USER = "rabbitmq"  # the server drops to this user: its folders must belong to it
HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # seconds for a node to boot
STOP_TIMEOUT = 60.0
_serial = itertools.count(1)


@dataclass
class Node:
    """A RabbitMQ node started by this module."""

    name: str  # amqt1234x1@localhost
    port: int  # AMQP, on 127.0.0.1
    dist_port: int
    base: Path  # its folder: config, database, logs, pid file
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started: float = 0.0  # seconds from launch to running
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/%2F"

    def params(self, **kwargs: Any) -> Any:
        import pika
        return pika.ConnectionParameters(
            HOST, self.port, credentials=pika.PlainCredentials("guest", "guest"), **kwargs)

    def ctl(self, *args: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n NAME ARGS`` on this node."""
        done = subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args],
                              capture_output=True, text=True, timeout=timeout,
                              env=_ctl_env(), stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(
                f"rabbitmqctl -n {self.name} {' '.join(args)} exited {done.returncode}: "
                f"{done.stderr.strip() or done.stdout.strip()}")
        return done

    def log(self) -> str:
        """The node's log, and what it printed (where boot errors go)."""
        parts = []
        for path in (self.base / "console.log", self.base / "log" / f"{self.name}.log"):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def pid(self) -> int | None:
        """The node's OS process (from its pid file), if it wrote one."""
        try:
            return int((self.base / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, keep: bool = False) -> None:
        """Stop the node (idempotent) and remove its folder (with ``keep``, leave it, for
        ``start_again``: its database holds its cluster membership and queues)."""
        stop_nodes([self], keep=keep)

    def start_again(self) -> None:
        """Start a node stopped with ``keep`` again, on its ports and folder; it rejoins
        its cluster. Returns once it is up."""
        if not self.stopped:
            return
        began = time.monotonic()
        self.stopped = False
        with open(self.base / "console.log", "ab") as console:
            self.proc = subprocess.Popen(
                ["rabbitmq-server"], env=_env(self), stdin=subprocess.DEVNULL,
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _await(self, began)
        except BaseException:
            stop_nodes([self])
            raise


def problem() -> str | None:
    """Why this machine cannot start RabbitMQ nodes for tests (None when it can)."""
    for tool in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the tests that start RabbitMQ nodes need it"
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        return f"there is no '{USER}' user for RabbitMQ nodes to run as"
    if os.geteuid() not in (0, account.pw_uid):
        return f"starting RabbitMQ nodes needs root or the '{USER}' user"
    return None


def start_nodes(count: int = 1, config: Sequence[str] = (), advanced: str = "") -> list[Node]:
    """Start ``count`` nodes at once, each with these extra rabbitmq.conf ``config`` lines
    and ``advanced.config`` text; wait until all are up. On failure, stop what started."""
    ports = free_ports(2 * count)
    began = time.monotonic()
    nodes: list[Node] = []
    try:
        for i in range(count):
            node = _prepare(ports[2 * i], ports[2 * i + 1], config, advanced)
            nodes.append(node)
            with open(node.base / "console.log", "wb") as console:
                node.proc = subprocess.Popen(
                    ["rabbitmq-server"], env=_env(node), stdin=subprocess.DEVNULL,
                    stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        for node in nodes:
            _await(node, began)
    except BaseException:
        stop_nodes(nodes)
        raise
    return nodes


def join_cluster(nodes: Sequence[Node]) -> None:
    """Make one cluster of these nodes: each after the first joins the first
    (``stop_app``, ``join_cluster``, ``start_app``; they share the rabbitmq user's cookie)."""
    first = nodes[0]
    for node in nodes[1:]:
        node.ctl("stop_app")
        node.ctl("join_cluster", first.name)
        node.ctl("start_app")
    for node in nodes:
        node.ctl("await_startup")


def stop_nodes(nodes: Sequence[Node], keep: bool = False) -> None:
    """Stop these nodes at once (``rabbitmqctl stop PIDFILE`` returns once the node's
    process has ended; a node that will not stop is killed by its pid), then remove their
    folders (unless ``keep``). Nodes already stopped are left alone, but their folders
    are removed unless ``keep``."""
    stopping = []
    for node in nodes:
        if node.stopped:
            if not keep:
                shutil.rmtree(node.base, ignore_errors=True)
            continue
        node.stopped = True
        ctl = None
        if node.proc is not None and node.proc.poll() is None:
            ctl = subprocess.Popen(
                ["rabbitmqctl", "-q", "-n", node.name, "stop", str(node.base / "pid")],
                env=_ctl_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        stopping.append((node, ctl))
    for node, ctl in stopping:
        if ctl is not None:
            _end(ctl, STOP_TIMEOUT)
        if node.proc is not None:
            _end(node.proc, 10, node.pid())
        if not keep:
            shutil.rmtree(node.base, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all bound at once, so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _prepare(port: int, dist_port: int, config: Sequence[str], advanced: str) -> Node:
    base = Path(tempfile.mkdtemp(prefix="amq-rabbitnode-"))
    base.chmod(0o755)  # mkdtemp makes it 0700; the node runs as another user
    name = f"amqt{os.getpid()}x{next(_serial)}@localhost"
    (base / "log").mkdir()
    (base / "mnesia").mkdir()
    lines = [f"listeners.tcp.local = {HOST}:{port}", *config]
    (base / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
    (base / "advanced.config").write_text(advanced or "[].\n")
    (base / "enabled_plugins").write_text("[].\n")
    account = pwd.getpwnam(USER)
    for path in (base, *base.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)
    return Node(name, port, dist_port, base)


def _ctl_env() -> dict[str, str]:
    """The environment without anyone's RABBITMQ_* settings (the CLI's: -n names the
    node; a node's own are added by ``_env``)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}


def _env(node: Node) -> dict[str, str]:
    base = node.base
    env = _ctl_env()
    env.update(
        RABBITMQ_NODENAME=node.name,
        RABBITMQ_NODE_PORT=str(node.port),
        RABBITMQ_DIST_PORT=str(node.dist_port),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_FEATURE_FLAGS_FILE=str(base / "feature_flags"),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_PID_FILE=str(base / "pid"),
    )
    return env


def _await(node: Node, began: float) -> None:
    """Wait until the node listens on its AMQP port (the last step of its boot), then
    ask it (``await_startup``); fail at once, with its output, if it ends instead."""
    assert node.proc is not None
    deadline = began + START_TIMEOUT
    while not _listening(node.port):
        if node.proc.poll() is not None:
            raise AssertionError(f"RabbitMQ node {node.name} exited {node.proc.returncode} "
                                 f"while starting:\n{_why(node)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"RabbitMQ node {node.name} did not start in "
                                 f"{START_TIMEOUT:.0f} s:\n{_why(node)}")
        time.sleep(0.2)
    node.ctl("await_startup", "--timeout", str(int(START_TIMEOUT)),
             timeout=START_TIMEOUT + 10)
    node.started = time.monotonic() - began


def _why(node: Node) -> str:
    """The first error lines of a node's output (the cause comes first; the crash
    reports after it are long), or the end of its output."""
    lines = node.log().splitlines()
    errors = [line for line in lines if "[error]" in line][:12]
    return "\n".join(errors or lines[-20:])


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def _end(proc: subprocess.Popen[bytes], timeout: float, pid: int | None = None) -> None:
    """Wait for a process of ours to end; past ``timeout``, kill it (and the node's own
    process, ``pid``, which runs under it as another user)."""
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    for target in (pid, proc.pid):
        if target is not None:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait(10)


class RabbitNodes:
    """Nodes by their settings, each set started once; ``stop_all`` at the end."""

    def __init__(self) -> None:
        self.started: dict[tuple[int, tuple[str, ...], str], list[Node]] = {}

    def start(self, count: int = 1, config: Sequence[str] = (),
              advanced: str = "") -> list[Node]:
        """``count`` nodes with these settings: the same ones for the same settings."""
        key = (count, tuple(config), advanced)
        nodes = self.started.get(key)
        if nodes is None or any(n.stopped for n in nodes):
            nodes = self.started[key] = start_nodes(count, config, advanced)
        return nodes

    def stop_all(self) -> None:
        stop_nodes([node for nodes in self.started.values() for node in nodes])
        self.started.clear()


@pytest.fixture(scope="session")
def rabbit_nodes() -> Iterator[RabbitNodes]:
    """A starter of extra RabbitMQ nodes; every node it started is stopped after the
    session. Skips (fails, with AMQ_TEST_REQUIRE_RABBITMQ) where nodes cannot start."""
    why = problem()
    if why:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {why}")
        pytest.skip(why)
    nodes = RabbitNodes()
    try:
        yield nodes
    finally:
        nodes.stop_all()
