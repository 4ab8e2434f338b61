"""Streams' words without a broker: ages (x-max-age, --offset TIME), --offset forms, the
x-stream-offset argument forms, and the flags of receive that read a stream."""

import datetime as dt

import pytest

from amqcli import errors
from amqcli.amqp.streams import Offset, offset_of_argument, parse_age, parse_offset
from amqcli.cli.receive import plan_receive

NOW = 1_800_000_000.0


@pytest.mark.parametrize("text, seconds", [
    ("7D", 7 * 86400), ("10m", 600), ("2h", 7200), ("1M", 30 * 86400),
    ("1Y", 365 * 86400), ("30s", 30), ("01s", 1),
])
def test_ages_in_rabbitmq_units(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["0s", "1.5h", "1Y2M", "D", "-1D", " 1s", "7x", "7d", ""])
def test_what_is_not_an_age(text):
    assert parse_age(text) is None


def test_offset_forms():
    assert parse_offset("first", NOW) == Offset("first")
    assert parse_offset("next", NOW) == Offset("next")
    assert parse_offset("42", NOW) == Offset("offset", 42)
    assert parse_offset("10m", NOW) == Offset("time", NOW - 600)
    when = parse_offset("2026-12-01T10:00:00Z", NOW)
    assert when.kind == "time" and when.argument() == dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
    for bad in ("yesterday", "2026-12-01T10:00:00", "-1"):
        with pytest.raises(errors.UsageError, match="--offset"):
            parse_offset(bad, NOW)


def test_x_stream_offset_arguments_as_rabbitmq_takes_them():
    assert offset_of_argument(b"last") == Offset("last")
    assert offset_of_argument(bytearray(b"first")) == Offset("first")
    assert offset_of_argument(7) == Offset("offset", 7)
    assert offset_of_argument(-1) == Offset("first")
    stamp = dt.datetime(2026, 12, 1, 10)
    assert offset_of_argument(stamp).value == stamp.replace(tzinfo=dt.UTC).timestamp()
    assert offset_of_argument("10m").kind == "time"
    for bad in ("bogus", True, 1.5):
        with pytest.raises(errors.PreconditionFailed):
            offset_of_argument(bad)


def test_receive_plans_with_stream_flags():
    plan = plan_receive("events", offset="first", to_end=True)
    assert plan.stream is not None and plan.stream.offset == Offset("first") and \
        plan.stream.to_end
    assert plan_receive("events").stream is None
    with pytest.raises(errors.UsageError, match="not -e"):
        plan_receive(exchange="x", offset="first")


def test_the_server_sends_the_offset_header_as_a_long_as_rabbitmq_does():
    from amqcli.server.frames import encode_table
    encoded = encode_table({"x-stream-offset": 5})
    assert encoded.endswith(b"x-stream-offsetl" + (5).to_bytes(8, "big"))
