"""What a person sees on a terminal: messages and tables, through rich.

Only imported when output goes to a terminal, so pipelines never pay for rich.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .amqp.codec import shown, to_json_value
from .amqp.graph import Branch, EdgeKind, edge_words, node_details, node_name
from .amqp.model import Delivery


class MessagePrinter:
    """Prints each delivery: a header line, its properties and headers, then the body."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def print(self, d: Delivery, number: int) -> None:
        head = Text()
        head.append(f"#{number}", style="bold cyan")
        if d.queue:
            head.append("  queue ", style="dim").append(shown(d.queue), style="bold")
        head.append("  exchange ", style="dim")
        head.append(shown(d.exchange) or "(AMQP default)", style="magenta")
        head.append("  routing key ", style="dim").append(shown(d.routing_key), style="green")
        if d.redelivered:
            head.append("  redelivered", style="bold yellow")
        self.console.print(head)
        props = d.properties.as_dict()
        headers = props.pop("headers", None)
        if props:
            line = Text("  ")
            for key, value in props.items():
                text = shown(value) if isinstance(value, (str, bytes)) else str(value)
                line.append(f"{key}=", style="dim").append(f"{text}  ", style="blue")
            self.console.print(line)
        if headers:
            listed = json.dumps(to_json_value(headers), ensure_ascii=False)
            self.console.print(Text("  headers ", style="dim") + Text(listed, style="blue"))
        self.console.print(body_text(d.body))
        self.console.file.flush()


def body_text(body: bytes) -> Text:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        octets = body[:256].hex(" ")
        more = f" … ({len(body)} bytes)" if len(body) > 256 else f" ({len(body)} bytes)"
        return Text(f"  <binary> {octets}{more}", style="yellow")
    return Text("  " + text.replace("\n", "\n  ") if text else "  (empty body)",
                style="" if text else "dim")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=escape(title), title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in ("messages", "unacked", "consumers") else "left")
    for row in rows:
        t.add_row(*(escape(str(v)) for v in row))
    return t


EDGE_STYLE = {EdgeKind.BINDING: "green", EdgeKind.ALTERNATE: "blue",
              EdgeKind.DEAD_LETTER: "red"}


def _branch_text(b: Branch) -> Text:
    text = Text()
    if b.edge is not None:
        text.append(edge_words(b.edge), style=EDGE_STYLE[b.edge.kind])
        text.append(" → ", style="dim")
    kind = b.node.id.kind
    text.append(f"{kind} ", style="dim")
    text.append(node_name(b.node.id), style="bold magenta" if kind == "exchange" else "bold")
    text.append(f"  ({node_details(b.node)})", style="red" if b.node.missing else "dim")
    if b.loop:
        text.append("  ↻ loops back", style="bold yellow")
    elif b.again:
        text.append("  (shown above)", style="dim")
    return text


def topology_tree(title: str, branches: list[Branch]) -> Tree:
    """The routing as a tree: each root an entry point, each line the edge that leads to
    a node and the node."""
    top = Tree(Text(title, style="bold"), guide_style="dim")
    todo = [(top, b) for b in branches]
    while todo:
        parent, b = todo.pop(0)
        child = parent.add(_branch_text(b))
        todo[:0] = [(child, c) for c in b.children]
    return top


def dashboard(header: str, columns: list[str], rows: list[list[str]]) -> Table:
    """``amq top``'s view: the totals line as the title, a row per queue."""
    t = Table(title=escape(header), title_justify="left", title_style="bold",
              header_style="bold", expand=False)
    for c in columns:
        t.add_column(c, justify="left" if c in ("queue", "depth, last minute") else "right",
                     style="cyan" if c.startswith("depth") else None, no_wrap=True)
    for row in rows:
        t.add_row(*(escape(v) for v in row))
    return t
