"""``amq list queues|exchanges|bindings``: a table on a terminal, tab-separated in a pipe;
``amq list topology``: the routing as a tree, or one edge a line, DOT, Mermaid or JSON."""


import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from .. import errors
from ..amqp.codec import to_json_value
from ..amqp.model import Queue
from .app import app, env_of
from .consumer_options import ListFormatOption
from .env import Environment


class ListFormat(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


FormatOption = ListFormatOption[ListFormat]

list_app = typer.Typer(help="List queues, exchanges, bindings, or the topology.",
                       no_args_is_help=True)
app.add_typer(list_app, name="list")


def _args(arguments: dict[str, Any]) -> str:
    return json.dumps(to_json_value(arguments), sort_keys=True) if arguments else ""


def _show(env: Environment, fmt: ListFormat | None, columns: list[str],
          rows: list[list[Any]], records: list[dict[str, Any]], title: str) -> None:
    fmt = _format(env, fmt)
    if fmt is ListFormat.JSON:
        print(json.dumps(records, indent=2 if env.stdout_isatty else None), flush=True)
    elif fmt is ListFormat.TSV:
        for row in rows:
            print("\t".join(str(v) for v in row), flush=False)
    else:
        from ..render import table
        env.console().print(table(title, columns, rows))


def _format(env: Environment, fmt: ListFormat | None) -> ListFormat:
    """The format asked for, else a table on a terminal and tab-separated in a pipe."""
    return fmt or (ListFormat.TABLE if env.stdout_isatty else ListFormat.TSV)


def _flag(value: bool) -> str:
    return "yes" if value else ""


def _known(value: int | None) -> str:
    return "" if value is None else str(value)


def _offsets(q: Queue) -> str:
    """A stream's first and last offsets (``0-41``), where the broker reports them."""
    if q.first_offset is None or q.last_offset is None:
        return ""
    return f"{q.first_offset}-{q.last_offset}"


def _stream_record(q: Queue) -> dict[str, Any]:
    """A stream's size in ``--format json``: bytes and offsets (null where unknown)."""
    if q.type != "stream":
        return {}
    return {"bytes": q.bytes, "first_offset": q.first_offset, "last_offset": q.last_offset}


@list_app.command("queues", help="Queues with their counts and consumers, and their type; "
                  "a stream's size (messages kept, bytes, first and last offsets) where "
                  "the broker reports it.")
def list_queues(ctx: typer.Context, format: FormatOption = None) -> None:
    env = env_of(ctx)
    queues = env.backend().list_queues()
    columns = ["name", "messages", "unacked", "consumers", "durable", "exclusive",
               "auto_delete", "arguments", "type", "bytes", "offsets"]
    rows = [[q.name, q.messages, q.unacked, q.consumers, _flag(q.durable), _flag(q.exclusive),
             _flag(q.auto_delete), _args(q.arguments), q.type, _known(q.bytes),
             _offsets(q)] for q in queues]
    records = [{"name": q.name, "messages": q.messages, "unacked": q.unacked,
                "consumers": q.consumers, "durable": q.durable, "exclusive": q.exclusive,
                "auto_delete": q.auto_delete, "arguments": to_json_value(q.arguments),
                "type": q.type, **_stream_record(q)} for q in queues]
    _show(env, format, columns, rows, records, f"queues on {env.backend().display_url}")


@list_app.command("exchanges", help="Exchanges with their types and flags.")
def list_exchanges(ctx: typer.Context, format: FormatOption = None) -> None:
    env = env_of(ctx)
    exchanges = env.backend().list_exchanges()
    columns = ["name", "type", "durable", "auto_delete", "internal", "arguments"]
    fmt = _format(env, format)
    rows = [[x.name or ("(AMQP default)" if fmt is ListFormat.TABLE else ""), x.type.value,
             _flag(x.durable), _flag(x.auto_delete), _flag(x.internal), _args(x.arguments)]
            for x in exchanges]
    records = [{"name": x.name, "type": x.type.value, "durable": x.durable,
                "auto_delete": x.auto_delete, "internal": x.internal,
                "arguments": to_json_value(x.arguments)} for x in exchanges]
    _show(env, fmt, columns, rows, records, f"exchanges on {env.backend().display_url}")


@list_app.command("bindings", help="Bindings: source exchange, destination, routing key.")
def list_bindings(ctx: typer.Context, format: FormatOption = None) -> None:
    env = env_of(ctx)
    bindings = env.backend().list_bindings()
    columns = ["source", "destination", "destination_type", "routing_key", "arguments"]
    fmt = _format(env, format)
    rows = [[b.source or ("(AMQP default)" if fmt is ListFormat.TABLE else ""),
             b.destination, b.destination_type.value, b.routing_key, _args(b.arguments)]
            for b in bindings]
    records = [{"source": b.source, "destination": b.destination,
                "destination_type": b.destination_type.value, "routing_key": b.routing_key,
                "arguments": to_json_value(b.arguments)} for b in bindings]
    _show(env, fmt, columns, rows, records, f"bindings on {env.backend().display_url}")


class TopologyFormat(StrEnum):
    TREE = "tree"
    TEXT = "text"
    DOT = "dot"
    MERMAID = "mermaid"
    JSON = "json"


@list_app.command(
    "topology", help="The routing as a tree: exchanges, their bindings and what they lead "
                     "to (exchange-to-exchange chains, alternate and dead-letter exchanges, "
                     "by argument or policy), each queue with its messages and consumers.")
def list_topology(
    ctx: typer.Context,
    format: Annotated[TopologyFormat | None, typer.Option(
        "--format", "-F", case_sensitive=False,
        help="tree (terminal default), text (pipe default: one edge a line), dot "
             "(Graphviz), mermaid or json.")] = None,
    exchange: Annotated[str | None, typer.Option(
        "--exchange", "-e", metavar="NAME", help="Only what this exchange leads to.")] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", "-q", metavar="NAME", help="Only the paths that lead into this queue.")
    ] = None,
    all_: Annotated[bool, typer.Option(
        "--all", "-a", help="Also the amq.* exchanges nothing is bound to, and the default "
                            "exchange's binding to each queue.")] = False,
) -> None:
    from ..amqp import graph
    env = env_of(ctx)
    backend = env.backend()
    found = graph.build(backend.list_exchanges(), backend.list_queues(),
                        backend.list_bindings(), backend.policy_arguments(),
                        default_bindings=all_)
    vhost = env.broker_url().vhost
    for kind, name, cut in (("exchange", exchange, graph.downstream),
                            ("queue", queue, graph.upstream)):
        if name is not None:
            node = graph.NodeId(kind, name)
            if node not in found.nodes or found.nodes[node].missing:
                raise errors.NotFound(f"no {kind} '{name}' in vhost '{vhost}'")
            found = cut(found, name)
    if not all_:
        found = graph.fold(found)
    branches = graph.tree(found)
    loops = graph.loop_edges(branches)
    fmt = format or (TopologyFormat.TREE if env.stdout_isatty else TopologyFormat.TEXT)
    if fmt is TopologyFormat.TREE:
        from ..render import topology_tree
        env.console().print(topology_tree(f"topology of {backend.display_url}", branches),
                            soft_wrap=False)
        return
    from . import drawing
    text = {TopologyFormat.TEXT: lambda: "\n".join(graph.plain_lines(found, loops)),
            TopologyFormat.DOT: lambda: drawing.dot(found, loops),
            TopologyFormat.MERMAID: lambda: drawing.mermaid(found, loops),
            TopologyFormat.JSON: lambda: json.dumps(drawing.as_json(found, loops), indent=2)}
    out = text[fmt]()
    if out:
        print(out, flush=True)
