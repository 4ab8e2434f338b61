"""Strings that are not UTF-8: kept as bytes, written as ``$bytes``, never a crash.

Pure functions of the codec, the JSON format, the command-line parsing, the ``--exec``
environment and the terminal rendering; the same cases end to end on both brokers are in
``tests/test_cli_bytes.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
from decimal import Decimal

import pytest
from rich.console import Console

from amqcli.amqp.codec import (
    amqp_decimal,
    check_table,
    dump_properties,
    load_properties,
    name_from_json,
    name_to_json,
    properties_from_json,
    properties_to_json,
    shown,
    text_or_bytes,
    to_json_value,
)
from amqcli.amqp.model import Delivery, Properties
from amqcli.amqp.names import check_name
from amqcli.cli.parsing import parse_arguments, parse_headers, parse_properties
from amqcli.cli.workers import message_environment
from amqcli.errors import UsageError
from amqcli.formats import OutputFormat, delivery_to_json, encode, message_from_json
from amqcli.render import MessagePrinter

ARGV_FF = os.fsdecode(b"\xff")  # what Python makes of a 0xff byte in argv


def b64(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode()}


# --- the codec ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, held", [
    ("text", "text"), ("é", "é"), (b"text", "text"), (b"\xc3\xa9", "é"),
    (b"\xff", b"\xff"), ("k" + ARGV_FF, b"k\xff"), (bytearray(b"\xfe"), b"\xfe"),
])
def test_strings_are_text_when_utf8_else_bytes(value, held) -> None:
    assert text_or_bytes(value) == held
    assert type(text_or_bytes(value)) is type(held)


def test_names_and_properties_in_json() -> None:
    assert name_to_json("q") == "q"
    assert name_to_json(b"q\xff") == b64(b"q\xff")
    assert name_to_json("q" + ARGV_FF) == b64(b"q\xff")
    assert name_from_json(b64(b"q\xff"), "routing_key") == b"q\xff"
    assert name_from_json(b64(b"q"), "routing_key") == "q"  # UTF-8 bytes are the text
    assert name_from_json(5, "routing_key") == "5"
    with pytest.raises(ValueError, match="routing_key must be a string"):
        name_from_json([1], "routing_key")


def test_no_string_can_make_json_output_fail() -> None:
    value = {"s": "x" + ARGV_FF, "b": b"\xff", "ok": "é",
             b"key\xff": 1, "k" + ARGV_FF: [ARGV_FF]}
    out = to_json_value(value)
    assert out == {"s": b64(b"x\xff"), "b": b64(b"\xff"), "ok": "é",
                   "key\\xff": 1, "k\\xff": [b64(b"\xff")]}
    json.dumps(out, ensure_ascii=False).encode("utf-8")  # must not raise


def test_string_properties_that_are_not_utf8_are_stored_and_read_back_as_bytes() -> None:
    props = Properties(correlation_id=b"c\xfe", reply_to="r" + ARGV_FF, message_id="m",
                       headers={"k": b"\xff"}, priority=3)
    values = properties_to_json(props)
    assert values["correlation_id"] == b64(b"c\xfe")
    assert values["reply_to"] == b64(b"r\xff")
    assert values["message_id"] == "m"
    back = load_properties(dump_properties(props))
    assert back == props._replace(reply_to=b"r\xff")
    assert properties_from_json(values) == back


@pytest.mark.parametrize("given, kept", [
    ("1.50", "1.50"), ("-0.001", "-0.001"), ("1E+2", "100"), ("-0", "0"), ("-0.00", "0.00"),
    ("2147483647", "2147483647"), ("-2147483648", "-2147483648"), ("1E-255", "1E-255"),
    ("0E+30", "0"),
])
def test_decimals_take_the_form_the_wire_keeps(given, kept) -> None:
    assert str(amqp_decimal(Decimal(given))) == kept


@pytest.mark.parametrize("given", ["2147483648", "1E+10", "1E-256", "NaN", "Infinity",
                                   "12345678901234567890.123"])
def test_decimals_the_wire_cannot_carry_are_refused(given) -> None:
    with pytest.raises(ValueError, match="decimal"):
        amqp_decimal(Decimal(given))


def test_check_table_names_the_value_it_refuses() -> None:
    assert check_table({"a": [ARGV_FF, {"b": Decimal("1E+1")}]}) == \
        {"a": [b"\xff", {"b": Decimal(10)}]}
    with pytest.raises(ValueError, match=r"header 'a'\[1\].b: integer .* 64 bits"):
        check_table({"a": [0, {"b": 2**64}]})
    with pytest.raises(ValueError, match=r"header 't': timestamp -1 is out of range"):
        check_table({"t": dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)})
    with pytest.raises(ValueError, match=r"header name 'k\\xff' is not valid UTF-8"):
        check_table({"k" + ARGV_FF: 1})


def test_check_name_refuses_names_that_are_not_utf8() -> None:
    assert check_name("queue", b"q") == "q"
    for bad in (b"q\xff", "q" + ARGV_FF):
        with pytest.raises(UsageError, match=r"queue name 'q\\xff' is not valid UTF-8"):
            check_name("queue", bad)


# --- the command line ---------------------------------------------------------------------

def test_header_argument_and_property_values_from_argv_keep_their_bytes() -> None:
    assert parse_headers([f"k={ARGV_FF}", "t=é"]) == {"k": b"\xff", "t": "é"}
    assert parse_arguments([f"x-custom={ARGV_FF}"]) == {"x-custom": b"\xff"}
    assert parse_properties([f"correlation_id=c{ARGV_FF}"]) == {"correlation_id": b"c\xff"}


@pytest.mark.parametrize("item, message", [
    (f"{ARGV_FF}=1", r"--header name '\\xff' is not valid UTF-8"),
    ("n:=18446744073709551616", r"--header 'n': integer 18446744073709551616 does not fit"),
    ('d:={"$decimal": "1E+40"}', r"--header 'd': decimal 1E\+40 does not fit"),
    ('t:={"$timestamp": -5}', r"--header 't': timestamp -5 is out of range"),
])
def test_header_values_amqp_cannot_carry_are_usage_errors(item, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_headers([item])


# --- JSON, byte formats, --exec, the terminal --------------------------------------------

BAD = Delivery(3, b"x\xff", Properties(correlation_id=b"c\xfe", headers={"k": b"\xff"}),
               "ex", b"rk.\xff", True, "q")


def test_a_delivery_with_bytes_names_in_every_byte_format() -> None:
    obj = delivery_to_json(BAD)
    assert obj["routing_key"] == b64(b"rk.\xff")
    assert obj["properties"] == {"correlation_id": b64(b"c\xfe")}
    assert obj["headers"] == {"k": b64(b"\xff")}
    for fmt in (OutputFormat.RAW, OutputFormat.BODY, OutputFormat.NUL, OutputFormat.JSON):
        assert encode(BAD, fmt)
    line = encode(BAD, OutputFormat.JSON)
    again = message_from_json(line, None, None)
    assert again.routing_key == b"rk.\xff"
    assert again.properties == BAD.properties
    assert again.body == BAD.body


def test_json_input_with_bad_names_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="routing_key must be a string"):
        message_from_json('{"body": "", "routing_key": [1]}', None, None)
    with pytest.raises(UsageError, match="bad \\$bytes value for correlation_id"):
        message_from_json('{"body": "", "properties": {"correlation_id": {"$bytes": 5}}}',
                          None, None)


def test_the_exec_environment_carries_the_very_bytes() -> None:
    env = message_environment(BAD)
    assert os.fsencode(env["AMQ_ROUTING_KEY"]) == b"rk.\xff"
    assert os.fsencode(env["AMQ_CORRELATION_ID"]) == b"c\xfe"
    assert json.loads(env["AMQ_HEADERS"]) == {"k": b64(b"\xff")}
    for value in env.values():
        os.fsencode(value)  # what Popen does: must not raise


def test_the_terminal_shows_bad_bytes_escaped() -> None:
    out = io.StringIO()
    MessagePrinter(Console(file=out, width=200, color_system=None)).print(BAD, 1)
    text = out.getvalue()
    text.encode("utf-8")  # printable on a UTF-8 terminal
    assert "rk.\\xff" in text
    assert "correlation_id=c\\xfe" in text
    assert '{"k": {"$bytes": "/w=="}}' in text


def test_shown_escapes_what_is_not_utf8() -> None:
    assert shown(b"a\xffb") == "a\\xffb"
    assert shown("a" + ARGV_FF) == "a\\xff"
    assert shown("é") == "é"


def test_json_properties_that_are_null_are_unset() -> None:
    m = message_from_json('{"body": "", "properties": {"correlation_id": null, '
                          '"reply_to": {"$bytes": "/w=="}}}', None, "q")
    assert m.properties == Properties(reply_to=b"\xff")
