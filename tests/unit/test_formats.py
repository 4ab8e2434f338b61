"""Unit tests for amqcli.formats: output encodings, JSON input, record splitting."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
from decimal import Decimal

import pytest

from amqcli.amqp.model import Delivery, Message, Properties
from amqcli.errors import UsageError
from amqcli.formats import (
    OutputFormat,
    delivery_to_json,
    encode,
    encode_batch,
    message_from_json,
    read_all,
    read_records,
)

UTC = dt.UTC


NO_PROPERTIES = Properties()


def delivery(body: bytes, properties: Properties = NO_PROPERTIES, *, exchange: str = "ex",
             routing_key: str = "rk", redelivered: bool = False, queue: str = "") -> Delivery:
    return Delivery(1, body, properties, exchange, routing_key, redelivered, queue)


# --------------------------------------------------------------------------- encode


@pytest.mark.parametrize(
    "fmt, body, expected",
    [
        (OutputFormat.RAW, b"hello", b"hello\n"),
        (OutputFormat.RAW, b"hello\n", b"hello\n"),
        (OutputFormat.RAW, b"a\nb", b"a\nb\n"),
        (OutputFormat.RAW, b"two\n\n", b"two\n\n"),
        (OutputFormat.RAW, b"", b"\n"),
        (OutputFormat.RAW, b"\x00\xff", b"\x00\xff\n"),
        (OutputFormat.RAW, b"cr\r", b"cr\r\n"),
        (OutputFormat.BODY, b"hello", b"hello"),
        (OutputFormat.BODY, b"hello\n", b"hello\n"),
        (OutputFormat.BODY, b"", b""),
        (OutputFormat.BODY, b"\x00\xff", b"\x00\xff"),
        (OutputFormat.NUL, b"hello", b"hello\0"),
        (OutputFormat.NUL, b"", b"\0"),
        (OutputFormat.NUL, b"x\0", b"x\0\0"),
        (OutputFormat.NUL, b"line\n", b"line\n\0"),
    ],
)
def test_encode_byte_formats(fmt, body, expected) -> None:
    assert encode(delivery(body), fmt) == expected


@pytest.mark.parametrize("fmt", [OutputFormat.RAW, OutputFormat.BODY, OutputFormat.NUL,
                                 OutputFormat.JSON])
def test_encode_batch_matches_encode(fmt) -> None:
    batch = [delivery(b) for b in (b"a", b"b\n", b"", b"\xff\x00", "é".encode())]
    assert encode_batch(batch, fmt) == [encode(d, fmt) for d in batch]


@pytest.mark.parametrize(
    "body",
    [b"hello", b"", b"multi\nline\nbody\n", "ünïcødé ✓".encode(), b"{\"json\": 1}",
     b"tab\tand\rcr", b"nul\x00inside"],
)
def test_encode_json_utf8_body(body: bytes) -> None:
    out = encode(delivery(body), OutputFormat.JSON)
    assert out.endswith(b"\n")
    assert out.count(b"\n") == 1  # exactly one line
    obj = json.loads(out)
    assert obj["body_encoding"] == "utf-8"
    assert obj["body"] == body.decode("utf-8")


@pytest.mark.parametrize("body", [b"\xff", b"\x00\x01\xfe\xff", b"\xc3(", "é".encode()[:1]])
def test_encode_json_binary_body_is_base64(body: bytes) -> None:
    out = encode(delivery(body), OutputFormat.JSON)
    assert out.count(b"\n") == 1 and out.endswith(b"\n")
    obj = json.loads(out)
    assert obj["body_encoding"] == "base64"
    assert base64.b64decode(obj["body"]) == body


def test_encode_json_fields() -> None:
    props = Properties(content_type="text/plain", priority=4, headers={"h": b"\x01", "n": 2})
    d = delivery(b"x", props, exchange="e", routing_key="r.k", redelivered=True, queue="q")
    obj = json.loads(encode(d, OutputFormat.JSON))
    assert obj == {
        "body": "x",
        "body_encoding": "utf-8",
        "exchange": "e",
        "routing_key": "r.k",
        "redelivered": True,
        "properties": {"content_type": "text/plain", "priority": 4},
        "headers": {"h": {"$bytes": "AQ=="}, "n": 2},
        "queue": "q",
    }


def test_delivery_to_json_without_queue_or_headers() -> None:
    obj = delivery_to_json(delivery(b"x"))
    assert "queue" not in obj
    assert obj["headers"] == {}
    assert obj["properties"] == {}


def test_encode_json_keeps_non_ascii_literal() -> None:
    out = encode(delivery("é".encode()), OutputFormat.JSON)
    assert "é".encode() in out


# --------------------------------------------------------------------------- message_from_json

ROUND_TRIP_DELIVERIES = [
    delivery(b"plain"),
    delivery(b""),
    delivery(b"\x00\x01\x02\xff\xfe"),
    delivery(b"\xff" * 100),
    delivery("ünïcødé\nwith newline".encode()),
    delivery(b"x", Properties(headers={"bytes": b"\x00\xff", "int": 7, "str": "s",
                                       "bool": False, "list": [1, "a", b"b"]})),
    delivery(b"x", Properties(headers={"when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                                       "dec": Decimal("1.25"), "tbl": {"$only": 1}})),
    delivery(b"body", Properties(content_type="application/octet-stream",
                                 content_encoding="gzip", delivery_mode=2, priority=9,
                                 correlation_id="c", reply_to="r", expiration="1000",
                                 message_id="m", timestamp=1_700_000_000, type="t",
                                 user_id="u", app_id="a", cluster_id="cl",
                                 headers={"k": "v"})),
    delivery(b"q", exchange="", routing_key=""),
    delivery(b"q", exchange="amq.topic", routing_key="a.b.c"),
]


@pytest.mark.parametrize("d", ROUND_TRIP_DELIVERIES)
def test_message_from_json_reads_back_encode(d: Delivery) -> None:
    line = encode(d, OutputFormat.JSON)
    msg = message_from_json(line, None, None)
    assert isinstance(msg, Message)
    assert msg.body == d.body
    assert msg.properties == d.properties
    assert msg.exchange == d.exchange
    assert msg.routing_key == d.routing_key


def test_message_from_json_accepts_str() -> None:
    line = encode(delivery(b"abc"), OutputFormat.JSON).decode("utf-8")
    assert message_from_json(line, None, None).body == b"abc"


@pytest.mark.parametrize(
    "exchange, routing_key, want_exchange, want_rk",
    [
        (None, None, "obj-ex", "obj.rk"),
        ("cli-ex", None, "cli-ex", "obj.rk"),
        (None, "cli.rk", "obj-ex", "cli.rk"),
        ("cli-ex", "cli.rk", "cli-ex", "cli.rk"),
        ("", "", "", ""),  # an explicit empty value still overrides
    ],
)
def test_message_from_json_command_line_overrides(exchange, routing_key, want_exchange,
                                                  want_rk) -> None:
    line = json.dumps({"body": "b", "exchange": "obj-ex", "routing_key": "obj.rk"})
    msg = message_from_json(line, exchange, routing_key)
    assert msg.exchange == want_exchange
    assert msg.routing_key == want_rk


def test_message_from_json_minimal_object() -> None:
    msg = message_from_json('{"body": "hi"}', None, None)
    assert msg == Message(b"hi", Properties(), "", "")


def test_message_from_json_non_string_body_is_its_json() -> None:
    msg = message_from_json('{"body": {"a": [1, 2]}}', None, None)
    assert json.loads(msg.body) == {"a": [1, 2]}


def test_message_from_json_headers_only() -> None:
    msg = message_from_json('{"body": "", "headers": {"b": {"$bytes": "AAE="}, "n": 1}}',
                            None, None)
    assert msg.properties == Properties(headers={"b": b"\x00\x01", "n": 1})


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "",
        "{",
        b"\xff\xfe",
        "[1, 2]",
        '"just a string"',
        "42",
        "null",
        "{}",
        '{"headers": {}}',
        '{"body": "!!!not base64!!!", "body_encoding": "base64"}',
        '{"body": "AAE", "body_encoding": "base64"}',  # bad padding
        '{"body": 5, "body_encoding": "base64"}',
        '{"body": "x", "properties": {"no_such_property": 1}}',
    ],
)
def test_message_from_json_bad_input(line) -> None:
    with pytest.raises(UsageError):
        message_from_json(line, None, None)


def test_message_from_json_properties_not_object() -> None:
    with pytest.raises(UsageError):
        message_from_json('{"body": "x", "properties": "abc"}', None, None)


def test_message_from_json_bad_decimal_header() -> None:
    with pytest.raises(UsageError):
        message_from_json('{"body": "x", "headers": {"d": {"$decimal": "zz"}}}', None, None)


# --------------------------------------------------------------------------- read_records


def records_from(data: bytes, separator: bytes, chunk_size: int = 1 << 20) -> list[bytes]:
    """Feed data through a real pipe and collect every record read_records yields."""
    r, w = os.pipe()
    try:
        # small inputs fit in the pipe buffer; write from a thread anyway to be safe
        def writer() -> None:
            try:
                os.write(w, data) if data else None
            finally:
                os.close(w)
        t = threading.Thread(target=writer)
        t.start()
        out: list[bytes] = []
        for batch in read_records(r, separator, chunk_size):
            assert isinstance(batch, list)
            out.extend(batch)
        t.join()
        return out
    finally:
        os.close(r)


RECORD_CASES = [
    # (data, separator, expected records)
    (b"", b"\n", []),
    (b"a\nb\nc\n", b"\n", [b"a", b"b", b"c"]),
    (b"a\nb\nlast", b"\n", [b"a", b"b", b"last"]),  # final record without separator
    (b"only", b"\n", [b"only"]),
    (b"a\n\nb\n", b"\n", [b"a", b"", b"b"]),  # empty lines kept
    (b"\n\n", b"\n", [b"", b""]),
    (b"\n", b"\n", [b""]),
    (b"\nx", b"\n", [b"", b"x"]),
    (b"a\0b\0", b"\0", [b"a", b"b"]),
    (b"a\0b", b"\0", [b"a", b"b"]),
    (b"line one\nline two\0second\0", b"\0", [b"line one\nline two", b"second"]),
    (b"a\0\0b\0", b"\0", [b"a", b"", b"b"]),
    (b"a\nb\n", b"\0", [b"a\nb\n"]),  # newline is data under NUL separation
    (b"\xff\x00\n\xfe", b"\n", [b"\xff\x00", b"\xfe"]),
]


@pytest.mark.parametrize("data, separator, expected", RECORD_CASES)
def test_read_records(data: bytes, separator: bytes, expected: list[bytes]) -> None:
    assert records_from(data, separator) == expected


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7])
@pytest.mark.parametrize("data, separator, expected", RECORD_CASES)
def test_read_records_small_reads(data, separator, expected, chunk_size) -> None:
    # records split across reads must be stitched back together
    assert records_from(data, separator, chunk_size) == expected


def test_read_records_large_input() -> None:
    lines = [f"record-{i}".encode() for i in range(20000)]
    data = b"\n".join(lines) + b"\n"
    assert len(data) > 65536  # more than one pipe buffer
    assert records_from(data, b"\n", chunk_size=4096) == lines


def test_read_records_batches_are_nonempty_lists() -> None:
    r, w = os.pipe()
    os.write(w, b"a\nb\n")
    os.close(w)
    try:
        batches = list(read_records(r, b"\n"))
    finally:
        os.close(r)
    assert batches == [[b"a", b"b"]]


def test_read_all() -> None:
    r, w = os.pipe()
    os.write(w, b"some\0bytes\n")
    os.close(w)
    try:
        assert read_all(r) == b"some\0bytes\n"
    finally:
        os.close(r)
