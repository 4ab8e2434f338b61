"""Turning command-line words into typed values, once, at the edge.

``--header K=V`` gives a string; ``--header K:=JSON`` a typed value (httpie's
convention: ``n:=5`` is the integer 5, ``ok:=true`` a boolean, ``tags:='["a","b"]'`` an
array, ``blob:='{"$bytes": "AAE="}'`` a byte array). ``--arg K=V`` types the value the
way RabbitMQ expects for the well-known ``x-`` arguments (integers stay integers), and
``K:=JSON`` works there too.

AMQP strings are octets: a value that is not UTF-8 (``-H "k=$(printf '\\xff')"``, which
Python hands over as a str with lone surrogates) is kept as the bytes the shell passed,
in headers, arguments and properties alike. Keys must be UTF-8. Every table is checked
against what AMQP can carry (``codec.check_table``), so both brokers refuse the same.
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..broker.codec import check_table, from_json_value, text_or_bytes
from ..broker.model import PROPERTY_NAMES, Properties

INTEGER_ARGS = {
    "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-max-priority",
    "x-delivery-limit", "x-queue-version", "x-consumer-timeout",
}
BOOLEAN_ARGS = {"x-single-active-consumer"}


def _split(item: str, option: str) -> tuple[str, str, bool]:
    """``K=V`` or ``K:=JSON`` → (key, value text, is_json)."""
    eq = item.find("=")
    if eq <= 0:
        raise errors.UsageError(f"{option} expects KEY=VALUE or KEY:=JSON, not {item!r}")
    key, value = item[:eq], item[eq + 1:]
    is_json = key.endswith(":")
    key = key[:-1] if is_json else key
    if not key:
        raise errors.UsageError(f"{option} needs a KEY before = in {item!r}")
    return key, value, is_json


def _json_value(key: str, text: str, option: str) -> Any:
    import json
    try:
        return from_json_value(json.loads(text))
    except ValueError:
        raise errors.UsageError(f"{option} {key}:= needs a JSON value, not {text!r}") from None


def _checked(table: dict[str, Any], option: str) -> dict[str, Any]:
    try:
        return check_table(table, option)
    except ValueError as err:
        raise errors.UsageError(str(err)) from None


def parse_headers(items: list[str] | None, option: str = "--header") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, text, is_json = _split(item, option)
        out[key] = _json_value(key, text, option) if is_json else text
    return _checked(out, option)


def _auto(key: str, text: str) -> Any:
    if key in INTEGER_ARGS:
        try:
            return int(text)
        except ValueError:
            return text  # the broker refuses it with its own 406
    if key in BOOLEAN_ARGS and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_arguments(items: list[str] | None, option: str = "--arg") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, text, is_json = _split(item, option)
        out[key] = _json_value(key, text, option) if is_json else _auto(key, text)
    return _checked(out, option)


_INT_PROPERTIES = {"delivery_mode": (1, 2), "priority": (0, 255)}


def parse_properties(items: list[str] | None) -> dict[str, Any]:
    """``--property NAME=VALUE`` for every basic property but ``headers``."""
    names = [n for n in PROPERTY_NAMES if n != "headers"]
    out: dict[str, Any] = {}
    for item in items or []:
        key, text, _ = _split(item, "--property")
        name = key.replace("-", "_").lower()
        if name not in names:
            raise errors.UsageError(
                f"unknown property {key!r}; known: {', '.join(names)} (headers: --header)")
        if name in _INT_PROPERTIES or name == "timestamp":
            try:
                value: Any = int(text)
            except ValueError:
                raise errors.UsageError(f"property {name} must be an integer, not {text!r}") \
                    from None
            low, high = _INT_PROPERTIES.get(name, (0, 2**63 - 1))
            if not low <= value <= high:
                raise errors.UsageError(f"property {name} must be {low} to {high}, not {value}")
        else:
            value = text_or_bytes(text)  # a shortstr is octets: not UTF-8 stays bytes
        out[name] = value
    return out


def build_properties(props: dict[str, Any], headers: dict[str, Any],
                     persistent: bool) -> Properties:
    values = dict(props)
    if headers:
        values["headers"] = headers
    if persistent:
        values["delivery_mode"] = 2
    return Properties.from_dict(values)
