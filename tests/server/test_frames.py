"""The frame layer on its own: reading, decoding and encoding against pamqp."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from pamqp import body, frame, header
from pamqp import commands as C

from amqcli.amqp.model import Properties
from amqcli.server import frames


def test_read_frames_waits_for_complete_frames() -> None:
    data = frame.marshal(C.Channel.Open(), 1) + frame.marshal(body.ContentBody(b"abc"), 1)
    for cut in range(len(data)):
        found, used, error = frames.read_frames(bytearray(data[:cut]), 131072)
        assert error is None
        assert used == sum(len(f.payload) + 8 for f in found) <= cut
    found, used, error = frames.read_frames(bytearray(data), 131072)
    assert [(f.type, f.channel) for f in found] == [(1, 1), (3, 1)] and used == len(data)


def test_frame_errors_after_the_good_frames() -> None:
    good = frame.marshal(C.Channel.Open(), 1)
    found, used, error = frames.read_frames(bytearray(good + b"\x09\0\0\0\0\0\0\xce"), 131072)
    assert len(found) == 1 and used == len(good)
    assert isinstance(error, frames.errors.FrameError)
    assert str(error) == "501 FRAME_ERROR - type 9, all octets = <<>>: unknown_frame"


def test_methods_encode_as_pamqp_does() -> None:
    for method in (C.Connection.Tune(2047, 131072, 60), C.Basic.QosOk(),
                   C.Basic.Ack(7, True), C.Basic.Nack(3, False, True),
                   C.Queue.DeclareOk("q", 5, 1), C.Exchange.Declare(
                       exchange="x", exchange_type="topic", durable=True, nowait=True,
                       arguments={"alternate-exchange": "ae"})):
        assert frames.method_frame(method, 3) == frame.marshal(method, 3), method.name


def test_names_pamqp_would_refuse_are_sent() -> None:
    ok = frames.build(C.Queue.DeclareOk, "my queue é", 0, 0)
    _used, _channel, decoded = frame.unmarshal(frames.method_frame(ok, 1))
    assert decoded.queue == "my queue é"


def test_deliver_templates() -> None:
    encoder = frames.DeliverEncoder(2)
    for tag in (1, 2, 2**40):
        data = encoder.frame("ctag-é", tag, True, "ex change", "rk")
        _used, channel, deliver = frame.unmarshal(data)
        assert channel == 2
        assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered,
                deliver.exchange, deliver.routing_key) == ("ctag-é", tag, True, "ex change", "rk")


def test_properties_round_trip() -> None:
    props = Properties(
        content_type="application/json", headers={
            "int": 5, "big": 2**40, "neg": -3, "float": 0.1, "text": "é", "flag": True,
            "bytes": b"\x00\xff", "none": None, "table": {"inner": [1, "two", 3.5]},
            "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "price": decimal.Decimal("1.50")},
        delivery_mode=2, priority=7, correlation_id="c", reply_to="r", expiration="60000",
        message_id="m", timestamp=1700000000, type="t", user_id="guest", app_id="a")
    data = frames.content_frames(1, frames.encode_properties(props), b"body", 4096)
    _used, _channel, content = frame.unmarshal(data)
    assert isinstance(content, header.ContentHeader) and content.body_size == 4
    back = frames.properties_from_wire(content.properties)
    assert back.headers is not None
    assert back._replace(headers=None) == props._replace(headers=None)
    assert back.headers["float"] == 0.1  # a double, not pamqp's 32-bit float
    assert back.headers["bytes"] == b"\x00\xff"
    assert list(back.headers) == list(props.headers or {})  # key order kept
    assert back.headers["table"] == {"inner": [1, "two", 3.5]}


def test_bodies_are_split_by_frame_max() -> None:
    data = frames.content_frames(1, frames.encode_properties(Properties()), b"x" * 10000, 4096)
    found, used, error = frames.read_frames(bytearray(data), 4096)
    assert error is None and used == len(data)
    assert [len(f.payload) for f in found[1:]] == [4088, 4088, 1824]


@pytest.mark.parametrize("data, shown", [
    (b"", "<<>>"), (b"ab", '<<"ab">>'), (b"\x00\x14", "<<0,20>>"),
    (b"x" * 60, '<<"' + "x" * 48 + '",...>>'),
])
def test_octets_as_rabbitmq_shows_them(data: bytes, shown: str) -> None:
    assert frames.octets(data) == shown
