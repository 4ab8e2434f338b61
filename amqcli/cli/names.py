"""Which parameters of the command tree take queue, exchange or profile names, and where
completion finds those names.

One table (``PARAM_KINDS``) serves both completions: the shell scripts (``amq
completion``), where the names come from the broker the command line names, and the
interactive shell, which passes its own ``NameSource`` (names refreshed in the background)
as the completion context's object. ``attach`` sets click ``shell_complete`` callbacks on
the matching parameters of a click command tree; the callbacks never raise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING

from .typer_shim import custom_shell_complete, set_custom_shell_complete

if TYPE_CHECKING:
    from typing import TypeVar

    from ..backends.base import Backend
    from .typer_shim import Command, Context, Parameter

    Tree = TypeVar("Tree", bound=Command)

LIST_DEADLINE = 2.0  # seconds a shell's Tab may wait for the broker's names


class Kind(StrEnum):
    """What a parameter names."""

    QUEUE = "queue"
    EXCHANGE = "exchange"
    BROKER = "broker"  # a profile of the config file


# A parameter's name (click's ``param.name``) -> what it names.
PARAM_KINDS: dict[str, Kind] = {
    "queue": Kind.QUEUE,
    "exchange": Kind.EXCHANGE,
    "exchanges": Kind.EXCHANGE,  # `tap EXCHANGE[:KEY]...`
    "routing_key": Kind.QUEUE,  # `send KEY`: on the default exchange, a queue name
    "dead_letter_exchange": Kind.EXCHANGE,
    "alternate_exchange": Kind.EXCHANGE,
    "broker": Kind.BROKER,
    "source": Kind.QUEUE,  # `move SOURCE DEST`
    "dest": Kind.QUEUE,
}
# ``NAME`` of `declare queue`, `delete exchange`, ...: the command's own name says the kind.
COMMAND_KINDS: dict[str, Kind] = {"queue": Kind.QUEUE, "exchange": Kind.EXCHANGE}


def kind_of(param: Parameter, command_name: str | None) -> Kind | None:
    """The kind of name ``param`` of the command ``command_name`` takes, if any."""
    if param.name == "name":
        return COMMAND_KINDS.get(command_name or "")
    return PARAM_KINDS.get(param.name or "")


class NameSource:
    """Names of queues, exchanges and profiles, for completion."""

    def names(self, kind: Kind) -> list[str]:
        raise NotImplementedError


def profile_names() -> list[str]:
    """The broker profiles of the config file ([] when there is none or it is bad)."""
    from .. import config
    try:
        return sorted(config.load_profiles().get("brokers", {}))
    except Exception:  # noqa: BLE001 - completion never fails
        return []


class BrokerNames(NameSource):
    """The names on the broker a command line names (--url, --broker, AMQ_URL, default),
    fetched once, within ``LIST_DEADLINE`` seconds; nothing on any failure."""

    def __init__(self, url: str | None, broker: str | None) -> None:
        self.url = url
        self.broker = broker

    def names(self, kind: Kind) -> list[str]:
        if kind is Kind.BROKER:
            return profile_names()
        found: list[str] = []
        worker = threading.Thread(target=self._fetch, args=(kind, found), daemon=True)
        worker.start()
        worker.join(LIST_DEADLINE)
        return list(found)

    def _fetch(self, kind: Kind, out: list[str]) -> None:
        import os

        from .. import config
        from ..backends import open_backend
        try:
            url = config.resolve(self.url, self.broker)
            if url.scheme == "local" and not (url.path and os.path.exists(url.path)):
                return  # no store yet: nothing to offer, and completing must not make one
            backend = open_backend(url)
            try:
                out.extend(list_names(backend, kind))
            finally:
                backend.close()
        except Exception:  # noqa: BLE001 - completion never fails
            pass


def list_names(backend: Backend, kind: Kind) -> list[str]:
    """Queue or exchange names from a backend (the default exchange left out)."""
    if kind is Kind.QUEUE:
        return backend.queue_names()
    return [x.name for x in backend.list_exchanges() if x.name]


def _source(ctx: Context) -> NameSource:
    """The interactive shell's source (the context's object), else the command line's broker."""
    source = ctx.find_object(NameSource)
    if source is not None:
        return source
    root = ctx.find_root().params
    return BrokerNames(root.get("url"), root.get("broker"))


def kind_in(ctx: Context, param: Parameter) -> Kind | None:
    """What ``param`` names in a parsed context (a routing key given with an exchange
    names nothing we know)."""
    if param.name == "routing_key" and ctx.params.get("exchange"):
        return None
    return kind_of(param, ctx.info_name)


def complete_name(ctx: Context, param: Parameter, incomplete: str) -> list[str]:
    """The click ``shell_complete`` callback of every name parameter."""
    try:
        kind = kind_in(ctx, param)
        if kind is None:
            return []
        return [n for n in _source(ctx).names(kind) if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion never fails
        return []


def walk(command: Command, name: str | None = None) -> Iterator[tuple[str | None, Command]]:
    """Every command of a click tree with the name it is registered under."""
    yield name, command
    for sub_name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, sub_name)


def attach(tree: Tree) -> Tree:
    """Set name-completing ``shell_complete`` callbacks on the tree's name parameters
    (those without a completion of their own); the tree."""
    for command_name, command in walk(tree):
        for param in command.params:
            kind = kind_of(param, command_name)
            if kind is not None and custom_shell_complete(param) is None:
                set_custom_shell_complete(param, complete_name)
    return tree
