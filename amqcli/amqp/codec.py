"""Lossless JSON for AMQP field values and message properties.

AMQP field tables hold types JSON lacks (byte arrays, timestamps, decimals). They are
written as one-key objects ``{"$bytes": "<base64>"}``, ``{"$timestamp": <epoch s>}`` and
``{"$decimal": "1.50"}``; a real table whose only key starts with ``$`` is wrapped as
``{"$table": {...}}``. The store and ``--format json`` both use this encoding.

AMQP strings are octets. A string that is not UTF-8 (a header value, a string property, a
routing key another client sent) is held as ``bytes`` and written as ``$bytes`` too, so
no message can make JSON output fail; a ``str`` holding lone surrogates (argv decoded by
Python with ``surrogateescape``) is written as the bytes it stands for. Table keys are
JSON keys: one that is not UTF-8 is shown with backslash escapes (the one lossy case).

``check_table`` is for tables on their way in (``--header``, ``--arg``, JSON input): it
refuses what an AMQP field table cannot carry, with the same words on both brokers, and
gives decimals the one form the wire keeps, so both brokers hand back the same JSON.
"""

from __future__ import annotations

from typing import Any

from .model import Properties

# The basic properties that are strings (shortstr) on the wire.
TEXT_PROPERTIES = (
    "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
    "message_id", "type", "user_id", "app_id", "cluster_id",
)
INT64 = (-(2**63), 2**63 - 1)
DECIMAL_SCALE = (0, 255)  # an octet: the number of decimal places
DECIMAL_VALUE = (-(2**31), 2**31 - 1)  # a 32-bit integer (signed, as pika and RabbitMQ read it)
TIMESTAMP = (0, 253_402_300_799)  # seconds; AMQP's is unsigned, Python's ends with year 9999
_TEXT = frozenset(TEXT_PROPERTIES)


def text_or_bytes(value: str | bytes | bytearray) -> str | bytes:
    """An AMQP string as amq holds it: ``str`` when it is UTF-8, else the ``bytes``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(value)


def shown(value: str | bytes) -> str:
    """A string that may not be UTF-8, printable anywhere: bad bytes as ``\\xNN``."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return bytes(value).decode("utf-8", "backslashreplace")


def name_to_json(value: Any) -> Any:
    """A name or string property for JSON: the text, or ``$bytes`` when not UTF-8."""
    if value.__class__ is str and value.isascii():  # nearly always: the fast way out
        return value
    if isinstance(value, (str, bytes, bytearray)):
        value = text_or_bytes(value)
        if isinstance(value, bytes):
            import base64
            return {"$bytes": base64.b64encode(value).decode("ascii")}
    return value


def name_from_json(value: Any, what: str) -> str | bytes:
    """The inverse of :func:`name_to_json` (``ValueError`` naming ``what`` if malformed)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # "routing_key": 5 means "5"
    if isinstance(value, dict) and list(value) == ["$bytes"]:
        try:
            return text_or_bytes(_bytes(value["$bytes"]))
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad $bytes value for {what}") from err
    raise ValueError(f"{what} must be a string or {{\"$bytes\": ...}}, not {value!r}")


def _key(key: Any) -> str:
    if key.__class__ is str and key.isascii():
        return key
    return shown(key) if isinstance(key, (str, bytes)) else str(key)


def to_json_value(value: Any) -> Any:
    """An AMQP field value as a JSON-able value (tagged where JSON has no type for it)."""
    if isinstance(value, str):
        return value if value.isascii() else name_to_json(value)
    if isinstance(value, (int, float, type(None))):
        return value
    import datetime as dt
    import decimal
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return {"$timestamp": int(value.timestamp())}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dict):
        table = {_key(k): to_json_value(v) for k, v in value.items()}
        if len(table) == 1 and next(iter(table)).startswith("$"):
            return {"$table": table}
        return table
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def _timestamp(v: Any) -> Any:
    import datetime as dt
    return dt.datetime.fromtimestamp(int(v), dt.UTC)


def _decimal(v: Any) -> Any:
    import decimal
    return decimal.Decimal(v)


def _bytes(v: Any) -> bytes:
    import base64
    return base64.b64decode(v)


_TAGS = {
    "$bytes": _bytes,
    "$timestamp": _timestamp,
    "$decimal": _decimal,
    "$table": lambda v: {k: from_json_value(x) for k, x in v.items()},
}


def from_json_value(value: Any) -> Any:
    """The inverse of :func:`to_json_value`; ``ValueError`` for a malformed tagged value."""
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag in _TAGS:
                try:
                    return _TAGS[tag](inner)
                except (TypeError, ValueError, ArithmeticError, AttributeError) as err:
                    raise ValueError(f"bad {tag} value {inner!r}") from err
        return {k: from_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    return value


def properties_to_json(props: Properties) -> dict[str, Any]:
    values = props.as_dict()
    if "headers" in values:
        values["headers"] = to_json_value(values["headers"])
    for name, value in values.items():
        if name in _TEXT and not (value.__class__ is str and value.isascii()):
            values[name] = name_to_json(value)
    return values


def properties_from_json(values: dict[str, Any]) -> Properties:
    """Properties from their JSON form; ``ValueError`` for a malformed tagged value."""
    values = dict(values)
    if values.get("headers") is not None:
        values["headers"] = from_json_value(values["headers"])
    for name, value in values.items():
        if name in _TEXT and value is not None and value.__class__ is not str:
            values[name] = name_from_json(value, name)
    return Properties.from_dict(values)


def dump_properties(props: Properties) -> str | None:
    """Properties as stored: compact JSON, or ``None`` when nothing is set."""
    values = properties_to_json(props)
    if not values:
        return None
    import json
    return json.dumps(values, separators=(",", ":"))


def load_properties(text: str | None) -> Properties:
    if not text:
        return Properties()
    import json
    return properties_from_json(json.loads(text))


# --- what AMQP can carry ---------------------------------------------------------------------

def check_properties(props: Properties) -> Properties:
    """``props``, or ``ValueError`` for a string property past AMQP's 255 bytes."""
    for name in TEXT_PROPERTIES:
        value = getattr(props, name)
        if value is not None:
            size = len(value.encode("utf-8", "surrogateescape") if isinstance(value, str)
                       else value)
            if size > 255:
                raise ValueError(f"property {name} is {size} bytes long; AMQP allows 255")
    return props


def check_table(table: dict[str, Any], what: str = "header") -> dict[str, Any]:
    """``table`` as AMQP carries it, or ``ValueError`` saying which value cannot be.

    Integers must fit in 64 signed bits, timestamps in 0 to year 9999, decimals in a
    32-bit unscaled value with 0 to 255 places; keys must be UTF-8 and at most 255 bytes.
    A decimal comes back in the form the wire keeps: ``1E+2`` as ``100``, ``-0`` as ``0``.
    """
    return {_check_key(k, what): _check_value(v, f"{what} '{k}'") for k, v in table.items()}


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{what} name {key!r} is not a string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} name '{shown(key)}' is not valid UTF-8") from None
    if size > 255:
        raise ValueError(f"{what} name '{key[:40]}...' is {size} bytes long; AMQP allows 255")
    return key


def _check_value(value: Any, where: str) -> Any:
    import datetime as dt
    import decimal
    if isinstance(value, str):
        return text_or_bytes(value)
    if isinstance(value, bool) or value is None or isinstance(value, (float, bytes)):
        return value
    if isinstance(value, int):
        _within(value, INT64, f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, decimal.Decimal):
        return amqp_decimal(value, where)
    if isinstance(value, dt.datetime):
        stamp = int(value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp())
        _within(stamp, TIMESTAMP, f"{where}: timestamp {stamp} is out of range")
        return value
    if isinstance(value, dict):
        return {_check_key(k, where): _check_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_check_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ValueError(f"{where}: AMQP has no field type for {value!r}")


def _within(value: int, bounds: tuple[int, int], message: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(message)


def amqp_decimal(value: Any, where: str = "") -> Any:
    """A decimal as the wire carries it (places 0-255, a 32-bit unscaled value)."""
    import decimal
    prefix = f"{where}: " if where else ""
    too_big = ValueError(f"{prefix}decimal {value} does not fit AMQP's decimal (a 32-bit "
                         "value with 0 to 255 places)")
    if not value.is_finite():
        raise ValueError(f"{prefix}decimal {value} is not a finite number")
    _sign, digits, exponent = value.as_tuple()
    if exponent > 0:  # 1E+2: the wire has no negative places, so 100
        if len(digits) + exponent > 10 and value:
            raise too_big
        value, exponent = decimal.Decimal(int(value)), 0
    unscaled = int(value.scaleb(-exponent, decimal.Context(prec=len(digits) + 1)))
    if not DECIMAL_SCALE[0] <= -exponent <= DECIMAL_SCALE[1] \
            or not DECIMAL_VALUE[0] <= unscaled <= DECIMAL_VALUE[1]:
        raise too_big
    return value.copy_abs() if not unscaled else value  # the wire has no negative zero

