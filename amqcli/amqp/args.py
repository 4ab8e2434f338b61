"""Queue and exchange arguments: validation and redeclare equivalence, as RabbitMQ does them.

The error texts are RabbitMQ's own. RabbitMQ docs: Queues (optional arguments, property
equivalence); Exchanges; Quorum Queues; Streams; and the AMQP 0-9-1 errata (which
properties and arguments a redeclare compares).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import errors
from .names import where

if TYPE_CHECKING:
    from collections.abc import Callable

    Check = Callable[[Any, dict[str, Any]], str | None]  # (value, arguments) -> why not


# Arguments compared on redeclare; any other is ignored (rabbit_classic_queue.erl).
EQUIVALENCE_ARGS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-queue-version", "x-single-active-consumer", "x-queue-type", "x-max-age",
    "x-stream-max-segment-size-bytes",
)
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
STREAM_ONLY_ARGS = ("x-max-age", "x-stream-max-segment-size-bytes")  # others refuse them
QUEUE_TYPES = ("classic", "quorum", "stream")


def amqp_type(value: Any) -> str:
    """RabbitMQ's name for a value's field type, as its error texts spell it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -2**31 <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return "void" if value is None else type(value).__name__


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any, _args: dict[str, Any]) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f'"expected integer, got {amqp_type(value)}"'
        if value < minimum:
            return "{value_zero,0}" if value == 0 else f"{{value_negative,{value}}}"
        if maximum is not None and value > maximum:
            return f"{{max_value_exceeded,{value}}}"
        return None
    return check


def _string(value: Any, _args: dict[str, Any]) -> str | None:
    return None if isinstance(value, str) else f"{{unacceptable_type,{amqp_type(value)}}}"


def _one_of(choices: tuple[str, ...], error: str) -> Check:
    def check(value: Any, _args: dict[str, Any]) -> str | None:
        return None if value in choices else error
    return check


def _dlrk(value: Any, args: dict[str, Any]) -> str | None:
    if not isinstance(value, str):
        return f"{{unacceptable_type,{amqp_type(value)}}}"
    return None if "x-dead-letter-exchange" in args else "routing_key_but_no_dlx_defined"


def _boolean(value: Any, _args: dict[str, Any]) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{amqp_type(value)}}}"


QUEUE_ARG_CHECKS: dict[str, Check] = {
    "x-message-ttl": _integer(0),
    "x-expires": _integer(1),
    "x-max-length": _integer(0),
    "x-max-length-bytes": _integer(0),
    "x-max-priority": _integer(0, 255),
    "x-overflow": _one_of(OVERFLOW_MODES, "invalid_overflow"),
    "x-dead-letter-exchange": _string,
    "x-dead-letter-routing-key": _dlrk,
    "x-single-active-consumer": _boolean,
    "x-queue-type": _one_of(QUEUE_TYPES, "unsupported_queue_type"),
    "x-queue-mode": _one_of(("default", "lazy"), "unsupported_queue_mode"),
    "x-queue-version": _one_of((1, 2), "unsupported_queue_version"),  # type: ignore[arg-type]
}


def segment_size_check(arguments: dict[str, Any]) -> str | None:
    """Why a stream's ``x-stream-max-segment-size-bytes`` is refused, or None."""
    if "x-stream-max-segment-size-bytes" not in arguments:
        return None
    return _integer(0)(arguments["x-stream-max-segment-size-bytes"], arguments)


def validate_queue_arguments(name: str, arguments: dict[str, Any], *, durable: bool,
                             exclusive: bool, auto_delete: bool) -> None:
    """Raise 406 for an argument RabbitMQ would refuse (of any queue type; a stream's own
    rules are ``streams.check_stream_declare``'s, which calls this first)."""
    for key, check in QUEUE_ARG_CHECKS.items():
        if key in arguments:
            problem = check(arguments[key], arguments)
            if problem:
                raise errors.PreconditionFailed(
                    f"invalid arg '{key}' for {where('queue', name)}: {problem}")
    qtype = arguments.get("x-queue-type", "classic")
    if qtype in ("classic", "quorum"):
        for key in STREAM_ONLY_ARGS:
            if key in arguments:
                raise errors.PreconditionFailed(
                    f"invalid arg '{key}' for {where('queue', name)} of queue type "
                    f"rabbit_{qtype}_queue")
    if qtype == "quorum":
        for flag, bad in (("non-durable", not durable), ("exclusive", exclusive),
                          ("auto-delete", auto_delete)):
            if bad:
                raise errors.PreconditionFailed(
                    f"invalid property '{flag}' for {where('queue', name)}")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_queue_equivalent(name: str, current: dict[str, Any], flags: dict[str, bool],
                           arguments: dict[str, Any], wanted: dict[str, bool]) -> None:
    """Raise 406 when a redeclare differs from the queue in a flag or a compared argument."""
    for flag in ("durable", "auto_delete"):
        if flags[flag] != wanted[flag]:
            raise errors.PreconditionFailed(
                f"inequivalent arg '{flag}' for {where('queue', name)}: received "
                f"'{_shown(wanted[flag])}' but current is '{_shown(flags[flag])}'")
    for key in EQUIVALENCE_ARGS:
        have, want = current.get(key), arguments.get(key)
        if key == "x-queue-type":
            have, want = have or "classic", want or "classic"
        if have == want and type(have) is type(want):
            continue
        if isinstance(have, int) and isinstance(want, int) and not isinstance(have, bool) \
                and not isinstance(want, bool) and have == want:
            continue
        if have is None:
            got = f"the value '{_shown(want)}' of type '{amqp_type(want)}' but current is none"
        elif want is None:
            got = f"none but current is the value '{_shown(have)}' of type '{amqp_type(have)}'"
        else:
            got = f"'{_shown(want)}' but current is '{_shown(have)}'"
        raise errors.PreconditionFailed(
            f"inequivalent arg '{key}' for {where('queue', name)}: received {got}")


def check_exchange_equivalent(name: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raise 406 when an exchange redeclare differs in type, a flag or alternate-exchange."""
    for key in ("type", "durable", "auto_delete", "internal"):
        if current[key] != wanted[key]:
            raise errors.PreconditionFailed(
                f"inequivalent arg '{key}' for {where('exchange', name)}: received "
                f"'{_shown(wanted[key])}' but current is '{_shown(current[key])}'")
    have = current["arguments"].get("alternate-exchange")
    want = wanted["arguments"].get("alternate-exchange")
    if have != want:
        raise errors.PreconditionFailed(
            f"inequivalent arg 'alternate-exchange' for {where('exchange', name)}: received "
            f"'{want if want is not None else 'none'}' but current is "
            f"'{have if have is not None else 'none'}'")
