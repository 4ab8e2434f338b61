"""How messages become bytes on stdout and how stdin becomes messages: pure functions.

Output formats of ``amq receive``: ``raw`` (each body then a newline, unless it ends with
one: the default in pipes), ``body`` (bodies byte for byte, nothing between them: with
``--count 1`` exactly one body), ``nul`` (each body then a NUL byte, for ``xargs -0``),
``json`` (one lossless JSON object per line, which ``amq send --format json`` reads back)
and ``pretty`` (rich, for terminals: see ``render.py``).

In JSON, any string a message carries (exchange, routing key, string properties, header
values) that is not UTF-8 is written ``{"$bytes": "<base64>"}`` and read back as those
bytes, so no message can make the output fail and a copy through JSON is exact.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from . import errors
from .amqp.codec import (
    check_properties,
    check_table,
    name_from_json,
    name_to_json,
    properties_from_json,
    properties_to_json,
)
from .amqp.model import Delivery, Message
from .amqp.streams import OFFSET_HEADER


class OutputFormat(StrEnum):
    PRETTY = "pretty"
    RAW = "raw"
    BODY = "body"
    NUL = "nul"
    JSON = "json"


class InputFormat(StrEnum):
    WHOLE = "whole"  # all of stdin (or the file) is one message
    LINES = "lines"  # one message per line
    NUL = "nul"  # one message per NUL-terminated record
    JSON = "json"  # one JSON object per line, as --format json writes them


def delivery_to_json(d: Delivery) -> dict[str, Any]:
    """A delivery as the JSON object of ``--format json``."""
    try:
        body, encoding = d.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(d.body).decode("ascii"), "base64"
    props = properties_to_json(d.properties)
    headers = props.pop("headers", None)
    offset = headers.pop(OFFSET_HEADER, None) if headers else None
    obj: dict[str, Any] = {
        "body": body,
        "body_encoding": encoding,
        "exchange": name_to_json(d.exchange),
        "routing_key": name_to_json(d.routing_key),
        "redelivered": d.redelivered,
        "properties": props,
        "headers": headers or {},
    }
    if d.queue:
        obj["queue"] = name_to_json(d.queue)
    if offset is not None:  # a stream's: top-level, so that a reader can resume after it
        obj["stream_offset"] = offset
    if d.received_at is not None:
        obj["received_at"] = rfc3339(d.received_at)
    return obj


def rfc3339(epoch: float) -> str:
    """``2026-12-01T16:20:00.123456Z``: RFC 3339, UTC, microseconds."""
    import datetime as dt
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 time; ``ValueError`` if it is not one."""
    import datetime as dt
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return when.timestamp()


def encode(d: Delivery, fmt: OutputFormat) -> bytes:
    """A delivery's bytes in one of the byte formats (not ``pretty``)."""
    if fmt is OutputFormat.RAW:
        return d.body if d.body.endswith(b"\n") else d.body + b"\n"
    if fmt is OutputFormat.BODY:
        return d.body
    if fmt is OutputFormat.NUL:
        return d.body + b"\0"
    return json.dumps(delivery_to_json(d), ensure_ascii=False).encode("utf-8") + b"\n"


def encode_batch(batch: list[Delivery], fmt: OutputFormat) -> list[bytes]:
    """``encode`` for many deliveries (the hot path of a draining ``receive``)."""
    if fmt is OutputFormat.RAW:
        return [b if b.endswith(b"\n") else b + b"\n" for b in (d.body for d in batch)]
    if fmt is OutputFormat.BODY:
        return [d.body for d in batch]
    if fmt is OutputFormat.NUL:
        return [d.body + b"\0" for d in batch]
    return [encode(d, fmt) for d in batch]


def message_from_json(line: bytes | str, exchange: str | None,
                      routing_key: str | None) -> Message:
    """Parse one ``--format json`` object. ``exchange``/``routing_key`` given on the
    command line take precedence over the object's own."""
    try:
        obj = json.loads(line)
    except ValueError as err:
        raise errors.UsageError(f"input is not a JSON object: {err}") from None
    return message_from_object(obj, exchange, routing_key)


def message_from_object(obj: Any, exchange: str | None, routing_key: str | None,
                        body_bytes: bytes | None = None) -> Message:
    """``message_from_json`` of an object already parsed; ``body_bytes``: the body, read
    from elsewhere (a file of ``--save``), in place of the object's ``body``."""
    if not isinstance(obj, dict) or ("body" not in obj and body_bytes is None):
        raise errors.UsageError('each JSON input line must be an object with a "body"')
    body = obj.get("body")
    encoding = obj.get("body_encoding", "utf-8")
    try:
        if body_bytes is not None:
            raw = body_bytes
        elif encoding == "base64":
            raw = base64.b64decode(body or "", validate=True)
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = json.dumps(body).encode("utf-8")
    except (ValueError, TypeError) as err:
        raise errors.UsageError(f"bad body in JSON input: {err}") from None
    props_obj = obj.get("properties") or {}
    headers = obj.get("headers") or {}
    if not isinstance(props_obj, dict) or not isinstance(headers, dict):
        raise errors.UsageError('"properties" and "headers" in JSON input must be objects')
    if headers:
        props_obj = dict(props_obj, headers=headers)
    try:
        props = check_properties(properties_from_json(props_obj))
        if props.headers:
            props = props._replace(headers=check_table(props.headers))
        key = routing_key if routing_key is not None else \
            name_from_json(obj.get("routing_key", ""), "routing_key")
        if len(key) > 63 and len(key.encode() if isinstance(key, str) else key) > 255:
            raise ValueError("routing_key is longer than 255 bytes, the most AMQP allows")
        target = exchange if exchange is not None else \
            name_from_json(obj.get("exchange", ""), "exchange")
    except (TypeError, ValueError) as err:
        raise errors.UsageError(f"bad JSON input: {err}") from None
    return Message(raw, props, key, target)  # type: ignore[arg-type]  # bytes: not UTF-8


def read_records(fd: int, separator: bytes, chunk_size: int = 1 << 20) -> Iterator[list[bytes]]:
    """Split a stream into records, yielding each read's complete records as one batch.

    A batch is whatever one ``read`` brought in, so a fast producer gives big batches (one
    transaction each) and a slow one (``tail -f``) gives its lines as they come.
    """
    pending = b""
    while True:
        chunk = os.read(fd, chunk_size)
        if not chunk:
            break
        pending += chunk
        if separator not in chunk:
            continue
        *records, pending = pending.split(separator)
        yield records
    if pending:
        yield [pending]


def read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)
