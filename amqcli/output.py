"""Deliveries written to stdout, and, into a pipe, which of them the reader has used.

``DeliveryWriter`` writes deliveries in an output format (bytes from ``formats``, rich
text for ``pretty``). Into a regular file, a terminal or a socket a message written is
a message delivered, and ``receive`` acknowledges it after the write. A pipe is
different: bytes written sit in the pipe's buffer until the reader takes them, and a
reader such as ``head -1`` takes a whole block and exits at once. ``PipeOutput`` writes
into a pipe without ever blocking (so the broker connection keeps being serviced) and
tells which deliveries are *settled*: their bytes have left the pipe and the reader was
still there ``HOLD`` seconds later, or came back for more bytes before that (a reader
reads again once it has used what it read). Only those are safe to acknowledge; the rest go
back to the queue when the reader goes away, which ``PipeOutput`` notices too (the write
end of a pipe polls as an error once no reader is left).
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import stat
import termios
import time
from bisect import bisect_right
from collections import deque
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from .amqp.model import Delivery
from .formats import OutputFormat, encode_batch

if TYPE_CHECKING:
    from rich.console import Console

# A reader must still be there this long after taking a message's bytes for the message
# to count as used: `head` reads a block and exits within microseconds, a reader that
# uses its input is still reading (or waiting for EOF) a tenth of a second later.
HOLD = 0.1
# How often the unread byte count is sampled while bytes wait in the pipe.
SAMPLE = 0.01
# A write into a pipe that polled writable never blocks when it is at most this long
# (one free page of the pipe's buffer takes it whole).
CHUNK = select.PIPE_BUF


class ReaderGone(BrokenPipeError):
    """The reader of the pipe has closed its end. Raised without an errno: click turns an
    EPIPE ``OSError`` that reaches it into exit 1, and this one must reach ``cli.run``."""


def is_pipe(fd: int) -> bool:
    """Whether ``fd`` is a pipe or FIFO (where ``PipeOutput`` applies)."""
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


class DeliveryWriter:
    """Writes deliveries to a file descriptor; how many made it out before a closed pipe.

    ``console`` (a rich Console on the same stdout) is needed for ``pretty`` only.
    """

    def __init__(self, fd: int, fmt: OutputFormat, console: Console | None = None) -> None:
        self.fd = fd
        self.fmt = fmt
        self.count = 0  # deliveries numbered so far (pretty shows #N)
        self.printer: Any = None
        if fmt is OutputFormat.PRETTY:
            from .render import MessagePrinter
            assert console is not None, "pretty output needs a console"
            self.printer = MessagePrinter(console)

    def encode(self, batch: list[Delivery]) -> list[bytes]:
        """Each delivery's bytes as this writer would write them."""
        if self.printer is None:
            return encode_batch(batch, self.fmt)
        out = []
        for d in batch:
            self.count += 1
            with self.printer.console.capture() as captured:
                self.printer.print(d, self.count)
            out.append(captured.get().encode("utf-8", "surrogateescape"))
        return out

    def write(self, batch: list[Delivery]) -> int:
        """Write the batch (blocking); how many deliveries were written whole."""
        if self.printer is not None:
            for i, d in enumerate(batch):
                try:
                    self.count += 1
                    self.printer.print(d, self.count)
                except BrokenPipeError:
                    return i
            return len(batch)
        chunks = self.encode(batch)
        data = memoryview(b"".join(chunks))
        sent = 0
        try:
            while sent < len(data):
                sent += os.write(self.fd, data[sent:])
        except BrokenPipeError:
            done, total = 0, 0
            for chunk in chunks:
                total += len(chunk)
                if total > sent:
                    break
                done += 1
            return done
        return len(batch)


class PipeOutput:
    """Deliveries into a pipe: written without blocking, settled once used (see module).

    ``add`` queues deliveries; ``pump`` writes what the pipe takes now; ``settle`` says
    up to which delivery tag every message is settled. ``ReaderGone`` from any of them
    means the reader has gone: nothing unsettled may be acknowledged.
    """

    def __init__(self, writer: DeliveryWriter, hold: float = HOLD) -> None:
        self.writer = writer
        self.hold = hold  # 0 where a message needs only to leave the pipe (a stream's)
        self.fd = writer.fd
        self.pending = bytearray()  # encoded, not yet written
        self.written = 0  # bytes written into the pipe so far
        self.unread = 0  # of those, still in the pipe at the last look
        # Batches not wholly taken yet: [end offset of each delivery, their tags, how many
        # of them were taken]; and groups taken, not yet settled: (when, last tag, count).
        self.in_pipe: deque[list[Any]] = deque()
        self.taken: deque[tuple[float, int, int]] = deque()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLOUT)
        self._nread = array.array("i", [0])

    @property
    def busy(self) -> bool:
        """Whether anything written or to write is still unsettled."""
        return bool(self.in_pipe or self.taken)

    def add(self, batch: list[Delivery]) -> None:
        if not batch:
            return
        chunks = self.writer.encode(batch)
        ends = list(accumulate(map(len, chunks), initial=self.written + len(self.pending)))
        del ends[0]
        self.in_pipe.append([ends, [d.delivery_tag for d in batch], 0])
        self.pending += b"".join(chunks)

    def gone(self) -> bool:
        """Whether the reader has closed its end (the write end polls as an error)."""
        return any(ev & select.POLLERR for _fd, ev in self.poller.poll(0))

    def pump(self) -> None:
        """Write pending bytes while the pipe takes them without blocking."""
        while self.pending:
            events = self.poller.poll(0)
            if any(ev & select.POLLERR for _fd, ev in events):
                raise ReaderGone
            if not events:
                return
            try:
                n = os.write(self.fd, self.pending[:CHUNK])
            except BrokenPipeError:
                raise ReaderGone from None
            del self.pending[:n]
            self.written += n

    def settle(self) -> tuple[int, int] | None:
        """``(last tag, count)`` of deliveries newly settled, or None. Looks at the pipe:
        marks as taken what left it, settles what was taken ``HOLD`` seconds ago or before
        a later take, if the reader is still there."""
        now = time.monotonic()
        fcntl.ioctl(self.fd, termios.FIONREAD, self._nread)
        self.unread = self._nread[0]
        consumed = self.written - self.unread
        last, n = 0, 0
        in_pipe = self.in_pipe
        while in_pipe:
            ends, tags, done = batch = in_pipe[0]
            k = bisect_right(ends, consumed, lo=done)
            if k > done:
                last, n, batch[2] = tags[k - 1], n + k - done, k
            if k < len(ends):
                break
            in_pipe.popleft()
        if n:
            self.taken.append((now, last, n))
        taken = self.taken
        if not taken or (len(taken) == 1 and taken[0][0] + self.hold > now):
            return None
        if self.gone():
            raise ReaderGone
        # Every take but the newest is settled at once: bytes left the pipe after it was
        # seen, so the reader read again, which a reader does once it has used what it
        # read before (one read() is one step of the unread count: the pipe's lock). The
        # newest once its hold is over.
        last, n = 0, 0
        while len(taken) > 1 or (taken and taken[0][0] + self.hold <= now):
            _when, last, count = taken.popleft()
            n += count
        return last, n

    def wait(self, most: float) -> None:
        """Sleep until the pipe can take bytes (when some are pending), the reader goes,
        or ``most`` seconds pass, whichever is first."""
        self.poller.modify(self.fd, select.POLLOUT if self.pending else 0)
        try:
            self.poller.poll(max(0, most) * 1000)
        finally:
            self.poller.modify(self.fd, select.POLLOUT)

    def next_look(self) -> float:
        """Seconds until ``settle`` can have news: a sample of the unread count while
        bytes wait in the pipe, else the end of the oldest hold (a day when idle)."""
        if self.in_pipe:
            return SAMPLE
        if self.taken:
            return max(0.0, self.taken[0][0] + self.hold - time.monotonic())
        return 86400.0
