"""Streams' words, shared by both brokers and the command line: RabbitMQ's ages (``7D``,
``10m``: ``x-max-age`` and the ``TIME`` of ``--offset``), the forms of ``x-stream-offset``,
and the declare rules of a stream queue (RabbitMQ 3.10's, asked of it: the refusals
and their texts are its own).

Ages are a positive whole number and one unit, as RabbitMQ's ``x-max-age`` takes them:
``Y`` (365 days), ``M`` (months of 30 days), ``D``, ``h``, ``m`` (minutes), ``s``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any, NamedTuple

from .. import errors
from .args import amqp_type, segment_size_check, validate_queue_arguments
from .names import where

AGE_UNITS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
_AGE = re.compile(r"([0-9]+)([YMDhms])")
OFFSET_HEADER = "x-stream-offset"  # the argument of a consume, and each delivery's header
NAMED_OFFSETS = ("first", "last", "next")
DEFAULT_SEGMENT_BYTES = 500_000_000  # RabbitMQ's x-stream-max-segment-size-bytes default

# Queue arguments a stream refuses, as RabbitMQ 3.10 does ("... of queue type
# rabbit_stream_queue"); those it takes and the local broker uses are x-max-age,
# x-max-length-bytes and x-stream-max-segment-size-bytes.
NOT_FOR_STREAMS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-priority", "x-overflow", "x-single-active-consumer",
    "x-delivery-limit", "x-queue-mode", "x-queue-version",
)


def parse_age(text: str) -> int | None:
    """Seconds of an age (``7D``), or None when it is not one (``0s`` is not)."""
    found = _AGE.fullmatch(text)
    if found is None or int(found.group(1)) == 0:
        return None
    return int(found.group(1)) * AGE_UNITS[found.group(2)]


def is_stream(arguments: dict[str, Any] | None) -> bool:
    return bool(arguments) and arguments.get("x-queue-type") == "stream"  # type: ignore[union-attr]


def check_stream_declare(name: str, arguments: dict[str, Any], *, durable: bool,
                         exclusive: bool, auto_delete: bool) -> None:
    """406 for what RabbitMQ 3.10 refuses in a new stream, in its order: the arguments,
    then auto-delete, exclusive, non-durable. A malformed ``x-max-age`` without digits
    (``D``, ``-1D``) makes RabbitMQ 3.10 fail with 541 INTERNAL_ERROR: here it is the
    406 of any other bad age."""
    where_ = where("queue", name)
    validate_queue_arguments(name, arguments, durable=durable, exclusive=exclusive,
                             auto_delete=auto_delete)
    for key in NOT_FOR_STREAMS:
        if key in arguments:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {where_} of queue type rabbit_stream_queue")
    age = arguments.get("x-max-age")
    if age is not None:
        if not isinstance(age, (str, bytes)):
            raise errors.PreconditionFailed(
                f"invalid arg 'x-max-age' for {where_}: {{unacceptable_type,{amqp_type(age)}}}")
        text = age.decode("utf-8", "replace") if isinstance(age, bytes) else age
        if parse_age(text) is None:
            raise errors.PreconditionFailed(f"invalid arg 'x-max-age' for {where_}: "
                                            "invalid_max_age")
    problem = segment_size_check(arguments)
    if problem:
        raise errors.PreconditionFailed(
            f"invalid arg 'x-stream-max-segment-size-bytes' for {where_}: {problem}")
    for flag, bad in (("auto-delete", auto_delete), ("exclusive-owner", exclusive),
                      ("non-durable", not durable)):
        if bad:
            raise errors.PreconditionFailed(f"invalid property '{flag}' for {where_}")


class Limits(NamedTuple):
    """A stream's retention, from its arguments: in whole segments."""

    max_bytes: int | None
    max_age: int | None  # seconds
    segment_bytes: int

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> Limits:
        age = arguments.get("x-max-age")
        if isinstance(age, bytes):
            age = age.decode("utf-8", "replace")
        segment = arguments.get("x-stream-max-segment-size-bytes") or DEFAULT_SEGMENT_BYTES
        return cls(arguments.get("x-max-length-bytes"),
                   parse_age(age) if isinstance(age, str) else None, max(1, int(segment)))


# --- where a reader starts --------------------------------------------------------------

class Offset(NamedTuple):
    """Where a stream reader starts: ``kind`` first, last, next, offset (``value``: N) or
    time (``value``: epoch seconds)."""

    kind: str
    value: float = 0

    def argument(self) -> Any:
        """The ``x-stream-offset`` consume argument for it (a timestamp for a time)."""
        if self.kind in NAMED_OFFSETS:
            return self.kind
        if self.kind == "offset":
            return int(self.value)
        return dt.datetime.fromtimestamp(int(self.value), dt.UTC)


def parse_offset(text: str, now: float) -> Offset:
    """``--offset first|last|next|N|TIME``: TIME is RFC 3339 (``2026-12-01T10:00:00Z``) or
    an age before ``now`` (``10m``, ``2h``, ``7D``, as ``x-max-age``). UsageError else."""
    if text in NAMED_OFFSETS:
        return Offset(text)
    if text.isdigit():
        return Offset("offset", int(text))
    age = parse_age(text)
    if age is not None:
        return Offset("time", now - age)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise errors.UsageError(
            f"--offset {text!r}: give first, last, next, an offset (0, 1, ...), a time "
            "with its zone (2026-12-01T10:00:00Z) or an age (10m, 2h, 7D: units Y M D h m s)")
    return Offset("time", when.timestamp())


def offset_of_argument(value: Any) -> Offset:
    """An ``x-stream-offset`` consume argument as RabbitMQ 3.10 takes it: first, last,
    next (as text or bytes), a non-negative long, a timestamp, or an interval (``10m``,
    from that long ago). A negative number starts at the first message, as RabbitMQ
    does. 406 for anything else (RabbitMQ 3.10 fails with 541 there)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return Offset("offset", value) if value >= 0 else Offset("first")
    elif isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return Offset("time", when.timestamp())
    elif isinstance(value, str):
        if value in NAMED_OFFSETS:
            return Offset(value)
        age = parse_age(value)
        if age is not None:
            return Offset("time", time.time() - age)
    raise errors.PreconditionFailed(f"invalid arg '{OFFSET_HEADER}': {value!r}")
