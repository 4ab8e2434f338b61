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

from .amqp.codec import shown, to_json_value
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
