"""``amq declare``, ``bind``, ``unbind``, ``delete`` and ``purge``: shaping the broker."""


from typing import Annotated, Any

import typer

from ..amqp.model import DestinationType
from .app import app, env_of
from .parsing import parse_arguments, parse_headers

declare_app = typer.Typer(help="Declare a queue or an exchange (idempotent).",
                          no_args_is_help=True)
delete_app = typer.Typer(help="Delete a queue or an exchange.", no_args_is_help=True)
app.add_typer(declare_app, name="declare")
app.add_typer(delete_app, name="delete")

ArgOption = Annotated[list[str] | None, typer.Option(
    "--arg", "-a", metavar="K=V", help="Argument K=V or K:=JSON (x-message-ttl=60000); repeat.")]


def _queue_arguments(args: list[str] | None, **friendly: Any) -> dict[str, Any]:
    out = parse_arguments(args)
    for key, value in friendly.items():
        if value is not None:
            out.setdefault(key, value)
    return out


@declare_app.command("queue", help="Declare a queue. NAME \"\" lets the broker name it.")
def declare_queue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Queue name.")],
    durable: Annotated[bool, typer.Option("--durable", help="Survive a broker restart.")] = False,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="Only this connection may use it; deleted when it closes.")] = False,
    auto_delete: Annotated[bool, typer.Option(
        "--auto-delete", help="Deleted when its last consumer goes.")] = False,
    passive: Annotated[bool, typer.Option(
        "--passive", help="Only check that it exists (exit 3 if not).")] = False,
    args: ArgOption = None,
    ttl: Annotated[int | None, typer.Option(
        "--ttl", metavar="MS", help="x-message-ttl: message lifetime in ms.")] = None,
    expires: Annotated[int | None, typer.Option(
        "--expires", metavar="MS", help="x-expires: delete when unused this long.")] = None,
    max_length: Annotated[int | None, typer.Option(
        "--max-length", metavar="N", help="x-max-length.")] = None,
    max_length_bytes: Annotated[int | None, typer.Option(
        "--max-length-bytes", metavar="N",
        help="x-max-length-bytes (on a stream: retention, in whole segments).")] = None,
    overflow: Annotated[str | None, typer.Option(
        "--overflow", metavar="MODE",
        help="x-overflow: drop-head, reject-publish or reject-publish-dlx.")] = None,
    dead_letter_exchange: Annotated[str | None, typer.Option(
        "--dead-letter-exchange", "--dlx", metavar="NAME", help="x-dead-letter-exchange.")
    ] = None,
    dead_letter_routing_key: Annotated[str | None, typer.Option(
        "--dead-letter-routing-key", "--dlrk", metavar="KEY",
        help="x-dead-letter-routing-key.")] = None,
    max_priority: Annotated[int | None, typer.Option(
        "--max-priority", metavar="N", help="x-max-priority.")] = None,
    queue_type: Annotated[str | None, typer.Option(
        "--type", metavar="TYPE",
        help="x-queue-type: classic, quorum or stream (streams need --durable).")] = None,
    max_age: Annotated[str | None, typer.Option(
        "--max-age", metavar="AGE",
        help="x-max-age (streams): drop whole segments older than this: 7D, 12h, 30m "
             "(units Y M D h m s).")] = None,
    max_segment_size_bytes: Annotated[int | None, typer.Option(
        "--max-segment-size-bytes", metavar="N",
        help="x-stream-max-segment-size-bytes (streams): the size of the segments that "
             "retention drops whole (default 500000000).")] = None,
    single_active_consumer: Annotated[bool, typer.Option(
        "--single-active-consumer", "--sac",
        help="x-single-active-consumer: one consumer at a time gets messages; the next "
             "takes over when it goes.")] = False,
    delivery_limit: Annotated[int | None, typer.Option(
        "--delivery-limit", metavar="N", min=0,
        help="x-delivery-limit (quorum queues): a message returned more often than this "
             "is dead-lettered (or dropped).")] = None,
) -> None:
    env = env_of(ctx)
    arguments = _queue_arguments(
        args, **{"x-message-ttl": ttl, "x-expires": expires, "x-max-length": max_length,
                 "x-max-length-bytes": max_length_bytes, "x-overflow": overflow,
                 "x-dead-letter-exchange": dead_letter_exchange,
                 "x-dead-letter-routing-key": dead_letter_routing_key,
                 "x-max-priority": max_priority, "x-queue-type": queue_type,
                 "x-single-active-consumer": True if single_active_consumer else None,
                 "x-delivery-limit": delivery_limit, "x-max-age": max_age,
                 "x-stream-max-segment-size-bytes": max_segment_size_bytes})
    ok = env.backend().declare_queue(name, durable=durable, exclusive=exclusive,
                                     auto_delete=auto_delete, passive=passive,
                                     arguments=arguments)
    if env.stdout_isatty:
        env.say(f"queue '{ok.queue}': {ok.message_count} messages ready, "
                f"{ok.consumer_count} consumers")
    else:
        print(ok.queue, flush=True)


@declare_app.command("exchange", help="Declare an exchange.")
def declare_exchange(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Exchange name.")],
    type: Annotated[str, typer.Option(
        "--type", "-t", metavar="TYPE",
        help="direct, fanout, topic, headers (or a plugin's type on RabbitMQ).")] = "direct",
    durable: Annotated[bool, typer.Option("--durable", help="Survive a broker restart.")] = False,
    auto_delete: Annotated[bool, typer.Option(
        "--auto-delete", help="Deleted when its last binding goes.")] = False,
    internal: Annotated[bool, typer.Option(
        "--internal", help="Only other exchanges may publish to it.")] = False,
    passive: Annotated[bool, typer.Option(
        "--passive", help="Only check that it exists (exit 3 if not).")] = False,
    alternate_exchange: Annotated[str | None, typer.Option(
        "--alternate-exchange", "--ae", metavar="NAME",
        help="alternate-exchange: where unroutable messages go.")] = None,
    args: ArgOption = None,
) -> None:
    env = env_of(ctx)
    arguments = _queue_arguments(args, **{"alternate-exchange": alternate_exchange})
    env.backend().declare_exchange(name, type, durable=durable, auto_delete=auto_delete,
                                   internal=internal, passive=passive, arguments=arguments)
    if env.stdout_isatty:
        env.say(f"exchange '{name}' ({type}) is declared" if not passive
                else f"exchange '{name}' exists")


def _binding_args(headers: list[str] | None, match: str | None,
                  args: list[str] | None) -> dict[str, Any]:
    out = parse_arguments(args)
    out.update(parse_headers(headers))
    if match is not None:
        out["x-match"] = match
    return out


BindKeys = Annotated[list[str] | None, typer.Option(
    "--routing-key", "-k", metavar="KEY", help="Binding key; repeat for several bindings.")]
BindHeaders = Annotated[list[str] | None, typer.Option(
    "--header", "-H", metavar="K=V", help="Header to match (headers exchanges); repeat.")]
BindMatch = Annotated[str | None, typer.Option(
    "--match", metavar="all|any", help="x-match for headers exchanges (default all).")]
ToExchange = Annotated[bool, typer.Option(
    "--to-exchange", help="QUEUE names an exchange (exchange-to-exchange binding).")]


def _bind(ctx: typer.Context, unbind: bool, exchange: str, destination: str,
          keys: list[str] | None, headers: list[str] | None, match: str | None,
          args: list[str] | None, to_exchange: bool) -> None:
    env = env_of(ctx)
    backend = env.backend()
    arguments = _binding_args(headers, match, args)
    dtype = DestinationType.EXCHANGE if to_exchange else DestinationType.QUEUE
    for key in keys or [""]:
        if unbind:
            backend.unbind(exchange, destination, key, arguments, dtype)
        else:
            backend.bind(exchange, destination, key, arguments, dtype)
    if env.stdout_isatty:
        verb = "unbound" if unbind else "bound"
        shown = ", ".join(repr(k) for k in keys or [""])
        env.say(f"{verb} {dtype.value} '{destination}' from exchange '{exchange}' "
                f"(routing key {shown})")


@app.command("bind", help="Bind a queue to an exchange: messages flow from EXCHANGE into QUEUE.")
def bind(
    ctx: typer.Context,
    exchange: Annotated[str, typer.Argument(metavar="EXCHANGE", help="The source exchange.")],
    queue: Annotated[str, typer.Argument(
        metavar="QUEUE", help="The destination queue (an exchange with --to-exchange).")],
    keys: BindKeys = None, headers: BindHeaders = None, match: BindMatch = None,
    args: ArgOption = None, to_exchange: ToExchange = False,
) -> None:
    _bind(ctx, False, exchange, queue, keys, headers, match, args, to_exchange)


@app.command("unbind", help="Remove a binding (the same options as bind).")
def unbind(
    ctx: typer.Context,
    exchange: Annotated[str, typer.Argument(metavar="EXCHANGE", help="The source exchange.")],
    queue: Annotated[str, typer.Argument(
        metavar="QUEUE", help="The destination queue (an exchange with --to-exchange).")],
    keys: BindKeys = None, headers: BindHeaders = None, match: BindMatch = None,
    args: ArgOption = None, to_exchange: ToExchange = False,
) -> None:
    _bind(ctx, True, exchange, queue, keys, headers, match, args, to_exchange)


@delete_app.command("queue", help="Delete a queue and its messages.")
def delete_queue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Queue name.")],
    if_unused: Annotated[bool, typer.Option(
        "--if-unused", help="Only if it has no consumers.")] = False,
    if_empty: Annotated[bool, typer.Option(
        "--if-empty", help="Only if it holds no ready messages.")] = False,
) -> None:
    env = env_of(ctx)
    deleted = env.backend().delete_queue(name, if_unused=if_unused, if_empty=if_empty)
    if env.stdout_isatty:
        env.say(f"deleted queue '{name}' ({deleted} messages)")
    else:
        print(deleted, flush=True)


@delete_app.command("exchange", help="Delete an exchange and its bindings.")
def delete_exchange(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Exchange name.")],
    if_unused: Annotated[bool, typer.Option(
        "--if-unused", help="Only if no bindings lead from it.")] = False,
) -> None:
    env = env_of(ctx)
    env.backend().delete_exchange(name, if_unused=if_unused)
    if env.stdout_isatty:
        env.say(f"deleted exchange '{name}'")


@app.command("purge", help="Remove every ready message from a queue.")
def purge(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(metavar="QUEUE")],
) -> None:
    env = env_of(ctx)
    purged = env.backend().purge_queue(queue)
    if env.stdout_isatty:
        env.say(f"purged {purged} messages from queue '{queue}'")
    else:
        print(purged, flush=True)


