"""``amq vhost list|add|delete``: the broker's virtual hosts.

On the local broker each vhost other than ``/`` is a store file of its own beside the
store (``broker/vhosts.py``); commands reach one with ``--url local?vhost=NAME`` (or
``local:PATH?vhost=NAME``). On RabbitMQ these go through its management API; ``add``
also gives the URL's user every permission in the new vhost (``--no-grant``: none), as
the local broker, which has no users, in effect does.
"""

from typing import Annotated

import typer

from .. import errors
from .app import app, env_of
from .listing import FormatOption, _show

vhost_app = typer.Typer(help="List, add or delete virtual hosts.", no_args_is_help=True)
app.add_typer(vhost_app, name="vhost")


@vhost_app.command("list", help="The broker's vhosts, with their descriptions and tags.")
def list_(ctx: typer.Context, format: FormatOption = None) -> None:
    env = env_of(ctx)
    found = env.backend().list_vhosts()
    rows = [[v.name, v.description, ",".join(v.tags)] for v in found]
    records = [{"name": v.name, "description": v.description, "tags": list(v.tags)}
               for v in found]
    _show(env, format, ["name", "description", "tags"], rows, records,
          f"vhosts on {env.backend().display_url}")


@vhost_app.command("add", help="Add a vhost (one that exists already is left as it is).")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The vhost's name.")],
    description: Annotated[str, typer.Option(
        "--description", "-d", metavar="TEXT", help="A description, for listings.")] = "",
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", metavar="TAG", help="A tag (repeat for several).")] = None,
    grant: Annotated[bool, typer.Option(
        "--grant/--no-grant",
        help="RabbitMQ: give the URL's user every permission in the new vhost.")] = True,
) -> None:
    env = env_of(ctx)
    backend = env.backend()
    created = backend.add_vhost(name, description, tuple(tags or ()), grant=grant)
    if env.stderr_isatty or not created:
        env.say(f"added vhost '{name}'" if created else f"vhost '{name}' exists already")


@vhost_app.command("delete", help="Delete a vhost and everything in it: its queues with "
                                  "their messages, its exchanges and bindings.")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The vhost's name.")],
    yes: Annotated[bool, typer.Option(
        "--yes", help="Delete the default vhost '/' too (RabbitMQ allows it; clients "
                      "whose URL names no vhost then have nowhere to go).")] = False,
) -> None:
    env = env_of(ctx)
    if name == "/" and not yes:
        raise errors.UsageError(
            "deleting the default vhost '/' deletes every queue, exchange and message in "
            "it, and every URL without a vhost names it: add --yes if that is what you want")
    env.backend().delete_vhost(name)
    if env.stderr_isatty:
        env.say(f"deleted vhost '{name}'")
