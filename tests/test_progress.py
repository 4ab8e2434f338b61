"""Progress bars: on a terminal's stderr for long `send --lines` and `receive --count`,
never in pipes; and no rich import on the plain path of `amq send`."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time

from conftest import AMQ_CMD


class PtyStderr:
    """A pseudo-terminal for a child's stderr, and what the child wrote to it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)

    def started(self) -> None:
        """The child has its copy: ours must go, so reading ends when the child does."""
        os.close(self.slave)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer has gone
                break
            if not chunk:
                break
            self.chunks.append(chunk)

    def text(self) -> str:
        self.reader.join(timeout=30)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", "replace")


def _send_slowly(amq, q, stderr):
    """`amq send q --lines` from a stdin that takes over a second to deliver 300 lines."""
    proc = subprocess.Popen(AMQ_CMD + ["send", q, "--lines"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr,
                            env=amq.env(TERM="xterm-256color"))
    for part in range(3):
        proc.stdin.write("".join(f"{part}-{i}\n" for i in range(100)).encode())
        proc.stdin.flush()
        time.sleep(0.6)
    proc.stdin.close()
    return proc


def test_send_lines_shows_a_bar_on_a_terminal(amq, name):
    q = name()
    term = PtyStderr()
    proc = _send_slowly(amq, q, term.slave)
    term.started()
    assert proc.wait(timeout=60) == 0
    shown = term.text()
    assert "sending" in shown and "msg/s" in shown
    assert "sent 300 messages" in shown
    assert amq.queue(q)["messages"] == 300


def test_send_lines_in_a_pipe_shows_nothing(amq, name):
    q = name()
    proc = _send_slowly(amq, q, subprocess.PIPE)
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
    assert amq.queue(q)["messages"] == 300


def _receive_slowly(amq, q, stderr):
    """`amq receive q --count 3` (stdout a pipe) while the messages come over a second."""
    amq("send", q, "first")
    proc = subprocess.Popen(AMQ_CMD + ["receive", q, "--count", "3"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr,
                            env=amq.env(TERM="xterm-256color"))
    for body in ("second", "third"):
        time.sleep(0.7)
        amq("send", q, body)
    return proc


def test_receive_count_shows_a_bar_on_a_terminal(amq, name):
    q = name()
    term = PtyStderr()
    proc = _receive_slowly(amq, q, term.slave)
    term.started()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.decode().splitlines() == ["first", "second", "third"]
    shown = term.text()
    assert "receiving" in shown and "3/3" in shown and "msg/s" in shown


def test_receive_count_in_a_pipe_shows_nothing(amq, name):
    q = name()
    proc = _receive_slowly(amq, q, subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.decode().splitlines() == ["first", "second", "third"]
    assert err == b""


CHECK_IMPORTS = """
import sys
from amqcli.cli import run
from amqcli.cli.env import Environment
code = run(sys.argv[1:], Environment(stderr_isatty=True))
print(int(code), sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] == "rich"}))
"""


def test_plain_send_does_not_import_rich(amq, name):
    q = name()
    r = subprocess.run([sys.executable, "-c", CHECK_IMPORTS, "send", q, "x"],
                       check=False, capture_output=True, env=amq.env(), timeout=60)
    assert r.stdout.decode().split("\n")[0] == "0 []", r.stderr.decode()
    assert amq.queue(q)["messages"] == 1
