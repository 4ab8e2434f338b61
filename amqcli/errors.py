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

    def in_vhost(self, vhost: str) -> BrokerError:
        """This error as a broker of ``vhost`` words it. The local broker's engine and
        checks name vhost '/' (each store file is one vhost, and does not know which);
        where an error leaves a broker of another vhost, its text says that one."""
        if vhost != "/" and "in vhost '/'" in self.text:
            self.text = self.text.replace("in vhost '/'", f"in vhost '{vhost}'")
        return self


# The broker errors, one class per reply code and level, written out (as pamqp's
# exceptions module does) so that they can be named, caught and type-checked.
# ``hard``: the connection closes (connection.close), else only the channel.

class ConnectionForced(BrokerError):
    """AMQP 320 CONNECTION_FORCED: The broker closed the connection on purpose (an operator, a
    node shutting down)."""

    reply_code = 320
    reply_name = "CONNECTION_FORCED"
    exit_status = ExitStatus.UNREACHABLE
    hard = True


class InvalidPath(BrokerError):
    """AMQP 402 INVALID_PATH: A vhost path the broker does not accept."""

    reply_code = 402
    reply_name = "INVALID_PATH"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class AccessRefused(BrokerError):
    """AMQP 403 ACCESS_REFUSED: An operation refused on a channel: a reserved ``amq.`` name,
    the default exchange, an exclusive queue, a permission."""

    reply_code = 403
    reply_name = "ACCESS_REFUSED"
    exit_status = ExitStatus.ACCESS_REFUSED
    hard = False


class LoginRefused(BrokerError):
    """AMQP 403 ACCESS_REFUSED: The login was refused: the connection closes (the same code as
    ``AccessRefused``, at the connection's level)."""

    reply_code = 403
    reply_name = "ACCESS_REFUSED"
    exit_status = ExitStatus.ACCESS_REFUSED
    hard = True


class NotFound(BrokerError):
    """AMQP 404 NOT_FOUND: No such queue or exchange."""

    reply_code = 404
    reply_name = "NOT_FOUND"
    exit_status = ExitStatus.NOT_FOUND
    hard = False


class ResourceLocked(BrokerError):
    """AMQP 405 RESOURCE_LOCKED: An exclusive queue of another connection."""

    reply_code = 405
    reply_name = "RESOURCE_LOCKED"
    exit_status = ExitStatus.RESOURCE_LOCKED
    hard = False


class PreconditionFailed(BrokerError):
    """AMQP 406 PRECONDITION_FAILED: An inequivalent redeclare, an invalid argument, a queue
    not empty or in use."""

    reply_code = 406
    reply_name = "PRECONDITION_FAILED"
    exit_status = ExitStatus.PRECONDITION_FAILED
    hard = False


class FrameError(BrokerError):
    """AMQP 501 FRAME_ERROR: A malformed frame."""

    reply_code = 501
    reply_name = "FRAME_ERROR"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class AMQPSyntaxError(BrokerError):
    """AMQP 502 SYNTAX_ERROR: A frame with illegal values in its fields."""

    reply_code = 502
    reply_name = "SYNTAX_ERROR"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class CommandInvalid(BrokerError):
    """AMQP 503 COMMAND_INVALID: A method that is not allowed in the current state."""

    reply_code = 503
    reply_name = "COMMAND_INVALID"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class ChannelError(BrokerError):
    """AMQP 504 CHANNEL_ERROR: A channel used that is not open, or opened twice."""

    reply_code = 504
    reply_name = "CHANNEL_ERROR"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class UnexpectedFrame(BrokerError):
    """AMQP 505 UNEXPECTED_FRAME: A frame the broker did not expect at that point (a body
    without its header...)."""

    reply_code = 505
    reply_name = "UNEXPECTED_FRAME"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class ResourceError(BrokerError):
    """AMQP 506 RESOURCE_ERROR: The broker lacks the resources to do what was asked."""

    reply_code = 506
    reply_name = "RESOURCE_ERROR"
    exit_status = ExitStatus.ERROR
    hard = False


class NotAllowed(BrokerError):
    """AMQP 530 NOT_ALLOWED: Not allowed on this connection: an unknown vhost, a negotiation
    out of bounds."""

    reply_code = 530
    reply_name = "NOT_ALLOWED"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class AMQPNotImplemented(BrokerError):
    """AMQP 540 NOT_IMPLEMENTED: A feature of the protocol the broker does not implement."""

    reply_code = 540
    reply_name = "NOT_IMPLEMENTED"
    exit_status = ExitStatus.NOT_ALLOWED
    hard = True


class InternalError(BrokerError):
    """AMQP 541 INTERNAL_ERROR: The broker failed internally."""

    reply_code = 541
    reply_name = "INTERNAL_ERROR"
    exit_status = ExitStatus.ERROR
    hard = True


# The channel-level class of each code (the one ``from_reply`` builds for a reply).
BY_REPLY_CODE: dict[int, type[BrokerError]] = {
    cls.reply_code: cls
    for cls in (
        ConnectionForced, InvalidPath, AccessRefused, NotFound, ResourceLocked,
        PreconditionFailed, FrameError, AMQPSyntaxError, CommandInvalid, ChannelError,
        UnexpectedFrame, ResourceError, NotAllowed, AMQPNotImplemented, InternalError,
    )
}
_REPLY_NAMES = {cls.reply_code: cls.reply_name for cls in BY_REPLY_CODE.values()
                if cls.reply_code is not None and cls.reply_name is not None}
_REPLY_NAMES[312] = "NO_ROUTE"


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
    """The connection to the broker dropped while a command was running. Raised under a
    confirmed publish, ``unconfirmed`` holds the positions (in that call's messages) of
    those the broker had not confirmed: a resend of them loses nothing."""

    def __init__(self, text: str, *, hint: str | None = None,
                 unconfirmed: list[int] | None = None) -> None:
        super().__init__(text, hint=hint)
        self.unconfirmed = unconfirmed


class SendCutShort(AmqError):
    """The connection dropped in the middle of a send without publisher confirms: what was
    on its way may be lost, and nothing tells which."""

    exit_status = ExitStatus.NOT_ALLOWED


class ConsumerCancelled(AmqError):
    """The broker cancelled a consumer: its queue was deleted."""

    exit_status = ExitStatus.NOT_FOUND


class Refused(AmqError):
    """amq will not do what was asked because it could lose or change messages (``peek``
    on a quorum queue that counts redeliveries, without ``--force``)."""

    exit_status = ExitStatus.PRECONDITION_FAILED


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
