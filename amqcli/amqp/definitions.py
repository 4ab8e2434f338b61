"""RabbitMQ's definitions format, and the plan of an import, as pure functions.

The format is the JSON of ``rabbitmqctl export_definitions`` and of the management API
(``/api/definitions``, or per vhost ``/api/definitions/VHOST``, whose entries carry no
``vhost`` field): ``queues``, ``exchanges`` and ``bindings`` with ``durable``,
``auto_delete``, ``arguments``, ``destination_type`` ... ``amq definitions export`` writes
the per-vhost form; ``import`` reads both. Server-named queues (``amq.*``), exclusive
queues, the default exchange, the ``amq.*`` exchanges and the bindings that need any of
them are left out both ways. An import is planned first against what the broker holds
(``plan``): each entity is created, exists already (equivalent), or conflicts (with the
broker's own 406/404/405 text), so that nothing is created when anything conflicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from .. import errors
from .args import check_exchange_equivalent, check_queue_equivalent, validate_queue_arguments
from .codec import from_json_value, to_json_value
from .model import Binding, DestinationType, Exchange, ExchangeType, Queue

# Kinds of a definitions file that an import does not load (one line each says so).
OTHER_KINDS = ("users", "vhosts", "permissions", "topic_permissions", "parameters",
               "global_parameters", "policies")


class Definitions(NamedTuple):
    """What a definitions file holds for one vhost, as model values."""

    exchanges: list[Exchange]
    queues: list[Queue]
    bindings: list[Binding]
    skipped: dict[str, int] = {}  # other kinds in the file: how many entries of each
    left_out: list[str] = []  # entities left out (server-named, exclusive, amq.*)


class Action(StrEnum):
    CREATE = "create"
    EXISTS = "exists"
    CONFLICT = "conflict"


class Step(NamedTuple):
    """One entity of an import and what becomes of it."""

    action: Action
    entity: Exchange | Queue | Binding
    problem: errors.BrokerError | None = None  # with CONFLICT: the broker's error

    @property
    def kind(self) -> str:
        return kind_of(self.entity)

    def describe(self) -> str:
        return describe(self.entity)


def kind_of(entity: Exchange | Queue | Binding) -> str:
    if isinstance(entity, Exchange):
        return "exchange"
    return "queue" if isinstance(entity, Queue) else "binding"


def describe(entity: Exchange | Queue | Binding) -> str:
    """``exchange 'orders' (topic)``, ``queue 'jobs'``, ``binding 'orders' -> queue 'eu'
    key 'eu.#'``."""
    if isinstance(entity, Exchange):
        return f"exchange '{entity.name}' ({entity.type.value})"
    if isinstance(entity, Queue):
        return f"queue '{entity.name}'"
    text = (f"binding '{entity.source}' -> {entity.destination_type.value} "
            f"'{entity.destination}' key '{entity.routing_key}'")
    if entity.arguments:
        import json
        text += " arguments " + json.dumps(to_json_value(entity.arguments), sort_keys=True)
    return text


# --- what is exported and imported -------------------------------------------------------

def server_named(name: str) -> bool:
    """A name only the broker may give (``amq.gen-...``: the ``amq.`` prefix is reserved)."""
    return name.startswith("amq.")


def keeps_queue(q: Queue) -> bool:
    return not q.exclusive and not server_named(q.name)


def keeps_exchange(x: Exchange) -> bool:
    return x.name != "" and not server_named(x.name)


def keeps_binding(b: Binding, queues: set[str]) -> bool:
    """A binding of a kept queue, or between exchanges (neither the default one); its
    source may be a predeclared ``amq.*`` exchange, which every broker has."""
    if b.source == "":
        return False
    if b.destination_type is DestinationType.QUEUE:
        return b.destination in queues
    return b.destination != ""


def _binding_key(b: Binding) -> tuple[Any, ...]:
    return (b.source, b.destination_type.value, b.destination, b.routing_key,
            repr(sorted(to_json_value(b.arguments).items())))


def export(exchanges: Sequence[Exchange], queues: Sequence[Queue],
           bindings: Sequence[Binding], version: str) -> dict[str, Any]:
    """The definitions document of one vhost (the management API's per-vhost form)."""
    kept_queues = sorted((q for q in queues if keeps_queue(q)), key=lambda q: q.name)
    names = {q.name for q in kept_queues}
    return {
        "amq_version": version,
        "queues": [{"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                    "arguments": to_json_value(q.arguments)} for q in kept_queues],
        "exchanges": [{"name": x.name, "type": x.type.value, "durable": x.durable,
                       "auto_delete": x.auto_delete, "internal": x.internal,
                       "arguments": to_json_value(x.arguments)}
                      for x in sorted(exchanges, key=lambda x: x.name) if keeps_exchange(x)],
        "bindings": [{"source": b.source, "destination": b.destination,
                      "destination_type": b.destination_type.value,
                      "routing_key": b.routing_key, "arguments": to_json_value(b.arguments)}
                     for b in sorted(bindings, key=_binding_key) if keeps_binding(b, names)],
    }


# --- reading a file ------------------------------------------------------------------------

def _entries(document: dict[str, Any], kind: str, where: str) -> list[dict[str, Any]]:
    entries = document.get(kind) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise errors.UsageError(f"{where}: '{kind}' must be a list of objects")
    return entries


def pick_vhost(document: dict[str, Any], vhost: str | None, where: str) -> str | None:
    """The vhost whose entries to read: ``vhost`` if given (it must be in the file when
    the file names vhosts), else the one vhost the file's entries name (None: they name
    none, the per-vhost form). Several without ``vhost``: a usage error."""
    named = sorted({e["vhost"] for kind in ("queues", "exchanges", "bindings")
                    for e in _entries(document, kind, where) if isinstance(e.get("vhost"), str)})
    if vhost is not None:
        if named and vhost not in named:
            raise errors.UsageError(f"{where} has no definitions of vhost '{vhost}' (it has: "
                                    + ", ".join(f"'{v}'" for v in named) + ")")
        return vhost
    if len(named) > 1:
        raise errors.UsageError(
            f"{where} holds the definitions of several vhosts ("
            + ", ".join(f"'{v}'" for v in named) + "): pick one with --vhost NAME")
    return named[0] if named else None


def _arguments(entry: dict[str, Any], where: str) -> dict[str, Any]:
    arguments = entry.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise errors.UsageError(f"{where}: 'arguments' must be an object")
    try:
        return from_json_value(arguments)
    except ValueError as err:
        raise errors.UsageError(f"{where}: {err}") from None


def _text(entry: dict[str, Any], field: str, where: str, default: str | None = None) -> str:
    value = entry.get(field, default)
    if not isinstance(value, str):
        raise errors.UsageError(f"{where}: '{field}' must be a string")
    return value


def _flag(entry: dict[str, Any], field: str) -> bool:
    return bool(entry.get(field, False))


def _queue(e: dict[str, Any], where: str) -> Queue:
    return Queue(_text(e, "name", where), _flag(e, "durable"), _flag(e, "exclusive"),
                 _flag(e, "auto_delete"), _arguments(e, where))


def _exchange(e: dict[str, Any], where: str) -> Exchange | str:
    """The exchange, or why it is left out (a plugin's type, which amq does not know)."""
    kind = _text(e, "type", where)
    try:
        xtype = ExchangeType(kind)
    except ValueError:
        return f"exchange '{_text(e, 'name', where)}' (type '{kind}': a plugin's, not known)"
    return Exchange(_text(e, "name", where), xtype, _flag(e, "durable"),
                    _flag(e, "auto_delete"), _flag(e, "internal"), _arguments(e, where))


def _binding(e: dict[str, Any], where: str) -> Binding:
    dtype = _text(e, "destination_type", where, "queue")
    if dtype not in ("queue", "exchange"):
        raise errors.UsageError(f"{where}: 'destination_type' must be queue or exchange")
    return Binding(_text(e, "source", where), _text(e, "destination", where),
                   DestinationType(dtype), _text(e, "routing_key", where, ""),
                   _arguments(e, where))


def _count(entries: Any, vhost: str | None) -> int:
    """How many entries of a kind concern the vhost read (those naming another do not)."""
    if isinstance(entries, dict):
        return len(entries)
    if not isinstance(entries, list):
        return 0
    return sum(1 for e in entries if not (isinstance(e, dict) and vhost is not None and
                                          e.get("vhost", vhost) != vhost))


def parse(document: Any, vhost: str | None, where: str) -> Definitions:
    """The definitions of one vhost in a decoded file (``where`` names it in errors)."""
    if not isinstance(document, dict):
        raise errors.UsageError(f"{where}: not a definitions file (a JSON object with "
                                "queues, exchanges and bindings)")
    chosen = pick_vhost(document, vhost, where)

    def mine(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{where}: {kind}[{i}]", e) for i, e in
                enumerate(_entries(document, kind, where))
                if chosen is None or e.get("vhost", chosen) == chosen]
    queues = [_queue(e, at) for at, e in mine("queues")]
    read = [_exchange(e, at) for at, e in mine("exchanges")]
    exchanges = [x for x in read if isinstance(x, Exchange)]
    bindings = [_binding(e, at) for at, e in mine("bindings")]
    dropped = {q.name for q in queues if not keeps_queue(q)}
    left_out = [f"{describe(q)} ({'exclusive' if q.exclusive else 'server-named'})"
                for q in queues if q.name in dropped]
    left_out += [f"{describe(x)} (predeclared)" for x in exchanges if not keeps_exchange(x)]
    left_out += [x for x in read if isinstance(x, str)]

    def keep(b: Binding) -> bool:  # its queue may be on the broker already, not in the file
        if b.destination_type is DestinationType.EXCHANGE:
            return keeps_binding(b, set())
        return b.source != "" and b.destination not in dropped and \
            not server_named(b.destination)
    left_out += [f"{describe(b)} (of the default exchange or a queue left out)"
                 for b in bindings if not keep(b)]
    skipped = {kind: n for kind in OTHER_KINDS if (n := _count(document.get(kind), chosen))}
    return Definitions([x for x in exchanges if keeps_exchange(x)],
                       [q for q in queues if q.name not in dropped],
                       [b for b in bindings if keep(b)], skipped, left_out)


# --- planning an import ----------------------------------------------------------------

def _in_vhost(err: errors.BrokerError, vhost: str) -> errors.BrokerError:
    """The error with RabbitMQ's text naming the target's vhost (the checks say '/')."""
    if vhost != "/":
        err.text = err.text.replace("in vhost '/'", f"in vhost '{vhost}'")
    return err


def _queue_step(q: Queue, have: Queue | None, vhost: str) -> Step:
    if have is None:
        if q.arguments.get("x-queue-type") == "stream":
            return Step(Action.CREATE, q)  # RabbitMQ's rules of its own; locally refused
        try:  # what the broker would refuse, before anything is created
            validate_queue_arguments(q.name, q.arguments, durable=q.durable,
                                     exclusive=q.exclusive, auto_delete=q.auto_delete)
        except errors.BrokerError as err:
            return Step(Action.CONFLICT, q, _in_vhost(err, vhost))
        return Step(Action.CREATE, q)
    if have.exclusive:
        return Step(Action.CONFLICT, q, errors.ResourceLocked(
            f"cannot obtain exclusive access to locked queue '{q.name}' in vhost '{vhost}'"))
    try:
        check_queue_equivalent(q.name, have.arguments,
                               {"durable": have.durable, "auto_delete": have.auto_delete},
                               q.arguments, {"durable": q.durable, "auto_delete": q.auto_delete})
    except errors.BrokerError as err:
        return Step(Action.CONFLICT, q, _in_vhost(err, vhost))
    return Step(Action.EXISTS, q)


def _exchange_step(x: Exchange, have: Exchange | None, vhost: str) -> Step:
    if have is None:
        return Step(Action.CREATE, x)

    def flags(e: Exchange) -> dict[str, Any]:
        return {"type": e.type.value, "durable": e.durable, "auto_delete": e.auto_delete,
                "internal": e.internal, "arguments": e.arguments}
    try:
        check_exchange_equivalent(x.name, flags(have), flags(x))
    except errors.BrokerError as err:
        return Step(Action.CONFLICT, x, _in_vhost(err, vhost))
    return Step(Action.EXISTS, x)


def _binding_step(b: Binding, exchanges: set[str], queues: set[str],
                  current: set[tuple[Any, ...]], vhost: str) -> Step:
    ends = [("exchange", b.source, exchanges), (b.destination_type.value, b.destination,
                                                queues if b.destination_type is
                                                DestinationType.QUEUE else exchanges)]
    for kind, name, known in ends:
        if name not in known:
            return Step(Action.CONFLICT, b, errors.NotFound(
                f"no {kind} '{name}' in vhost '{vhost}' (neither in the file nor on the "
                "broker)"))
    return Step(Action.EXISTS if _binding_key(b) in current else Action.CREATE, b)


def plan(wanted: Definitions, exchanges: Sequence[Exchange], queues: Sequence[Queue],
         bindings: Sequence[Binding], vhost: str) -> list[Step]:
    """What importing ``wanted`` into a vhost holding ``exchanges``, ``queues`` and
    ``bindings`` does to each entity, in the order of creation: exchanges, queues, then
    bindings (whose ends must then exist)."""
    have_x = {x.name: x for x in exchanges}
    have_q = {q.name: q for q in queues}
    steps = [_exchange_step(x, have_x.get(x.name), vhost) for x in wanted.exchanges]
    steps += [_queue_step(q, have_q.get(q.name), vhost) for q in wanted.queues]
    x_names = set(have_x) | {x.name for x in wanted.exchanges}
    q_names = set(have_q) | {q.name for q in wanted.queues}
    current = {_binding_key(b) for b in bindings}
    steps += [_binding_step(b, x_names, q_names, current, vhost) for b in wanted.bindings]
    return steps


class Declarer(Protocol):
    """What creating a plan's entities takes of a broker (a ``Backend`` has it)."""

    def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         passive: bool = False,
                         arguments: dict[str, Any] | None = None) -> None: ...

    def declare_queue(self, name: str, *, durable: bool = False, exclusive: bool = False,
                      auto_delete: bool = False, passive: bool = False,
                      arguments: dict[str, Any] | None = None) -> Any: ...

    def bind(self, source: str, destination: str, routing_key: str = "",
             arguments: dict[str, Any] | None = None,
             destination_type: DestinationType = DestinationType.QUEUE) -> None: ...


def create(broker: Declarer, steps: Sequence[Step]) -> None:
    """Declare what the steps say to create, in their order."""
    for step in steps:
        if step.action is not Action.CREATE:
            continue
        e = step.entity
        if isinstance(e, Exchange):
            broker.declare_exchange(e.name, e.type.value, durable=e.durable,
                                    auto_delete=e.auto_delete, internal=e.internal,
                                    arguments=e.arguments)
        elif isinstance(e, Queue):
            broker.declare_queue(e.name, durable=e.durable, auto_delete=e.auto_delete,
                                 arguments=e.arguments)
        else:
            broker.bind(e.source, e.destination, e.routing_key, e.arguments,
                        e.destination_type)


def check_existing(broker: Declarer, steps: Sequence[Step]) -> None:
    """Passive declares of what the plan found on the broker (the entities that exist, and
    the ends of the bindings to create that the plan does not create): a ``NotFound`` or
    ``ResourceLocked`` here comes before anything is created."""
    created = {(s.kind, s.entity.name) for s in steps  # type: ignore[union-attr]
               if s.action is Action.CREATE and s.kind != "binding"}
    looked: set[tuple[str, str]] = set()

    def look(kind: str, name: str) -> None:
        if (kind, name) in created or (kind, name) in looked or name == "":
            return
        looked.add((kind, name))
        if kind == "queue":
            broker.declare_queue(name, passive=True)
        else:
            broker.declare_exchange(name, passive=True)
    for s in steps:
        e = s.entity
        if isinstance(e, Binding):
            if s.action is Action.CREATE:
                look("exchange", e.source)
                look(e.destination_type.value, e.destination)
        elif s.action is Action.EXISTS:
            look(s.kind, e.name)
