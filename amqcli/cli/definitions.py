"""``amq definitions export|import``: a vhost's queues, exchanges and bindings as RabbitMQ's
definitions JSON, written from either broker and loaded into either.

An import is planned first against what the broker holds (``amqp/definitions.py``), so a
conflict stops it before anything is created; ``--dry-run`` stops after the plan.
"""

import json
import os
import sys
from typing import Annotated, Any

import typer

from .. import errors
from ..amqp import definitions as defs
from .app import app, env_of

definitions_app = typer.Typer(
    help="Export or import a vhost's queues, exchanges and bindings (RabbitMQ's "
         "definitions JSON).", no_args_is_help=True)
app.add_typer(definitions_app, name="definitions")

VERBS = {defs.Action.CREATE: "created", defs.Action.EXISTS: "exists"}
DRY_VERBS = {defs.Action.CREATE: "would create", defs.Action.EXISTS: "exists"}


@definitions_app.command(
    "export", help="Write the definitions of the URL's vhost (queues, exchanges, bindings; "
                   "not server-named or exclusive queues, not amq.* exchanges) as JSON to "
                   "FILE, or to stdout.")
def export(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Argument(
        metavar="[FILE]", help="Where to write them ('-' or none: stdout).")] = None,
) -> None:
    from .. import __version__
    env = env_of(ctx)
    backend = env.backend()
    document = defs.export(backend.list_exchanges(), backend.list_queues(),
                           backend.list_bindings(), __version__)
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if file in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open(file, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as err:
        raise errors.UsageError(f"cannot write {file}: {err.strerror}") from None
    if env.stderr_isatty:
        env.say(f"exported {len(document['exchanges'])} exchanges, "
                f"{len(document['queues'])} queues and {len(document['bindings'])} bindings "
                f"to {file}")


def read_file(path: str) -> Any:
    """The decoded JSON of a definitions file ('-': stdin), or a usage error naming it."""
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise errors.UsageError(f"cannot read {path}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise errors.UsageError(f"{path} is not JSON: {err}") from None


def _report(steps: list[defs.Step], dry_run: bool) -> None:
    verbs = DRY_VERBS if dry_run else VERBS
    lines = [f"{verbs[s.action]} {s.describe()}" for s in steps
             if s.action is not defs.Action.CONFLICT]
    if lines:
        print("\n".join(lines), flush=True)


def summary(steps: list[defs.Step], dry_run: bool) -> str:
    counts = {kind: sum(1 for s in steps if s.kind == kind and s.action is defs.Action.CREATE)
              for kind in ("exchange", "queue", "binding")}
    made = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())
    existing = sum(1 for s in steps if s.action is defs.Action.EXISTS)
    return f"{'would create' if dry_run else 'created'} {made} ({existing} existed already)"


@definitions_app.command(
    "import", help="Create the queues, exchanges and bindings of a definitions file in the "
                   "URL's vhost; what exists already (equivalent) is left as it is. Checked "
                   "first: on any conflict nothing is created.")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="The JSON file ('-': stdin).")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="Only say what would be created and what conflicts.")] = False,
    vhost: Annotated[str | None, typer.Option(
        "--vhost", metavar="NAME",
        help="The vhost of the file to read, when it holds several.")] = None,
) -> None:
    env = env_of(ctx)
    wanted = defs.parse(read_file(file), vhost, file)
    for kind, count in wanted.skipped.items():
        env.say(f"amq: skipped {count} {kind} (import loads queues, exchanges and bindings)")
    for what in wanted.left_out:
        env.say(f"amq: left out {what}")
    backend = env.backend()
    steps = defs.plan(wanted, backend.list_exchanges(), backend.list_queues(),
                      backend.list_bindings(), env.broker_url().vhost)
    conflicts = [s for s in steps if s.problem is not None]
    if dry_run:
        _report(steps, dry_run)
    if conflicts:
        for s in conflicts:
            env.say(f"amq: conflict: {s.describe()}: {s.problem}")
        first = conflicts[0].problem
        assert first is not None
        first.text += (f" ({len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                       "nothing was created)")
        raise first
    if not dry_run:
        backend.import_definitions(steps)
        _report(steps, dry_run)
    if env.stderr_isatty or dry_run:
        env.say(summary(steps, dry_run))
