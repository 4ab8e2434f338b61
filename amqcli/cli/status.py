"""``amq status``: which broker a command reaches. On RabbitMQ the host connected to (the
first of a multi-host URL that answered), the node and the cluster's nodes as that host's
management API reports them, the version and the cluster name; on the local broker the
store file, its size and the processes that have it open."""

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from .app import app, env_of


class StatusFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


FormatOption = Annotated[StatusFormat, typer.Option(
    "--format", "-F", case_sensitive=False, help="text (one field a line) or json.")]

LABELS = {"connected_to": "connected to", "cluster_name": "cluster name",
          "erlang_version": "erlang version"}


@app.command("status", help="Which broker amq reaches: on RabbitMQ the host and node "
                            "connected to, its version and cluster; locally the store file, "
                            "its size and the processes using it.")
def status(ctx: typer.Context, format: FormatOption = StatusFormat.TEXT) -> None:
    env = env_of(ctx)
    report = env.backend().status()
    if format is StatusFormat.JSON:
        print(json.dumps(report, indent=2 if env.stdout_isatty else None), flush=True)
        return
    lines = text_lines(report)
    print("\n".join(lines), flush=True)


def text_lines(report: dict[str, Any]) -> list[str]:
    """The report as ``label  value`` lines (pure: tests/unit/test_status.py)."""
    rows: list[tuple[str, str]] = []
    for key, value in report.items():
        label = LABELS.get(key, key)
        if key == "processes":
            shown = [_process(p) for p in value] or ["none"]
            rows += [(label, shown[0])] + [("", line) for line in shown[1:]]
        elif key == "nodes":
            rows.append((label, ", ".join(
                f"{n['name']} ({'running' if n['running'] else 'stopped'})" for n in value)))
        elif key == "size":
            rows.append((label, f"{value} bytes ({value / 1048576:.1f} MiB)"))
        else:
            rows.append((label, "unknown" if value is None else str(value)))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {text}".rstrip() for label, text in rows]


def _process(p: dict[str, Any]) -> str:
    consumers = p["consumers"]
    held = f" ({consumers} consumer{'s' if consumers != 1 else ''})" if consumers else ""
    return f"{p['pid']} {p['command'] or '?'}{held}"
