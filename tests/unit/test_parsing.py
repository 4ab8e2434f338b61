"""Unit tests for amqcli.cli.parsing: command-line words to typed values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from amqcli.amqp.model import PROPERTY_NAMES, Properties
from amqcli.cli.parsing import (
    build_properties,
    parse_arguments,
    parse_headers,
    parse_properties,
)
from amqcli.errors import UsageError

# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "item, key, value",
    [
        ("k=v", "k", "v"),
        ("k=", "k", ""),
        ("k=5", "k", "5"),  # plain = always gives a string
        ("k=true", "k", "true"),
        ("n:=5", "n", 5),
        ("n:=-1", "n", -1),
        ("f:=1.5", "f", 1.5),
        ("ok:=true", "ok", True),
        ("ok:=false", "ok", False),
        ("nothing:=null", "nothing", None),
        ('s:="quoted"', "s", "quoted"),
        ('tags:=["a","b"]', "tags", ["a", "b"]),
        ('t:={"x": 1}', "t", {"x": 1}),
        ('b:={"$bytes": "AAE="}', "b", b"\x00\x01"),
        ('ts:={"$timestamp": 0}', "ts", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ('d:={"$decimal": "1.50"}', "d", Decimal("1.50")),
        ('nested:=[{"$bytes": "AA=="}]', "nested", [b"\x00"]),
        ("expr=a=b", "expr", "a=b"),
        ("expr=a:=b", "expr", "a:=b"),
        ("url=http://h/?x=1", "url", "http://h/?x=1"),
        ("k=v with spaces", "k", "v with spaces"),
        ("x-custom=1", "x-custom", "1"),
    ],
)
def test_parse_headers_one(item: str, key: str, value) -> None:
    result = parse_headers([item])
    assert result == {key: value}
    assert type(result[key]) is type(value)


def test_parse_headers_many_and_last_wins() -> None:
    assert parse_headers(["a=1", "b:=2", "a=3"]) == {"a": "3", "b": 2}


@pytest.mark.parametrize("items", [None, []])
def test_parse_headers_nothing(items) -> None:
    assert parse_headers(items) == {}


@pytest.mark.parametrize("item", ["novalue", "=x", "=", ":", "n:=notjson", "n:=", "n:=[1,",
                                  "n:={'a': 1}"])
def test_parse_headers_errors(item: str) -> None:
    with pytest.raises(UsageError):
        parse_headers([item])


def test_parse_headers_error_names_option() -> None:
    with pytest.raises(UsageError) as info:
        parse_headers(["novalue"], option="--xyz")
    assert "--xyz" in str(info.value)
    assert "novalue" in str(info.value)


def test_parse_headers_empty_json_key_refused() -> None:
    with pytest.raises(UsageError):
        parse_headers([":=5"])


def test_parse_headers_bad_decimal_tag_is_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_headers(['d:={"$decimal": "abc"}'])


def test_parse_headers_bad_timestamp_tag_is_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_headers(['t:={"$timestamp": null}'])


def test_parse_headers_bad_timestamp_string_is_usage_error() -> None:
    # int("abc") is a ValueError, which is caught
    with pytest.raises(UsageError):
        parse_headers(['t:={"$timestamp": "abc"}'])


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "item, key, value",
    [
        ("x-max-length=10", "x-max-length", 10),
        ("x-message-ttl=60000", "x-message-ttl", 60000),
        ("x-expires=1000", "x-expires", 1000),
        ("x-max-length-bytes=1048576", "x-max-length-bytes", 1048576),
        ("x-max-priority=10", "x-max-priority", 10),
        ("x-delivery-limit=3", "x-delivery-limit", 3),
        ("x-queue-version=2", "x-queue-version", 2),
        ("x-consumer-timeout=5", "x-consumer-timeout", 5),
        ("x-message-ttl=-1", "x-message-ttl", -1),  # the broker judges the range
        ("x-message-ttl=abc", "x-message-ttl", "abc"),  # the broker refuses it with 406
        ("x-max-length=1.5", "x-max-length", "1.5"),
        ("x-single-active-consumer=true", "x-single-active-consumer", True),
        ("x-single-active-consumer=false", "x-single-active-consumer", False),
        ("x-single-active-consumer=TRUE", "x-single-active-consumer", True),
        ("x-single-active-consumer=yes", "x-single-active-consumer", "yes"),
        ("x-foo=5", "x-foo", "5"),
        ("x-foo=true", "x-foo", "true"),
        ("x-foo:=5", "x-foo", 5),
        ("x-foo:=true", "x-foo", True),
        ("x-max-length:=\"10\"", "x-max-length", "10"),  # := is taken literally
        ("x-queue-type=quorum", "x-queue-type", "quorum"),
        ("x-dead-letter-exchange=", "x-dead-letter-exchange", ""),
        ("alternate-exchange=ae", "alternate-exchange", "ae"),
        ("x-overflow=reject-publish", "x-overflow", "reject-publish"),
        ('x-b:={"$bytes": "AAE="}', "x-b", b"\x00\x01"),
    ],
)
def test_parse_arguments_one(item: str, key: str, value) -> None:
    result = parse_arguments([item])
    assert result == {key: value}
    assert type(result[key]) is type(value)


def test_parse_arguments_many() -> None:
    assert parse_arguments(["x-max-length=10", "x-queue-type=quorum", "x-foo:=[1]"]) == {
        "x-max-length": 10, "x-queue-type": "quorum", "x-foo": [1]}


@pytest.mark.parametrize("items", [None, []])
def test_parse_arguments_nothing(items) -> None:
    assert parse_arguments(items) == {}


@pytest.mark.parametrize("item", ["x-max-length", "=10", "x-foo:=nope"])
def test_parse_arguments_errors(item: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_arguments([item])
    assert "--arg" in str(info.value)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize(
    "item, name, value",
    [
        ("content-type=text/plain", "content_type", "text/plain"),
        ("content_type=text/plain", "content_type", "text/plain"),
        ("Content-Type=text/plain", "content_type", "text/plain"),
        ("content-encoding=gzip", "content_encoding", "gzip"),
        ("correlation-id=abc", "correlation_id", "abc"),
        ("reply-to=amq.rabbitmq.reply-to", "reply_to", "amq.rabbitmq.reply-to"),
        ("expiration=60000", "expiration", "60000"),  # shortstr in AMQP, stays a string
        ("message-id=42", "message_id", "42"),
        ("type=order", "type", "order"),
        ("user-id=guest", "user_id", "guest"),
        ("app-id=amq", "app_id", "amq"),
        ("cluster-id=c", "cluster_id", "c"),
        ("priority=0", "priority", 0),
        ("priority=255", "priority", 255),
        ("priority=5", "priority", 5),
        ("delivery-mode=1", "delivery_mode", 1),
        ("delivery_mode=2", "delivery_mode", 2),
        ("timestamp=1700000000", "timestamp", 1700000000),
        ("timestamp=0", "timestamp", 0),
        ("message-id=a=b", "message_id", "a=b"),
    ],
)
def test_parse_properties_one(item: str, name: str, value) -> None:
    result = parse_properties([item])
    assert result == {name: value}
    assert type(result[name]) is type(value)


@pytest.mark.parametrize(
    "item",
    [
        "priority=256",
        "priority=-1",
        "priority=high",
        "priority=1.5",
        "delivery-mode=0",
        "delivery-mode=3",
        "delivery-mode=persistent",
        "timestamp=now",
        "timestamp=-1",
        "noequals",
        "=x",
    ],
)
def test_parse_properties_errors(item: str) -> None:
    with pytest.raises(UsageError):
        parse_properties([item])


@pytest.mark.parametrize("item", ["bogus=1", "headers=x", "content-typ=x"])
def test_parse_properties_unknown_lists_known(item: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_properties([item])
    message = str(info.value)
    assert item.split("=")[0] in message
    for known in PROPERTY_NAMES:
        if known != "headers":
            assert known in message
    assert "--header" in message


def test_parse_properties_many() -> None:
    assert parse_properties(["content-type=a", "priority=3", "app_id=x"]) == {
        "content_type": "a", "priority": 3, "app_id": "x"}


@pytest.mark.parametrize("items", [None, []])
def test_parse_properties_nothing(items) -> None:
    assert parse_properties(items) == {}


# --------------------------------------------------------------------------- build_properties


@pytest.mark.parametrize(
    "props, headers, persistent, expected",
    [
        ({}, {}, False, Properties()),
        ({"priority": 3}, {}, False, Properties(priority=3)),
        ({}, {"a": 1}, False, Properties(headers={"a": 1})),
        ({}, {}, True, Properties(delivery_mode=2)),
        ({"delivery_mode": 1}, {}, True, Properties(delivery_mode=2)),
        ({"content_type": "t"}, {"h": "v"}, True,
         Properties(content_type="t", headers={"h": "v"}, delivery_mode=2)),
    ],
)
def test_build_properties(props, headers, persistent, expected) -> None:
    assert build_properties(props, headers, persistent) == expected


def test_build_properties_does_not_mutate_input() -> None:
    props = {"priority": 1}
    build_properties(props, {"a": 1}, True)
    assert props == {"priority": 1}
