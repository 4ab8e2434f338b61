"""One exception tree for amq, carrying AMQP reply codes, and the exit codes they map to.

Every failure a user can meet is an :class:`AmqError`. Broker errors carry the AMQP
reply code and text (``404 NOT_FOUND - no queue 'q' in vhost '/'``) so that the CLI can
print them and the server can send them as ``channel.close``/``connection.close`` frames.
``ExitStatus`` is the only place exit codes are defined; ``cli.main`` is the only place
that turns an exception into one.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes of the ``amq`` command (documented in the README)."""

    OK = 0
    ERROR = 1  # unexpected failure inside amq or the broker (541 and friends)
    USAGE = 2  # bad command line or bad input data
    NOT_FOUND = 3  # 404: queue or exchange does not exist
    PRECONDITION_FAILED = 4  # 406: inequivalent redeclare, bad argument, not empty, in use
    ACCESS_REFUSED = 5  # 403: reserved name, default exchange, login refused
    RESOURCE_LOCKED = 6  # 405: exclusive queue of another connection
    UNROUTABLE = 7  # 312: a message reached no queue and was dropped
    UNREACHABLE = 8  # broker unreachable, store unusable, connection lost
    TIMEOUT = 9  # --timeout passed with nothing received
    NACKED = 10  # the broker refused a message (publisher confirm nack)
    NOT_ALLOWED = 11  # 530/540/503/504: the broker closed the connection
    COMMAND_FAILED = 12  # --exec: a command run for a message failed
    CANNOT_LISTEN = 13  # broker serve: the address is in use (a RabbitMQ?) or not allowed
    INTERRUPTED = 130  # Ctrl+C


class AmqError(Exception):
    """Base of every error amq reports. ``str(err)`` is the one line shown to the user."""

    exit_status: ExitStatus = ExitStatus.ERROR
    reply_code: int | None = None
    reply_name: str | None = None
    hint: str | None = None

    def __init__(self, text: str, *, hint: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.text


class UsageError(AmqError):
    """A bad command line or bad input data, found before anything reached the broker."""

    exit_status = ExitStatus.USAGE


class BrokerError(AmqError):
    """An error the broker answered with a reply code (a channel or connection close)."""

    hard = False  # True: the whole connection closes (connection.close), else the channel

    def __init__(self, text: str, *, hint: str | None = None) -> None:
        super().__init__(text, hint=hint)

    @property
    def reply_text(self) -> str:
        """The reply text as RabbitMQ words it: ``NOT_FOUND - no queue 'q' in vhost '/'``."""
        return f"{self.reply_name} - {self.text}"

    def __str__(self) -> str:
        return f"{self.reply_code} {self.reply_text}"


def _broker_error(name: str, code: int, status: ExitStatus, hard: bool = False) -> type:
    return type(
        name,
        (BrokerError,),
        {
            "reply_code": code,
            "reply_name": _REPLY_NAMES[code],
            "exit_status": status,
            "hard": hard,
            "__doc__": f"AMQP reply code {code} {_REPLY_NAMES[code]}.",
        },
    )


_REPLY_NAMES = {
    312: "NO_ROUTE",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}

AccessRefused = _broker_error("AccessRefused", 403, ExitStatus.ACCESS_REFUSED)
NotFound = _broker_error("NotFound", 404, ExitStatus.NOT_FOUND)
ResourceLocked = _broker_error("ResourceLocked", 405, ExitStatus.RESOURCE_LOCKED)
PreconditionFailed = _broker_error("PreconditionFailed", 406, ExitStatus.PRECONDITION_FAILED)
ConnectionForced = _broker_error("ConnectionForced", 320, ExitStatus.UNREACHABLE, True)
InvalidPath = _broker_error("InvalidPath", 402, ExitStatus.NOT_ALLOWED, True)
FrameError = _broker_error("FrameError", 501, ExitStatus.NOT_ALLOWED, True)
SyntaxError_ = _broker_error("SyntaxError_", 502, ExitStatus.NOT_ALLOWED, True)
CommandInvalid = _broker_error("CommandInvalid", 503, ExitStatus.NOT_ALLOWED, True)
ChannelError = _broker_error("ChannelError", 504, ExitStatus.NOT_ALLOWED, True)
UnexpectedFrame = _broker_error("UnexpectedFrame", 505, ExitStatus.NOT_ALLOWED, True)
ResourceError = _broker_error("ResourceError", 506, ExitStatus.ERROR)
NotAllowed = _broker_error("NotAllowed", 530, ExitStatus.NOT_ALLOWED, True)
NotImplemented_ = _broker_error("NotImplemented_", 540, ExitStatus.NOT_ALLOWED, True)
InternalError = _broker_error("InternalError", 541, ExitStatus.ERROR, True)

BY_REPLY_CODE: dict[int, type[BrokerError]] = {
    cls.reply_code: cls
    for cls in (
        AccessRefused, NotFound, ResourceLocked, PreconditionFailed, ConnectionForced,
        InvalidPath, FrameError, SyntaxError_, CommandInvalid, ChannelError, UnexpectedFrame,
        ResourceError, NotAllowed, NotImplemented_, InternalError,
    )
}


def from_reply(code: int, text: str) -> BrokerError:
    """Build the error for a reply code and RabbitMQ's text (``NOT_FOUND - no queue ...``)."""
    cls = BY_REPLY_CODE.get(code)
    name = _REPLY_NAMES.get(code)
    if name and text.startswith(name + " - "):
        text = text[len(name) + 3:]
    if cls is None:
        err = BrokerError(text)
        err.reply_code, err.reply_name = code, name or "ERROR"
        return err
    return cls(text)


class Unroutable(AmqError):
    """One or more messages reached no queue and were dropped (AMQP 312 NO_ROUTE)."""

    exit_status = ExitStatus.UNROUTABLE
    reply_code = 312
    reply_name = "NO_ROUTE"


class Nacked(AmqError):
    """The broker refused one or more messages (publisher confirm nack)."""

    exit_status = ExitStatus.NACKED


class BrokerUnreachable(AmqError):
    """The broker cannot be reached, the login failed, or the store file is unusable."""

    exit_status = ExitStatus.UNREACHABLE


class StoreError(BrokerUnreachable):
    """The local store file cannot be opened, read or written."""


class ConnectionLost(BrokerUnreachable):
    """The connection to the broker dropped while a command was running."""


class ConsumerCancelled(AmqError):
    """The broker cancelled a consumer: its queue was deleted."""

    exit_status = ExitStatus.NOT_FOUND


class NothingReceived(AmqError):
    """``--timeout`` passed and no message arrived."""

    exit_status = ExitStatus.TIMEOUT


class CommandFailed(AmqError):
    """A command run per message (``--exec``) exited non-zero for one or more messages."""

    exit_status = ExitStatus.COMMAND_FAILED


class CannotListen(AmqError):
    """``amq broker serve`` cannot listen on its address (in use, or not allowed)."""

    exit_status = ExitStatus.CANNOT_LISTEN


class Interrupted(AmqError):
    """Ctrl+C."""

    exit_status = ExitStatus.INTERRUPTED
