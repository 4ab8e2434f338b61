"""The job supervisor: nothing a command started outlives the amq worker that ran it.

``receive --exec`` and ``rpc serve`` run ``sh -c CMD`` per message. When the worker dies
(``kill -9``, a crash), its unacknowledged messages go to another worker; the commands it
was running must not carry on beside their second run. A parent-death signal on ``sh``
alone would not do: ``sh -c 'a; b'`` runs ``a`` as a child of its own, and ``a`` may
start more. So the commands are started by a supervisor: a fork of the worker, made once
per pool (a fork per job costs more than the job's own start: measured in
``benchmarks/exec_throughput.py``), that asks Linux for a signal when the worker dies
(``PR_SET_PDEATHSIG``). The worker hands it each job over a socket pair (the command,
its environment, and its stdin/stdout/stderr as descriptors); the supervisor spawns
``sh -c CMD`` as the leader of a new process group, reports its pid, and later its exit
status. When the worker dies, or closes the socket, the supervisor kills (SIGKILL, as
the worker was killed) the process group of every job still running: ``sh`` and
everything started under it that stayed in the group, grandchildren included. A command
that leaves its process group (``setsid``) escapes; so do background processes still
running after ``sh`` itself has exited and its message was settled.

The worker still signals a job's group itself (Ctrl+C twice: SIGTERM, three times:
SIGKILL). Where Linux's ``prctl`` is not available, ``Spawner.spawn`` falls back to a
plain ``subprocess.Popen`` in a process group of its own (no protection on a worker's
death).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import subprocess
from collections.abc import Callable, Mapping

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
SHELL = "/bin/sh"
WORKER_DIED = signal.SIGUSR1  # what the kernel sends the supervisor when the worker dies
# Signals a command gets in their default disposition, whatever amq did with them
# (Python ignores SIGPIPE and SIGXFSZ; the supervisor ignores SIGINT and SIGTERM).
DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, WORKER_DIED)
_LENGTH = struct.Struct("!I")
UNKNOWN_END = -signal.SIGKILL  # the returncode of a job whose supervisor vanished


class SupervisedJob:
    """One job, seen from the worker: Popen's ``pid``, ``poll()`` and ``returncode``
    (negative: killed by that signal). The pid is ``sh``'s, and its process group's."""

    __slots__ = ("pid", "spawner")

    def __init__(self, spawner: Spawner, pid: int) -> None:
        self.spawner = spawner
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self.spawner.exits.get(self.pid)

    def poll(self) -> int | None:
        if self.pid not in self.spawner.exits:
            self.spawner.collect()
        return self.returncode


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, or None off Linux."""
    if not hasattr(os, "fork") or os.uname().sysname != "Linux":
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None


class Spawner:
    """The worker's side: starts jobs through the supervisor (started on first use)."""

    def __init__(self) -> None:
        self.prctl = _prctl()
        self.sock: socket.socket | None = None
        self.supervisor_pid = 0
        self.exits: dict[int, int] = {}  # sh pid -> its returncode, once reported
        self.running: set[int] = set()
        self._pending = b""

    def fileno(self) -> int | None:
        """Readable when a job's end is reported (None without a supervisor)."""
        return self.sock.fileno() if self.sock is not None else None

    def spawn(self, command: str, env: Mapping[str, str], stdin: int, stdout: int | None,
              stderr: int | None) -> SupervisedJob | subprocess.Popen[bytes]:
        """Start a job; raises OSError (or ValueError) when it cannot start, as Popen."""
        if self.prctl is None:
            return subprocess.Popen(command, shell=True, stdin=stdin, stdout=stdout,
                                    stderr=stderr, env=dict(env), process_group=0)
        for attempt in (1, 2):
            if self.sock is None:
                self._start(self.prctl)
            try:
                return self._request(command, env, stdin, stdout, stderr)
            except (ConnectionError, EOFError):
                self._lost()  # the supervisor was killed: start another, once
                if attempt == 2:
                    raise OSError("the job supervisor ended unexpectedly") from None
        raise AssertionError("unreachable")

    def _request(self, command: str, env: Mapping[str, str], stdin: int, stdout: int | None,
                 stderr: int | None) -> SupervisedJob:
        assert self.sock is not None
        payload = pickle.dumps((command, dict(env), stdout is not None, stderr is not None))
        fds = [stdin] + [fd for fd in (stdout, stderr) if fd is not None]
        socket.send_fds(self.sock, [_LENGTH.pack(len(payload))], fds)
        self.sock.sendall(payload)
        while True:  # the answer to this request; exits of other jobs may come first
            line = self._line(block=True)
            kind, _, rest = line.partition(b" ")
            if kind == b"S":
                pid = int(rest)
                self.running.add(pid)
                return SupervisedJob(self, pid)
            if kind == b"E":
                number, _, text = rest.decode("utf-8", "replace").partition(" ")
                raise OSError(int(number), text)
            self._record(line)

    def collect(self) -> None:
        """Take in the exits the supervisor has reported so far, without waiting."""
        if self.sock is None:
            return
        try:
            while True:
                line = self._line(block=False)
                if not line:
                    return
                self._record(line)
        except (ConnectionError, EOFError):
            self._lost()

    def _record(self, line: bytes) -> None:
        kind, pid, code = line.split()
        if kind == b"X":
            self.running.discard(int(pid))
            self.exits[int(pid)] = int(code)

    def _line(self, block: bool) -> bytes:
        """One line from the supervisor (b"" when none is there and not ``block``)."""
        assert self.sock is not None
        while b"\n" not in self._pending:
            try:
                chunk = self.sock.recv(65536, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return b""
            if not chunk:
                raise EOFError
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line

    def _start(self, prctl: Callable[..., int]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _Supervisor(theirs, prctl).run(worker)
            finally:
                os._exit(1)
        theirs.close()
        self.sock, self.supervisor_pid, self._pending = ours, pid, b""

    def _lost(self) -> None:
        """The supervisor is gone: what it ran is reported ended, outcome unknown."""
        for pid in self.running:
            self.exits[pid] = UNKNOWN_END
        self.running.clear()
        self.close()

    def close(self) -> None:
        """Stop the supervisor; it kills the groups of jobs still running."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            try:
                os.waitpid(self.supervisor_pid, 0)
            except ChildProcessError:
                pass


class _Supervisor:
    """The supervisor's side, in the forked child: spawn, reap, report, kill on death."""

    def __init__(self, sock: socket.socket, prctl: Callable[..., int]) -> None:
        self.sock = sock
        self.prctl = prctl
        self.jobs: set[int] = set()  # sh pids (= process groups) still running

    def run(self, worker: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the worker's to handle
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(WORKER_DIED, self._worker_died)
        self.prctl(PR_SET_PDEATHSIG, int(WORKER_DIED), 0, 0, 0)
        if os.getppid() != worker:  # the worker died before prctl took effect
            os._exit(0)
        keep = self.sock.fileno()
        os.closerange(3, keep)  # the worker's broker socket, its store, ...
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        poller = select.poll()
        poller.register(keep, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        while True:
            for fd, _events in poller.poll():
                if fd == wake_r:
                    os.read(wake_r, 4096)
                    self._reap()
                elif not self._take_request():
                    self._kill_all()

    def _take_request(self) -> bool:
        """Spawn the job the worker sent; False when the worker closed the socket."""
        try:
            head, fds, _flags, _addr = socket.recv_fds(self.sock, _LENGTH.size, 3)
            if len(head) < _LENGTH.size:
                return False
            payload = _recv_exactly(self.sock, _LENGTH.unpack(head)[0])
        except (ConnectionError, EOFError):
            return False
        command, env, has_stdout, has_stderr = pickle.loads(payload)
        targets = [0] + ([1] if has_stdout else []) + ([2] if has_stderr else [])
        actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, fd, target)
                                          for fd, target in zip(fds, targets, strict=False)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in fds if fd > 2]
        signal.pthread_sigmask(signal.SIG_BLOCK, [WORKER_DIED])  # spawned is recorded
        try:
            pid = os.posix_spawn(SHELL, [SHELL, "-c", command], env, file_actions=actions,
                                 setpgroup=0, setsigdef=DEFAULT_SIGNALS, setsigmask=())
            self.jobs.add(pid)
            answer = b"S %d\n" % pid
        except (OSError, ValueError) as err:
            errno = getattr(err, "errno", None) or 0
            answer = f"E {errno} {getattr(err, 'strerror', None) or err}\n".encode()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [WORKER_DIED])
            for fd in fds:
                os.close(fd)
        self.sock.sendall(answer)
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.jobs.discard(pid)
            try:
                self.sock.sendall(b"X %d %d\n" % (pid, os.waitstatus_to_exitcode(status)))
            except OSError:
                self._kill_all()

    def _worker_died(self, *_args: object) -> None:
        self._kill_all()

    def _kill_all(self) -> None:
        """End the process group of every job still running, then this supervisor."""
        for pgid in self.jobs:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
