"""The topology graph (``amqp/graph.py``) written as Graphviz DOT, a Mermaid flowchart, or
JSON data. The terminal's tree is ``render.topology_tree``; pipes get
``graph.plain_lines``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..amqp.codec import to_json_value
from ..amqp.graph import Edge, EdgeKind, Graph, Node, node_details, node_name

# How each kind of edge is drawn: DOT attributes, and Mermaid's arrow.
DOT_STYLE = {EdgeKind.BINDING: "", EdgeKind.ALTERNATE: 'style=dashed, color="#1f77b4"',
             EdgeKind.DEAD_LETTER: 'style=dotted, color="#d62728"'}
MERMAID_ARROW = {EdgeKind.BINDING: "-->", EdgeKind.ALTERNATE: "-.->",
                 EdgeKind.DEAD_LETTER: "-.->"}
EDGE_NAMES = {EdgeKind.ALTERNATE: "alternate", EdgeKind.DEAD_LETTER: "dead letters"}


def _quoted(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, newlines as DOT's ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _edge_label(e: Edge, loops: Sequence[Edge]) -> str:
    label = e.label if e.kind is EdgeKind.BINDING else " ".join(
        filter(None, [EDGE_NAMES[e.kind], e.routing_key]))
    if e.policy:
        label += " [policy]"
    if e in loops:
        label += " (loop)"
    return label.strip()


def _node_label(n: Node) -> str:
    return f"{node_name(n.id)}\n{node_details(n)}"


def dot(graph: Graph, loops: Sequence[Edge]) -> str:
    lines = ["digraph topology {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for nid, n in sorted(graph.nodes.items()):
        shape = "box" if nid.kind == "exchange" else "ellipse"
        extra = ", style=dashed" if n.missing else ""
        lines.append(f"  {_quoted(str(nid))} [label={_quoted(_node_label(n))}, "
                     f"shape={shape}{extra}];")
    for e in graph.edges:
        attrs = [f"label={_quoted(_edge_label(e, loops))}"]
        if DOT_STYLE[e.kind]:
            attrs.append(DOT_STYLE[e.kind])
        lines.append(f"  {_quoted(str(e.source))} -> {_quoted(str(e.target))} "
                     f"[{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    """Text inside a Mermaid label's quotes: quotes and markup characters as entities."""
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return text.replace("\n", "<br/>")


def mermaid(graph: Graph, loops: Sequence[Edge]) -> str:
    ids = {nid: f"n{i}" for i, nid in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    for nid, n in sorted(graph.nodes.items()):
        label = f'"{_mermaid_text(_node_label(n))}"'
        lines.append(f"  {ids[nid]}[{label}]" if nid.kind == "exchange"
                     else f"  {ids[nid]}([{label}])")
    for e in graph.edges:
        label = _edge_label(e, loops)
        arrow = MERMAID_ARROW[e.kind]
        shown = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"  {ids[e.source]} {arrow}{shown} {ids[e.target]}")
    return "\n".join(lines)


def _node_json(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(n.id), "kind": n.id.kind, "name": n.id.name,
                           "type": n.type or None, "arguments": to_json_value(n.arguments),
                           "missing": n.missing}
    if n.id.kind == "queue":
        out.update(messages=n.messages, unacked=n.unacked, consumers=n.consumers)
    else:
        out["internal"] = n.internal
    return out


def as_json(graph: Graph, loops: Sequence[Edge]) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}`` (README: amq list topology)."""
    return {
        "nodes": [_node_json(n) for _, n in sorted(graph.nodes.items())],
        "edges": [{"kind": e.kind.value, "source": str(e.source), "target": str(e.target),
                   "routing_key": e.routing_key, "arguments": to_json_value(e.arguments),
                   "policy": e.policy, "loop": e in loops} for e in graph.edges],
    }

