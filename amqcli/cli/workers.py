"""A shell command per message: the worker pool behind ``receive --exec`` and ``rpc serve``.

Each delivery runs ``sh -c CMD`` with the body on stdin and the message's metadata in
``AMQ_*`` environment variables (``message_environment``). At most ``--prefetch N``
commands run at once, and the prefetch is N too, so the broker hands this worker no more
than it is running. A delivery is settled by its own tag when its command ends: what
happens then is a ``Handler``'s choice (ack on exit 0 for ``--exec``; publish the reply
then ack for ``rpc serve``). Every broker call stays on the one thread that owns the
connection: the loop alternates short fetches with noticing which children exited.

Ctrl+C (or SIGTERM) stops taking messages and lets the running commands finish; a second
one terminates them (SIGTERM to each command's process group), a third kills them; what
did not finish goes back to the queue. Commands run in process groups of their own, so a
Ctrl+C at the terminal reaches amq only, and are started by a supervisor
(``supervisor.py``) that kills those groups if the worker dies.
"""

import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol, Self

from .. import errors
from ..amqp.codec import to_json_value
from ..amqp.model import PROPERTY_NAMES, Delivery
from .env import Environment
from .supervisor import Spawner, SupervisedJob

if TYPE_CHECKING:
    from types import FrameType

    from ..backends.base import Subscription
    from ..backends.reconnect import Resilient

FETCH_SLICE = 0.02  # a fetch's wait while commands run: how late an exit may be noticed
IDLE_SLICE = 0.2  # the longest wait before looking at Ctrl+C again
KEEPALIVE = 1.0  # how often a full pool still services the connection (RabbitMQ heartbeats)

PROPERTY_VARIABLES = {name: f"AMQ_{name.upper()}" for name in PROPERTY_NAMES
                      if name != "headers"}
HEADER_PREFIX = "AMQ_HEADER_"
MESSAGE_VARIABLES = frozenset({"AMQ_QUEUE", "AMQ_EXCHANGE", "AMQ_ROUTING_KEY",
                               "AMQ_REDELIVERED", "AMQ_HEADERS",
                               *PROPERTY_VARIABLES.values()})


class OnFailure(StrEnum):
    """What becomes of a message whose command failed."""

    REQUEUE = "requeue"  # back to the queue, flagged redelivered
    REJECT = "reject"  # basic.nack requeue=false: dropped, or dead-lettered with a DLX


class Settings(NamedTuple):
    """How a pool runs: the command, how many at once, when to stop, what a failure does."""

    command: str
    concurrency: int = 1
    limit: int | None = None  # --count: stop after this many messages
    timeout: float | None = None  # stop when idle this long
    on_failure: OnFailure = OnFailure.REQUEUE

    @property
    def prefetch(self) -> int:
        """The consumer's prefetch: what runs at once, or fewer when --count says so."""
        return min(self.concurrency, self.limit or self.concurrency)


def exec_settings(command: str | None, prefetch: int | None, count: int | None,
                  timeout: float | None, on_failure: OnFailure | None,
                  writes_output: bool) -> Settings:
    """``receive --exec`` options as Settings, or a usage error for what does not fit."""
    if command is None:
        raise errors.UsageError("--on-failure goes with --exec CMD")
    if not command.strip():
        raise errors.UsageError("--exec needs a command")
    if writes_output:
        raise errors.UsageError("--exec acknowledges by the command's exit status: "
                                "--no-ack, --requeue, --format and --null do not apply")
    return Settings(command, prefetch or 1, count, timeout, on_failure or OnFailure.REQUEUE)


# --- the environment of a command -----------------------------------------------------------

def header_variable(key: str) -> str:
    """``x-retry-count`` -> ``AMQ_HEADER_X_RETRY_COUNT``."""
    return HEADER_PREFIX + re.sub(r"[^A-Z0-9_]", "_", key.upper())


def _scalar_text(value: Any) -> str | None:
    """A header value as one variable's text; None for what only AMQ_HEADERS can carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _text(value: str | bytes | int) -> str:
    """A name or property as a variable: bytes that are not UTF-8 as the very same bytes
    (``fsdecode`` here, ``fsencode`` in Popen), not as ``b'...'``."""
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


def message_environment(d: Delivery) -> dict[str, str]:
    """The ``AMQ_*`` variables describing one delivery (those with a value only)."""
    out = {"AMQ_QUEUE": d.queue, "AMQ_EXCHANGE": _text(d.exchange),
           "AMQ_ROUTING_KEY": _text(d.routing_key),
           "AMQ_REDELIVERED": "true" if d.redelivered else "false"}
    for name, variable in PROPERTY_VARIABLES.items():
        value = getattr(d.properties, name)
        if value is not None:
            out[variable] = _text(value)
    headers = d.properties.headers or {}
    out["AMQ_HEADERS"] = json.dumps(to_json_value(headers), ensure_ascii=False)
    for key, value in headers.items():
        text = _scalar_text(value)
        if text is not None:
            out.setdefault(header_variable(str(key)), text)  # the first of clashing names
    return {k: v for k, v in out.items() if "\0" not in v}  # no NUL in an environment


def base_environment(env: Environment, inherited: Mapping[str, str]) -> dict[str, str]:
    """amq's own environment without stale message variables, naming amq's broker, so a
    command that runs ``amq`` itself talks to the same broker."""
    out = {k: v for k, v in inherited.items()
           if k not in MESSAGE_VARIABLES and not k.startswith(HEADER_PREFIX)}
    if env.url is not None:
        out.pop("AMQ_BROKER", None)
        out["AMQ_URL"] = env.url
    elif env.broker is not None:
        out.pop("AMQ_URL", None)
        out["AMQ_BROKER"] = env.broker
    return out


# --- the running commands -------------------------------------------------------------------

class Job:
    """One command running for one delivery."""

    __slots__ = ("delivery", "error", "output", "pidfd", "process", "terminated")

    def __init__(self, delivery: Delivery, process: SupervisedJob | subprocess.Popen[bytes] | None,
                 output: IO[bytes] | None, error: str | None = None) -> None:
        self.delivery = delivery
        self.process = process
        self.output = output  # the captured stdout (rpc serve), else None
        self.error = error  # why the command could not start
        self.terminated = False  # amq signalled it (second Ctrl+C): not the command's fault
        self.pidfd = _pidfd(process)

    @property
    def ok(self) -> bool:
        return self.process is not None and self.process.returncode == 0

    def ended(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def outcome(self) -> str:
        """How the command ended, for a person: ``exited with status 3`` and the like."""
        if self.process is None:
            return f"could not start ({self.error})"
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def read_output(self) -> bytes:
        if self.output is None:
            return b""
        self.output.seek(0)
        return self.output.read()

    def close(self) -> None:
        if self.output is not None:
            self.output.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _pidfd(process: SupervisedJob | subprocess.Popen[bytes] | None) -> int | None:
    """A descriptor that becomes readable when the process ends (Linux 5.3+), or None
    (and None for a supervised job: the supervisor's socket tells of its end)."""
    if not isinstance(process, subprocess.Popen) or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(process.pid)
    except OSError:
        return None


class Pool:
    """Starts a command per delivery and tells which have ended."""

    def __init__(self, command: str, environ: dict[str, str], stdout_fd: int | None,
                 stderr_fd: int | None, capture: bool) -> None:
        self.command = command
        self.environ = environ
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.capture = capture
        self.jobs: list[Job] = []
        self.spawner = Spawner()

    def __len__(self) -> int:
        return len(self.jobs)

    def start(self, d: Delivery) -> Job:
        """Run the command for a delivery under a supervisor (``supervisor.py``): body on
        stdin (a temporary file, so a large body never blocks amq), a process group of its
        own, stdout passed through or captured."""
        import tempfile
        # The job owns the captured output until it is settled (Job.close).
        output = tempfile.TemporaryFile() if self.capture else None  # noqa: SIM115
        try:
            with tempfile.TemporaryFile() as stdin:
                stdin.write(d.body)
                stdin.seek(0)
                process = self.spawner.spawn(
                    self.command, dict(self.environ, **message_environment(d)),
                    stdin.fileno(), output.fileno() if output is not None else self.stdout_fd,
                    self.stderr_fd)
            job = Job(d, process, output)
        except (OSError, ValueError) as err:  # E2BIG (huge headers), no /bin/sh, ...
            job = Job(d, None, output, error=str(err))
        self.jobs.append(job)
        return job

    def ended(self) -> list[Job]:
        """The jobs whose command has ended, taken out of the pool."""
        done = [job for job in self.jobs if job.ended()]
        for job in done:
            self.jobs.remove(job)
        return done

    def wait(self, timeout: float) -> None:
        """Sleep until a command ends or ``timeout`` passes."""
        supervisor = self.spawner.fileno()
        fds = [job.pidfd for job in self.jobs if job.pidfd is not None]
        if supervisor is not None:
            fds.append(supervisor)
        elif not self.jobs or len(fds) < len(self.jobs):
            time.sleep(min(timeout, 0.01) if self.jobs else timeout)
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(timeout * 1000)

    def close(self) -> None:
        """Stop the supervisor (which kills what may still run of the commands)."""
        self.spawner.close()

    def signal_all(self, signo: int) -> None:
        """Send a signal to every running command's process group."""
        for job in self.jobs:
            if job.process is not None and job.process.returncode is None:
                job.terminated = True
                try:
                    os.killpg(job.process.pid, signo)
                except (ProcessLookupError, PermissionError):
                    pass


def _output_closed(fd: int | None) -> bool:
    """Whether the reader of our stdout has gone (``amq receive --exec cat | head -1``)."""
    if fd is None:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _fd, ev in poller.poll(0))


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # not a real file (a test's StringIO): the command inherits ours


# --- settling and the loop ----------------------------------------------------------------

class Handler(Protocol):
    """What a pool does with each delivery, before and after its command."""

    capture: bool  # capture the command's stdout (else it goes to amq's stdout)

    def admit(self, d: Delivery) -> bool:
        """Whether to run the command; when not, the handler has settled the delivery."""

    def settle(self, job: Job) -> bool:
        """Ack, nack or reply for a command that ended; whether it succeeded."""


class AckOnExit:
    """``receive --exec``: ack when the command exits 0, else requeue or reject."""

    capture = False

    def __init__(self, env: Environment, sub: "Subscription", on_failure: OnFailure) -> None:
        self.env = env
        self.sub = sub
        self.on_failure = on_failure

    def admit(self, d: Delivery) -> bool:
        return True

    def settle(self, job: Job) -> bool:
        if job.ok:
            self.sub.ack(job.delivery.delivery_tag)
            return True
        fail(self.env, self.sub, job, self.on_failure)
        return False


def fail(env: Environment, sub: "Subscription", job: Job, on_failure: OnFailure) -> None:
    """Requeue or reject a failed command's delivery, and say so on stderr."""
    requeue = on_failure is OnFailure.REQUEUE
    sub.nack(job.delivery.delivery_tag, requeue=requeue)
    d = job.delivery
    env.say(f"amq: the command {job.outcome()} for a message from '{d.queue}' "
            f"(routing key '{d.routing_key}'): {'requeued' if requeue else 'rejected'}")


class Tally:
    """What a pool did: messages handled, commands that failed."""

    __slots__ = ("failed", "handled")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0


class Interrupts:
    """Counts Ctrl+C (SIGINT) and SIGTERM while a pool runs, instead of raising."""

    def __init__(self) -> None:
        self.count = 0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signo in (signal.SIGINT, signal.SIGTERM):
                self._saved[signo] = signal.signal(signo, self._on_signal)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signo, handler in self._saved.items():
            if handler is not None:
                signal.signal(signo, handler)

    def _on_signal(self, _signo: int, _frame: "FrameType | None") -> None:
        self.count += 1


class Workers:
    """The loop: take deliveries while there is room, start their commands, settle them.

    A command still running when the connection is lost is left to finish (killing a job
    half-way is worse); its delivery went with the channel, so its result is not
    acknowledged, and the broker delivers the message again (``Resilient.holds``)."""

    def __init__(self, env: Environment, sub: "Resilient", settings: Settings,
                 handler: Handler, pool: Pool) -> None:
        self.env = env
        self.sub = sub
        self.settings = settings
        self.handler = handler
        self.pool = pool
        self.tally = Tally()
        self.taken = 0
        self.last_activity = self.last_keepalive = time.monotonic()
        self.signals_seen = 0
        self.output_closed = False
        self.generation = sub.generation  # connections lost so far, as last seen

    def run(self) -> Tally:
        """Run until --count, --timeout, Ctrl+C or a closed stdout; raises
        KeyboardInterrupt after a Ctrl+C and BrokenPipeError after a closed stdout, once
        every command has ended and been settled."""
        with Interrupts() as interrupts:
            try:
                while self._step(interrupts):
                    pass
            except BaseException:
                self.pool.signal_all(signal.SIGTERM)  # their messages go back to the queue
                raise
        if interrupts.count:
            raise KeyboardInterrupt
        if self.output_closed:
            raise BrokenPipeError
        return self.tally

    def _step(self, interrupts: Interrupts) -> bool:
        """One turn of the loop; False when it is over."""
        self._settle_ended()
        self._notice_loss()
        self._react(interrupts)
        room = self._room()
        if interrupts.count or self.output_closed or room == 0:
            if not self.pool:
                return False
            self._wait()
            return True
        self._take(room)
        return bool(self.pool) or not self._idle_expired()

    def _room(self) -> int:
        room = self.settings.concurrency - len(self.pool)
        if self.settings.limit is not None:
            room = min(room, self.settings.limit - self.taken)
        return room

    def _take(self, room: int) -> None:
        if self.pool:
            wait = FETCH_SLICE
        elif self.settings.timeout is None:
            wait = IDLE_SLICE
        else:
            left = self.settings.timeout - (time.monotonic() - self.last_activity)
            wait = max(0.0, min(IDLE_SLICE, left))
        batch = self.sub.fetch(room, wait)
        self.last_keepalive = time.monotonic()
        if batch:
            self.last_activity = self.last_keepalive
        for d in batch:
            self.taken += 1
            if self.handler.admit(d):
                self.pool.start(d)
            else:
                self.tally.handled += 1

    def _idle_expired(self) -> bool:
        timeout = self.settings.timeout
        return timeout is not None and time.monotonic() - self.last_activity >= timeout

    def _wait(self) -> None:
        """Wait for a command to end, keeping the broker connection serviced."""
        self.pool.wait(IDLE_SLICE)
        if time.monotonic() - self.last_keepalive >= KEEPALIVE:
            self.sub.fetch(0, 0.001)  # takes nothing; lets pika answer heartbeats
            self.last_keepalive = time.monotonic()

    def _settle_ended(self) -> None:
        for job in self.pool.ended():
            try:
                self._settle(job)
            finally:
                job.close()
            self.last_activity = time.monotonic()

    def _notice_loss(self) -> None:
        if self.sub.generation == self.generation:
            return
        self.generation = self.sub.generation
        orphans = [job for job in self.pool.jobs if not self.sub.holds(job.delivery.delivery_tag)]
        if orphans:
            self.env.say(f"amq: {len(orphans)} command(s) still running, left to finish: "
                         "their messages will be delivered again (possibly while they "
                         "still run), their results not acknowledged")

    def _settle(self, job: Job) -> None:
        tag = job.delivery.delivery_tag
        if not self.sub.holds(tag):
            self._notice_loss()
            d = job.delivery
            self.env.say(f"amq: the command {job.outcome()} for a message from '{d.queue}' "
                         "after its delivery was lost with the connection: not "
                         "acknowledged, it will be delivered again")
            return
        if job.terminated:
            self.sub.nack(tag, requeue=True)
            return
        self.tally.handled += 1
        if not job.ok and not self.handler.capture and _output_closed(self.pool.stdout_fd):
            self.output_closed = True  # it failed writing to a closed pipe: not its fault
            self.sub.nack(tag, requeue=True)
            return
        if not self.handler.settle(job):
            self.tally.failed += 1

    def _react(self, interrupts: Interrupts) -> None:
        """Ctrl+C: the first stops taking, the second terminates, the third kills."""
        if interrupts.count == self.signals_seen:
            return
        self.signals_seen = interrupts.count
        running = len(self.pool)
        if self.signals_seen == 1 and running:
            self.env.say(f"amq: stopping: waiting for {running} running command(s) "
                         "(Ctrl+C again to terminate them)")
        elif self.signals_seen == 2 and running:
            self.env.say(f"amq: terminating {running} command(s); their messages go back "
                         "to the queue")
            self.pool.signal_all(signal.SIGTERM)
        elif self.signals_seen > 2:
            self.pool.signal_all(signal.SIGKILL)


def run_workers(env: Environment, sub: "Resilient", settings: Settings,
                handler: Handler, banner: str | None = None) -> Tally:
    """Run the settings' command per delivery of a subscription, then cancel it."""
    pool = Pool(settings.command, base_environment(env, os.environ), env.stdout_fd,
                _fileno(env.stderr), handler.capture)
    if banner and env.stderr_isatty and settings.limit is None:
        env.say(banner)
    try:
        return Workers(env, sub, settings, handler, pool).run()
    finally:
        try:
            pool.close()
        finally:
            sub.cancel()


def check_outcome(tally: Tally, settings: Settings, queue: str) -> None:
    """The errors a finished pool reports: nothing arrived in time, commands failed."""
    if tally.handled == 0 and settings.timeout is not None:
        raise errors.NothingReceived(
            f"no message arrived on '{queue}' within {settings.timeout:g}s")
    if tally.failed:
        raise errors.CommandFailed(
            f"the command failed for {tally.failed} of {tally.handled} message(s)")


def exec_each(env: Environment, sub: "Resilient", settings: Settings) -> None:
    """``amq receive QUEUE --exec CMD``, on a consumer subscribed with the settings'
    prefetch."""
    queue = sub.queue
    handler = AckOnExit(env, sub, settings.on_failure)
    banner = (f" [*] Running the command for each message on '{queue}' "
              f"({settings.concurrency} at a time). To exit press CTRL+C")
    check_outcome(run_workers(env, sub, settings, handler, banner), settings, queue)

