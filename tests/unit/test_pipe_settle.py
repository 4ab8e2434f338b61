"""PipeOutput on a real pipe: when a message written into a pipe counts as used (settled,
safe to acknowledge). A reader that reads again has used what it read before: settled at
once. What the reader took last waits out the hold, and is never settled once the reader
has gone (``head -1``)."""

from __future__ import annotations

import os
import time

import pytest

from amqcli.amqp.model import Delivery, Properties
from amqcli.formats import OutputFormat
from amqcli.output import DeliveryWriter, PipeOutput, ReaderGone

HOLD = 0.5  # long enough that a settle before it is not the hold's doing


def deliveries(first: int, count: int) -> list[Delivery]:
    return [Delivery(tag, b"m%03d" % tag, Properties(), "", "q", False)
            for tag in range(first, first + count)]


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(w, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def written(r: int, w: int) -> PipeOutput:
    out = PipeOutput(DeliveryWriter(w, OutputFormat.RAW), hold=HOLD)
    out.add(deliveries(1, 6))  # 6 lines of 5 bytes: "m001\n" ...
    out.pump()
    assert out.settle() is None  # nothing taken yet
    return out


def test_a_reader_that_reads_again_settles_what_it_read_before(pipe):
    r, w = pipe
    out = written(r, w)
    assert os.read(r, 10) == b"m001\nm002\n"
    assert out.settle() is None  # taken, its hold not over, nothing read after it
    assert os.read(r, 5) == b"m003\n"
    started = time.monotonic()
    assert out.settle() == (2, 2)  # the first two: read before the last read
    assert time.monotonic() - started < HOLD / 2
    assert out.settle() is None  # the third waits out its hold
    time.sleep(HOLD)
    assert out.settle() == (3, 1)


def test_a_reader_that_reads_once_and_goes_settles_nothing(pipe):
    r, w = pipe
    out = written(r, w)
    assert os.read(r, 1024) == b"".join(b"m%03d\n" % t for t in range(1, 7))
    assert out.settle() is None
    os.close(r)  # head -1: one read, then gone
    time.sleep(HOLD)
    with pytest.raises(ReaderGone):
        out.settle()


def test_a_part_of_a_message_read_is_not_a_later_take(pipe):
    r, w = pipe
    out = written(r, w)
    assert os.read(r, 5) == b"m001\n"
    assert out.settle() is None
    assert os.read(r, 2) == b"m0"  # into the second message, not through it
    assert out.settle() is None  # the first waits: no message taken after it yet
    assert os.read(r, 3) == b"02\n"
    assert out.settle() == (1, 1)
