"""Unit tests for amqcli.amqp.codec: lossless JSON for AMQP field values and properties."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from amqcli.amqp.codec import (
    dump_properties,
    from_json_value,
    load_properties,
    properties_from_json,
    properties_to_json,
    to_json_value,
)
from amqcli.amqp.model import Properties

UTC = dt.UTC

ROUND_TRIP_VALUES = [
    # plain JSON values come back unchanged
    "text",
    "",
    "ünïcødé",
    0,
    -42,
    2**62,
    1.5,
    True,
    False,
    None,
    [],
    {},
    [1, "two", None, True],
    {"a": 1, "b": "x", "c": None, "d": [1, 2]},
    # tagged types
    b"",
    b"\x00\x01\xff",
    b"plain ascii",
    dt.datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC),
    dt.datetime(1970, 1, 1, tzinfo=UTC),
    Decimal("1.50"),
    Decimal("-0.001"),
    Decimal("12345678901234567890.123"),
    # nested tables and arrays
    {"outer": {"inner": b"\x00", "when": dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)}},
    [[b"\x01"], {"d": Decimal("2.5")}, [[[]]]],
    {"list": [b"a", {"k": [Decimal("0.1"), None]}]},
    # tables whose only key starts with "$" must not be mistaken for a tag
    {"$bytes": "AAE="},
    {"$timestamp": 0},
    {"$decimal": "1.5"},
    {"$table": {"a": 1}},
    {"$other": 1},
    {"$": "x"},
    {"$bytes": b"\x00"},
    {"nested": {"$timestamp": 5}},
    [{"$decimal": "x"}],
    {"$table": {"$table": {"$bytes": "AA=="}}},
    # two "$" keys: not a tag either
    {"$bytes": "AAE=", "$decimal": "1"},
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_round_trip(value) -> None:
    encoded = to_json_value(value)
    # the encoding must survive an actual JSON text round trip
    text = json.dumps(encoded)
    decoded = from_json_value(json.loads(text))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    "value, encoded",
    [
        (b"\x00\x01", {"$bytes": "AAE="}),
        (bytearray(b"\x00\x01"), {"$bytes": "AAE="}),
        (memoryview(b"\x00\x01"), {"$bytes": "AAE="}),
        (dt.datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC), {"$timestamp": 10}),
        (dt.datetime(1970, 1, 1, 0, 0, 10), {"$timestamp": 10}),  # naive taken as UTC
        (Decimal("1.50"), {"$decimal": "1.50"}),
        ({"$x": 1}, {"$table": {"$x": 1}}),
        ({"$x": 1, "y": 2}, {"$x": 1, "y": 2}),
        ({"a": b"\x00"}, {"a": {"$bytes": "AA=="}}),
        ((1, b"\x00"), [1, {"$bytes": "AA=="}]),
        ({1: "int key"}, {"1": "int key"}),
        ("s", "s"),
        (7, 7),
        (None, None),
    ],
    ids=repr,
)
def test_to_json_value_encoding(value, encoded) -> None:
    assert to_json_value(value) == encoded


def test_timestamp_decodes_as_aware_utc() -> None:
    value = from_json_value({"$timestamp": 1_700_000_000})
    assert value == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert value.utcoffset() == dt.timedelta(0)


def test_non_utc_datetime_encodes_its_instant() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    value = dt.datetime(2024, 1, 1, 2, 0, 0, tzinfo=plus2)
    decoded = from_json_value(to_json_value(value))
    assert decoded == dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)


def test_bytes_decode_as_bytes() -> None:
    assert from_json_value({"$bytes": "AAE="}) == b"\x00\x01"


def test_decimal_keeps_exponent() -> None:
    decoded = from_json_value(to_json_value(Decimal("1.50")))
    assert str(decoded) == "1.50"


def test_to_json_value_output_is_json_serialisable() -> None:
    value = {"b": b"\xff", "t": dt.datetime(2000, 1, 1, tzinfo=UTC), "d": Decimal("3.14"),
             "l": [b"", {"$k": 1}]}
    json.dumps(to_json_value(value))  # must not raise


# --------------------------------------------------------------------------- properties

FULL = Properties(
    content_type="application/json",
    content_encoding="gzip",
    headers={
        "s": "str",
        "n": 5,
        "f": 1.25,
        "b": True,
        "raw": b"\x00\xff",
        "when": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "price": Decimal("9.99"),
        "nested": {"list": [1, b"x"], "$only": {"$weird": 1}},
        "void": None,
        "$solo": {"$bytes": "not a tag"},
    },
    delivery_mode=2,
    priority=7,
    correlation_id="corr-1",
    reply_to="replies",
    expiration="60000",
    message_id="m-1",
    timestamp=1_700_000_000,
    type="order.created",
    user_id="guest",
    app_id="amq",
    cluster_id="c1",
)


@pytest.mark.parametrize(
    "props",
    [
        FULL,
        Properties(content_type="text/plain"),
        Properties(headers={"a": 1}),
        Properties(headers={}),
        Properties(headers={"$only": 1}),
        Properties(delivery_mode=1, priority=0, timestamp=0),
        Properties(expiration="0", app_id=""),
    ],
    ids=["full", "content_type", "headers", "empty-headers", "dollar-headers", "zeros",
         "empty-strings"],
)
def test_properties_round_trip(props: Properties) -> None:
    text = dump_properties(props)
    assert text is not None
    assert load_properties(text) == props


def test_dump_properties_is_compact_json() -> None:
    text = dump_properties(Properties(content_type="a", priority=1))
    assert text is not None
    assert " " not in text
    assert json.loads(text) == {"content_type": "a", "priority": 1}


def test_dump_properties_omits_unset() -> None:
    text = dump_properties(Properties(message_id="x"))
    assert json.loads(text) == {"message_id": "x"}


def test_dump_empty_properties_is_none() -> None:
    assert dump_properties(Properties()) is None


@pytest.mark.parametrize("text", [None, ""])
def test_load_properties_of_nothing_is_empty(text) -> None:
    assert load_properties(text) == Properties()


def test_properties_to_json_tags_headers() -> None:
    values = properties_to_json(Properties(headers={"b": b"\x01"}, priority=3))
    assert values == {"headers": {"b": {"$bytes": "AQ=="}}, "priority": 3}


def test_properties_from_json_untags_headers() -> None:
    props = properties_from_json({"headers": {"b": {"$bytes": "AQ=="}}, "priority": 3})
    assert props == Properties(headers={"b": b"\x01"}, priority=3)


def test_properties_from_json_does_not_mutate_input() -> None:
    values = {"headers": {"b": {"$bytes": "AQ=="}}}
    properties_from_json(values)
    assert values == {"headers": {"b": {"$bytes": "AQ=="}}}
