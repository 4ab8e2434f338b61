"""Definitions loaded when the server starts (``amq broker serve --definitions FILE``), as
RabbitMQ's ``load_definitions``: the users and their permissions in every vhost
(``auth.accounts_of``), the vhosts, then the queues, exchanges and bindings of each,
planned and created as ``amq definitions import`` does (``amqp/definitions.py``: all or
nothing per vhost, a conflict stops the start with the broker's own error).

What the local broker does not have yet is skipped with one line per kind naming the
entries (policies, parameters, global parameters, topic permissions, limits): never
silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import errors
from ..amqp import definitions as defs
from ..broker.engine import Broker
from .auth import Users, accounts_of

VHOST = "/"
ENTITIES = ("queues", "exchanges", "bindings")
UNSUPPORTED = {  # kind -> how to name one of its entries
    "policies": lambda e: f"{e.get('name')}",
    "parameters": lambda e: f"{e.get('component')}/{e.get('name')}",
    "global_parameters": lambda e: f"{e.get('name')}",
    "topic_permissions": lambda e: f"{e.get('user')}@{e.get('exchange')}",
}


def load(vhost: Callable[[str], Broker], users: Users, document: Any, where: str,
         warn: Callable[[str], None]) -> list[defs.Step]:
    """Load ``document`` (a decoded definitions file) into the broker and the users; what
    was done, step by step. ``vhost(name)``: the broker of that vhost, added if new.
    Warnings go to ``warn``, one line each."""
    if not isinstance(document, dict):
        raise errors.UsageError(f"{where}: not a definitions file (a JSON object)")
    for line in skipped(document):
        warn(line)
    for account in accounts_of(document, VHOST, where):
        users.add(account)
    steps: list[defs.Step] = []
    named = _named(document) or {VHOST}  # entries without a vhost field are '/''s
    for name in _vhosts(document):
        broker = vhost(name)
        if name in named:
            steps += _load_entities(broker, document, name, where, warn)
    return steps


def _load_entities(broker: Broker, document: dict[str, Any], vhost: str, where: str,
                   warn: Callable[[str], None]) -> list[defs.Step]:
    wanted = defs.parse(document, vhost, where)
    for what in wanted.left_out:
        warn(f"left out {what}" + (f" (vhost '{vhost}')" if vhost != VHOST else ""))
    conn = broker.connect("definitions", sweep=False)
    try:
        steps = defs.plan(wanted, conn.list_exchanges(), conn.list_queues(),
                          conn.list_bindings(), vhost)
        for step in steps:
            if step.problem is not None:
                step.problem.text = f"{where}: {step.describe()}: {step.problem.text}"
                raise step.problem.in_vhost(vhost)
        with broker.store.transaction():  # the declares join it: all or nothing
            defs.create(conn, steps)
    finally:
        conn.close()
    return steps


def _named(document: dict[str, Any]) -> set[str]:
    """The vhosts that the file's queues, exchanges and bindings name."""
    return {str(e["vhost"]) for kind in ENTITIES for e in _entries(document, kind)
            if isinstance(e.get("vhost"), str)}


def _vhosts(document: dict[str, Any]) -> list[str]:
    """Every vhost the file names ('/' first): in ``vhosts``, or in an entry."""
    names = {e.get("name") for e in _entries(document, "vhosts")}
    names |= {e.get("vhost") for kind in (*ENTITIES, "permissions")
              for e in _entries(document, kind)}
    found = sorted(str(n) for n in names if isinstance(n, str) and n and n != VHOST)
    return [VHOST, *found]


def skipped(document: dict[str, Any]) -> list[str]:
    """One line per kind the server does not load, naming its entries."""
    lines = []
    for kind, name in UNSUPPORTED.items():
        entries = _entries(document, kind)
        if entries:
            lines.append(f"skipped {len(entries)} {kind.replace('_', ' ')} (not supported "
                         f"by the local broker yet): {', '.join(name(e) for e in entries)}")
    limited = [f"{kind[:-1]} '{e.get('name')}'" for kind in ("vhosts", "users")
               for e in _entries(document, kind) if e.get("limits")]
    if limited:
        lines.append(f"skipped the limits of {', '.join(limited)} (not supported by the "
                     "local broker yet)")
    return lines


def _entries(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    entries = document.get(kind)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
