"""Who may connect: users and passwords, the PLAIN and AMQPLAIN mechanisms, RabbitMQ's
loopback rule for ``guest``.

As in RabbitMQ, ``guest``/``guest`` exists by default and may connect only from a
loopback address (``--no-guest`` removes it); other users are given explicitly, with
``--user NAME:PASSWORD`` or a users file of ``NAME:PASSWORD`` lines (``#`` comments).
Every refusal is the same 403 to the client; the reason goes to the server's log.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from pathlib import Path

from pamqp import decode

from .. import errors

MECHANISMS = ("PLAIN", "AMQPLAIN")
GUEST = "guest"


class LoginRefused(Exception):
    """Why a login failed (for the log; the client only sees 403)."""


def parse_user(spec: str) -> tuple[str, str]:
    """``NAME:PASSWORD`` -> (name, password); the password may hold colons."""
    name, sep, password = spec.partition(":")
    if not sep or not name:
        raise errors.UsageError(f"a user is NAME:PASSWORD, got {spec.split(':')[0]!r}...")
    return name, password


def read_users_file(path: str) -> dict[str, str]:
    users: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise errors.UsageError(f"cannot read the users file {path}: {err.strerror}") from err
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            name, password = parse_user(line)
        except errors.UsageError:
            raise errors.UsageError(
                f"{path}, line {number}: expected NAME:PASSWORD") from None
        users[name] = password
    return users


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class Users:
    """The accounts the server accepts."""

    def __init__(self, users: dict[str, str] | None = None, guest: bool = True) -> None:
        self.passwords: dict[str, str] = {GUEST: GUEST} if guest else {}
        self.passwords.update(users or {})

    def check(self, mechanism: str, response: str | bytes, peer_host: str) -> str:
        """The user a ``connection.start-ok`` response logs in, or ``LoginRefused``."""
        user, password = credentials(mechanism, response)
        expected = self.passwords.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise LoginRefused(f"user '{user}': invalid credentials")
        if user == GUEST and not is_loopback(peer_host):
            raise LoginRefused("user 'guest' can only connect via localhost")
        return user


def credentials(mechanism: str, response: str | bytes) -> tuple[str, str]:
    """(user, password) from a PLAIN (``\\0user\\0password``) or AMQPLAIN (a field table
    holding LOGIN and PASSWORD, without its length) response."""
    raw = response.encode("utf-8") if isinstance(response, str) else bytes(response)
    user: object
    password: object
    if mechanism == "PLAIN":
        parts = raw.split(b"\0")
        if len(parts) != 3:
            raise LoginRefused("malformed PLAIN response")
        user, password = parts[1], parts[2]
    elif mechanism == "AMQPLAIN":
        try:
            _used, table = decode.field_table(struct.pack(">I", len(raw)) + raw)
        except ValueError as err:
            raise LoginRefused("malformed AMQPLAIN response") from err
        user, password = table.get("LOGIN", b""), table.get("PASSWORD", b"")
    else:
        raise LoginRefused(f"unknown authentication mechanism '{mechanism}'")
    try:
        return _text(user), _text(password)
    except UnicodeDecodeError:
        raise LoginRefused("credentials are not UTF-8") from None


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return str(value)
