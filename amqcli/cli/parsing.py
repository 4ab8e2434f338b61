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
Names are text: ``require_utf8`` makes every other parameter refuse words that are not
UTF-8 with a usage error naming the parameter (``ROUTING_KEY 'q\\xff' is not ...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import errors
from ..amqp.codec import check_table, from_json_value, shown, text_or_bytes
from ..amqp.model import PROPERTY_NAMES, Properties

if TYPE_CHECKING:
    from collections.abc import Callable

    from .typer_shim import Command, Context, Parameter

    Callback = Callable[[Context, Parameter, Any], Any]  # a click parameter's callback

INTEGER_ARGS = {
    "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-max-priority",
    "x-delivery-limit", "x-queue-version", "x-consumer-timeout",
    "x-stream-max-segment-size-bytes",
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
            size = len(value.encode() if isinstance(value, str) else value)
            if size > 255:
                raise errors.UsageError(f"property {name} is {size} bytes long; AMQP allows 255")
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


# --- names are text -------------------------------------------------------------------------

# The parameters whose words may be any bytes: bodies, paths, shell commands, and the values
# of --header/--property/--arg (parsing.py keeps those as bytes; their keys it checks).
BYTES_PARAMS = frozenset({"body", "file", "exec_", "command", "users_file", "headers",
                          "properties", "args"})


def _label(param: Parameter) -> str:
    """How the usage line names a parameter: ``QUEUE``, ``--exchange``."""
    if param.param_type_name == "argument":
        return (param.metavar or (param.name or "").upper()).strip("[]")
    return max(param.opts, key=len)


def _not_utf8(value: Any) -> str | None:
    """The first word of ``value`` (a word or a list of them) that is not UTF-8."""
    for word in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(word, str) and not word.isascii():
            try:
                word.encode("utf-8")
            except UnicodeEncodeError:
                return word
    return None


# Routing and binding keys: AMQP short strings (queue and exchange names are checked by
# the backends, naming their kind).
KEY_PARAMS = frozenset({"routing_key", "keys", "dead_letter_routing_key"})


def _utf8_checked(callback: Callback | None) -> Callback:
    def check(ctx: Context, param: Parameter, value: Any) -> Any:
        bad = _not_utf8(value)
        if bad is not None:
            raise errors.UsageError(f"{_label(param)} '{shown(bad)}' is not valid UTF-8 text")
        if param.name in KEY_PARAMS:
            for word in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(word, str) and len(word) > 63 and len(word.encode()) > 255:
                    raise errors.UsageError(f"{_label(param)} is {len(word.encode())} bytes "
                                            "long; AMQP allows at most 255")
        return callback(ctx, param, value) if callback is not None else value
    return check


def require_utf8(tree: Command) -> Command:
    """Make every text parameter of a click tree but ``BYTES_PARAMS`` refuse words that are
    not UTF-8 (Python decodes argv with ``surrogateescape``) with a usage error naming the
    parameter, before the command runs; the tree."""
    commands = [tree]
    while commands:
        command = commands.pop()
        commands += getattr(command, "commands", {}).values()
        for param in command.params:
            if param.name not in BYTES_PARAMS:
                param.callback = _utf8_checked(param.callback)
    return tree
