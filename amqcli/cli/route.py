"""``amq route``: where a message would go, without publishing it.

Shows each exchange the message passes (bindings that match, exchange-to-exchange hops,
the alternate exchange taken when nothing matched) and the queues that would get a
copy, or says plainly that the message would be dropped.
"""

import json
from typing import Annotated, Any

import typer

from .. import errors
from ..amqp.codec import to_json_value
from ..amqp.routing import Route
from . import options
from .app import app, env_of
from .parsing import parse_headers


@app.command("route", help="Explain where a message would go, without publishing it: the "
                           "bindings that match, hop by hop, and the queues that get a copy.")
def route(
    ctx: typer.Context,
    exchange: Annotated[str, typer.Argument(metavar="EXCHANGE",
                                            help='The exchange ("" for the default).')],
    routing_key: Annotated[str, typer.Argument(metavar="ROUTING_KEY")] = "",
    headers: options.ShortHeader = None,
    format: Annotated[str, typer.Option("--format", "-F", metavar="text|json")] = "text",
) -> None:
    env = env_of(ctx)
    if format not in ("text", "json"):
        raise errors.UsageError(f"--format must be text or json, not {format!r}")
    found = env.backend().route(exchange, routing_key, parse_headers(headers) or None)
    if format == "json":
        print(json.dumps(_as_json(found), indent=2 if env.stdout_isatty else None), flush=True)
    else:
        print("\n".join(_as_text(found)), flush=True)
    if not found.queues:
        raise errors.Unroutable(
            "312 NO_ROUTE - the message would reach no queue and be dropped "
            "(returned to a publisher that sets mandatory)")


def _name(exchange: str) -> str:
    return f"'{exchange}'" if exchange else "'' (the default exchange)"


def _as_text(found: Route) -> list[str]:
    lines = []
    for hop in found.hops:
        if hop.missing:
            lines.append(f"exchange {_name(hop.exchange)}: does not exist, the message is "
                         "dropped here")
            continue
        lines.append(f"exchange {_name(hop.exchange)}")
        for b in hop.matched:
            key = f"key '{b.routing_key}'" if not b.arguments else \
                f"arguments {json.dumps(to_json_value(b.arguments), sort_keys=True)}"
            lines.append(f"  matches {key} -> {b.destination_type.value} '{b.destination}'")
        if not hop.matched:
            lines.append("  no binding matches" + (
                f": on to its alternate exchange '{hop.alternate}'" if hop.alternate else ""))
    if found.queues:
        lines.append("=> a copy to each of: " + ", ".join(f"'{q}'" for q in found.queues))
    else:
        lines.append("=> no queue: the message would be dropped")
    return lines


def _as_json(found: Route) -> dict[str, Any]:
    return {
        "queues": found.queues,
        "hops": [{"exchange": h.exchange, "missing": h.missing, "alternate": h.alternate,
                  "matched": [{"destination": b.destination,
                               "destination_type": b.destination_type.value,
                               "routing_key": b.routing_key,
                               "arguments": to_json_value(b.arguments)} for b in h.matched]}
                 for h in found.hops],
    }
