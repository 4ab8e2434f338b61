"""Lossless JSON for AMQP field values and message properties.

AMQP field tables hold types JSON lacks (byte arrays, timestamps, decimals). They are
written as one-key objects ``{"$bytes": "<base64>"}``, ``{"$timestamp": <epoch s>}`` and
``{"$decimal": "1.50"}``; a real table whose only key starts with ``$`` is wrapped as
``{"$table": {...}}``. The store and ``--format json`` both use this encoding.
"""

from __future__ import annotations

from typing import Any

from .model import Properties


def to_json_value(value: Any) -> Any:
    """An AMQP field value as a JSON-able value (tagged where JSON has no type for it)."""
    if isinstance(value, (str, int, float, type(None))):
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
        table = {str(k): to_json_value(v) for k, v in value.items()}
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
    return values


def properties_from_json(values: dict[str, Any]) -> Properties:
    if values.get("headers") is not None:
        values = dict(values, headers=from_json_value(values["headers"]))
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
