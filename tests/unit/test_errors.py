"""The exception tree: a written-out class per reply code and level, with its exit code."""

import pytest

from amqcli import errors
from amqcli.errors import ExitStatus


@pytest.mark.parametrize(("code", "cls", "status", "hard"), [
    (320, errors.ConnectionForced, ExitStatus.UNREACHABLE, True),
    (403, errors.AccessRefused, ExitStatus.ACCESS_REFUSED, False),
    (404, errors.NotFound, ExitStatus.NOT_FOUND, False),
    (405, errors.ResourceLocked, ExitStatus.RESOURCE_LOCKED, False),
    (406, errors.PreconditionFailed, ExitStatus.PRECONDITION_FAILED, False),
    (501, errors.FrameError, ExitStatus.NOT_ALLOWED, True),
    (502, errors.AMQPSyntaxError, ExitStatus.NOT_ALLOWED, True),
    (503, errors.CommandInvalid, ExitStatus.NOT_ALLOWED, True),
    (504, errors.ChannelError, ExitStatus.NOT_ALLOWED, True),
    (505, errors.UnexpectedFrame, ExitStatus.NOT_ALLOWED, True),
    (506, errors.ResourceError, ExitStatus.ERROR, False),
    (530, errors.NotAllowed, ExitStatus.NOT_ALLOWED, True),
    (540, errors.AMQPNotImplemented, ExitStatus.NOT_ALLOWED, True),
    (541, errors.InternalError, ExitStatus.ERROR, True),
])
def test_a_reply_becomes_its_class(code, cls, status, hard):
    err = errors.from_reply(code, f"{cls.reply_name} - what happened")
    assert type(err) is cls and err.reply_code == code
    assert err.exit_status is status and err.hard is hard
    assert str(err) == f"{code} {cls.reply_name} - what happened"
    with pytest.raises(cls):
        raise err


def test_a_refused_login_is_a_connection_error_with_the_same_code():
    login, channel = errors.LoginRefused("bad password"), errors.AccessRefused("amq.x")
    assert login.reply_code == channel.reply_code == 403
    assert login.hard and not channel.hard
    assert login.exit_status is channel.exit_status is ExitStatus.ACCESS_REFUSED


def test_an_unknown_code_keeps_its_text():
    err = errors.from_reply(599, "SOMETHING - odd")
    assert isinstance(err, errors.BrokerError) and err.reply_code == 599
    assert err.exit_status is ExitStatus.ERROR
