"""Who may connect: users and passwords, the PLAIN and AMQPLAIN mechanisms, RabbitMQ's
loopback rule for ``guest``, and what each user may do (``permissions``).

As in RabbitMQ, ``guest``/``guest`` exists by default and may connect only from a
loopback address (``--no-guest`` removes it); other users are given explicitly, with
``--user NAME:PASSWORD`` or a users file of ``NAME:PASSWORD`` lines (``#`` comments), and
these have every permission; or by a definitions file (``accounts_of``): RabbitMQ's
``users`` with their ``password_hash`` (a 4-byte salt, then the hash of salt and password,
in base64: ``rabbit_password_hashing_sha256``, as RabbitMQ exports them, or sha512, md5)
and ``tags``, and ``permissions`` per vhost. Every refusal is the same 403 to the client,
answered after ``FAILURE_DELAY`` to slow password guessing; the reason goes to the log,
at most once a second per address (``FailureLog``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pamqp import decode

from .. import errors
from .permissions import FULL, Permission, checked

MECHANISMS = ("PLAIN", "AMQPLAIN")
GUEST = "guest"
IMPERSONATOR = "impersonator"  # the tag that lets a user publish any user_id
FAILURE_DELAY = 1.0  # seconds before a refused login is answered
HASHES: dict[str, Callable[[bytes], Any]] = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
DEFAULT_HASHING = "rabbit_password_hashing_sha256"  # RabbitMQ's since 3.6


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


@dataclass(frozen=True)
class Account:
    """A user: a plain password (from the command line or a users file), or RabbitMQ's
    salted hash; its tags; its permissions by vhost (None: every permission on every
    vhost, for the users given on the command line, as documented)."""

    name: str
    password: str | None = None
    password_hash: bytes = b""
    hashing: str = DEFAULT_HASHING
    tags: tuple[str, ...] = ()
    permissions: Mapping[str, Permission] | None = None

    def verifies(self, password: str) -> bool:
        if self.password is not None:
            return hmac.compare_digest(self.password.encode(), password.encode())
        if len(self.password_hash) <= 4:  # no password: it cannot log in with one
            return False
        salt, digest = self.password_hash[:4], self.password_hash[4:]
        computed = HASHES[self.hashing](salt + password.encode()).digest()
        return hmac.compare_digest(computed, digest)

    def permission(self, vhost: str) -> Permission | None:
        return FULL if self.permissions is None else self.permissions.get(vhost)


class Users:
    """The accounts the server accepts."""

    def __init__(self, users: dict[str, str] | None = None, guest: bool = True) -> None:
        self.accounts: dict[str, Account] = {GUEST: Account(GUEST, GUEST)} if guest else {}
        for name, password in (users or {}).items():
            self.accounts[name] = Account(name, password)

    def add(self, account: Account) -> None:
        self.accounts[account.name] = account

    def check(self, mechanism: str, response: str | bytes, peer_host: str) -> str:
        """The user a ``connection.start-ok`` response logs in, or ``LoginRefused``."""
        user, password = credentials(mechanism, response)
        account = self.accounts.get(user)
        if account is None or not account.verifies(password):
            raise LoginRefused(f"user '{user}': invalid credentials")
        if user == GUEST and not is_loopback(peer_host):
            raise LoginRefused("user 'guest' can only connect via localhost")
        return user

    def permission(self, user: str, vhost: str) -> Permission | None:
        account = self.accounts.get(user)
        return account.permission(vhost) if account is not None else None

    def impersonates(self, user: str) -> bool:
        account = self.accounts.get(user)
        return account is not None and IMPERSONATOR in account.tags


@dataclass
class FailureLog:
    """Refused logins, logged at most once a second per address: ``note`` says whether to
    log this one, and how many were left out since the last line."""

    interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _quiet: dict[str, int] = field(default_factory=dict)

    def note(self, address: str) -> int | None:
        now = self.clock()
        if now - self._last.get(address, -self.interval) < self.interval:
            self._quiet[address] = self._quiet.get(address, 0) + 1
            return None
        if len(self._last) > 10_000:  # a scan from many addresses: forget the old ones
            self._last = {a: t for a, t in self._last.items() if now - t < self.interval}
        self._last[address] = now
        return self._quiet.pop(address, 0)


def accounts_of(document: Mapping[str, Any], vhost: str, where: str) -> list[Account]:
    """The ``users`` of a definitions file, with their ``permissions`` in every vhost
    (``vhost`` for an entry that names none); a usage error naming the entry it cannot
    honour (an unknown hashing algorithm, a hash that is not base64, an invalid
    expression)."""
    grants: dict[str, dict[str, Permission]] = {}
    for number, entry in enumerate(_list(document, "permissions", where), 1):
        user, at = entry.get("user"), entry.get("vhost", vhost)
        if not isinstance(user, str):
            raise errors.UsageError(f"{where}: permissions entry {number} names no user")
        if not isinstance(at, str):
            raise errors.UsageError(f"{where}: permissions entry {number} names no vhost")
        grants.setdefault(user, {})[at] = checked(Permission(
            *(str(entry.get(k, "")) for k in ("configure", "write", "read"))),
            f"{where}: the permissions of user '{user}' in vhost '{at}'")
    return [_account(entry, grants, where)
            for entry in _list(document, "users", where)]


def _account(entry: dict[str, Any], grants: dict[str, dict[str, Permission]],
             where: str) -> Account:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise errors.UsageError(f"{where}: a user without a name")
    hashing = entry.get("hashing_algorithm") or DEFAULT_HASHING
    if hashing not in HASHES:
        raise errors.UsageError(f"{where}: user '{name}': unknown hashing_algorithm "
                                f"'{hashing}' (known: {', '.join(HASHES)})")
    if "password" in entry and "password_hash" not in entry:
        return Account(name, str(entry["password"]), tags=_tags(entry),
                       permissions=grants.get(name, {}))
    try:
        digest = base64.b64decode(str(entry.get("password_hash", "")), validate=True)
    except (binascii.Error, ValueError):
        raise errors.UsageError(f"{where}: user '{name}': password_hash is not "
                                "base64") from None
    return Account(name, None, digest, hashing, _tags(entry), grants.get(name, {}))


def _tags(entry: dict[str, Any]) -> tuple[str, ...]:
    tags = entry.get("tags", [])
    if isinstance(tags, str):  # exports before 3.9: "administrator,impersonator"
        tags = [t for t in tags.split(",") if t]
    return tuple(str(t) for t in tags)


def _list(document: Mapping[str, Any], kind: str, where: str) -> list[dict[str, Any]]:
    entries = document.get(kind) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise errors.UsageError(f"{where}: '{kind}' is not a list of objects")
    return entries


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
