"""``amq list queues|exchanges|bindings``: a table on a terminal, tab-separated in a pipe."""


import json
from enum import StrEnum
from typing import Any

import typer

from ..amqp.codec import to_json_value
from .app import app, env_of
from .consumer_options import ListFormatOption
from .env import Environment


class ListFormat(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


FormatOption = ListFormatOption[ListFormat]

list_app = typer.Typer(help="List queues, exchanges or bindings.", no_args_is_help=True)
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


@list_app.command("queues", help="Queues with their ready/unacked counts and consumers.")
def list_queues(ctx: typer.Context, format: FormatOption = None) -> None:
    env = env_of(ctx)
    queues = env.backend().list_queues()
    columns = ["name", "messages", "unacked", "consumers", "durable", "exclusive",
               "auto_delete", "arguments"]
    rows = [[q.name, q.messages, q.unacked, q.consumers, _flag(q.durable), _flag(q.exclusive),
             _flag(q.auto_delete), _args(q.arguments)] for q in queues]
    records = [{"name": q.name, "messages": q.messages, "unacked": q.unacked,
                "consumers": q.consumers, "durable": q.durable, "exclusive": q.exclusive,
                "auto_delete": q.auto_delete, "arguments": to_json_value(q.arguments)}
               for q in queues]
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
