"""What a user may do in a vhost, checked as RabbitMQ checks it: three regular expressions
(configure, write, read) matched against the resource's name, anywhere in it (``re.search``,
as RabbitMQ's ``re:run``); an empty one matches nothing.

Which access each method needs is RabbitMQ's (``rabbit_channel``): declaring and deleting
need configure on the entity (a queue's dead-letter exchange also needs read on the queue
and write on that exchange; an exchange's alternate exchange, read on the exchange and
write on the alternate), publishing needs write on the exchange (``""`` is named
``amq.default``), consuming, getting and purging need read on the queue, binding and
unbinding need write on the destination, then read on the source. A refusal is 403
ACCESS_REFUSED "access to queue 'q' in vhost '/' refused for user 'u'".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from .. import errors


class Access(StrEnum):
    CONFIGURE = "configure"
    WRITE = "write"
    READ = "read"


ANY = ".*"


@dataclass(frozen=True)
class Permission:
    """One user's permissions in one vhost (RabbitMQ's ``set_permissions``)."""

    configure: str = ANY
    write: str = ANY
    read: str = ANY

    def pattern(self, access: Access) -> str:
        return str(getattr(self, access.value))


FULL = Permission()


def checked(entry: Permission, where: str) -> Permission:
    """The permission if its expressions compile, else a usage error naming ``where``."""
    for access in Access:
        try:
            re.compile(entry.pattern(access))
        except re.error as err:
            raise errors.UsageError(f"{where}: the {access.value} expression "
                                    f"{entry.pattern(access)!r} is not valid: {err}") from None
    return entry


@dataclass
class Grants:
    """What one logged-in user may do in the vhost of its connection (answers cached, as
    RabbitMQ's channel caches them: a publisher checks one exchange per message)."""

    user: str
    permission: Permission
    vhost: str = "/"
    _answers: dict[tuple[Access, str], bool] = field(default_factory=dict)

    def allows(self, access: Access, name: str) -> bool:
        pattern = self.permission.pattern(access)
        if pattern == ANY:
            return True
        key = (access, name)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = bool(pattern) and \
                re.search(pattern, name) is not None
        return answer

    def check(self, access: Access, kind: str, name: str) -> None:
        """``errors.AccessRefused`` unless the user has ``access`` to the named queue or
        exchange (``kind``)."""
        if not self.allows(access, name):
            shown = "amq.default" if kind == "exchange" and name == "" else name
            raise errors.AccessRefused(
                f"access to {kind} '{shown}' in vhost '{self.vhost}' refused for user "
                f"'{self.user}'")


