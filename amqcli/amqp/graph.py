"""The broker's routing as a graph: exchanges and queues as nodes; bindings, alternate
exchanges and dead-letter exchanges as edges. Pure: built from listings, cut down to one
exchange's subtree or the paths into one queue, walked as a tree with loops marked.

What ``amq list topology`` draws (``cli/drawing.py``). Policies count like arguments
(``policies``: what the broker's effective policies give each queue and exchange, with
argument names); an argument wins over a policy, except for the limits where RabbitMQ
applies the lower of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from .model import Binding, DestinationType, Exchange, Queue


class EdgeKind(StrEnum):
    BINDING = "binding"
    ALTERNATE = "alternate-exchange"
    DEAD_LETTER = "dead-letter-exchange"


class NodeId(NamedTuple):
    kind: str  # "exchange" or "queue"
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class Node(NamedTuple):
    id: NodeId
    type: str  # the exchange's type, or the queue's (classic, quorum, stream)
    arguments: dict[str, Any]  # effective: arguments over policies
    messages: int = 0  # queues: ready
    unacked: int = 0
    consumers: int = 0
    internal: bool = False
    missing: bool = False  # named by an argument or a policy, but not there


class Edge(NamedTuple):
    kind: EdgeKind
    source: NodeId
    target: NodeId
    routing_key: str = ""  # a binding's key; a dead-letter edge's x-dead-letter-routing-key
    arguments: dict[str, Any] = {}  # a binding's (headers exchanges match on them)
    policy: bool = False  # the edge comes from a policy, not an argument

    @property
    def label(self) -> str:
        """The binding key, or a headers binding's match (``x-match=any kind=order``)."""
        if self.kind is not EdgeKind.BINDING:
            return self.routing_key
        if self.arguments:
            match = self.arguments.get("x-match", "all")
            rest = [f"{k}={_text(v)}" for k, v in sorted(self.arguments.items())
                    if k != "x-match"]
            return " ".join([f"x-match={match}", *rest])
        return self.routing_key


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Graph(NamedTuple):
    nodes: dict[NodeId, Node]
    edges: list[Edge]

    def out_of(self, node: NodeId) -> list[Edge]:
        return [e for e in self.edges if e.source == node]

    def into(self, node: NodeId) -> list[Edge]:
        return [e for e in self.edges if e.target == node]


# Limits of which RabbitMQ applies the lower when both an argument and a policy set one.
LOWER_WINS = ("x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes")


def effective(arguments: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """A queue's or exchange's arguments with what its policy adds."""
    out = {**policy, **arguments}
    for key in LOWER_WINS:
        if key in arguments and key in policy:
            out[key] = min(arguments[key], policy[key])
    return out


def exchange_id(name: str) -> NodeId:
    return NodeId("exchange", name)


def queue_id(name: str) -> NodeId:
    return NodeId("queue", name)


def build(exchanges: Sequence[Exchange], queues: Sequence[Queue],
          bindings: Sequence[Binding],
          policies: dict[tuple[str, str], dict[str, Any]] | None = None,
          default_bindings: bool = False) -> Graph:
    """The graph of a vhost; the bindings of the default exchange (one to every queue)
    only with ``default_bindings``."""
    policies = policies or {}
    nodes: dict[NodeId, Node] = {}
    edges: list[Edge] = []
    for x in exchanges:
        nid = exchange_id(x.name)
        args = effective(x.arguments, policies.get(nid, {}))
        nodes[nid] = Node(nid, x.type.value, args, internal=x.internal)
        ae = args.get("alternate-exchange")
        if isinstance(ae, str):
            edges.append(Edge(EdgeKind.ALTERNATE, nid, exchange_id(ae),
                              policy="alternate-exchange" not in x.arguments))
    for q in queues:
        nid = queue_id(q.name)
        args = effective(q.arguments, policies.get(nid, {}))
        nodes[nid] = Node(nid, str(args.get("x-queue-type", "classic")), args, q.messages,
                          q.unacked, q.consumers)
        dlx = args.get("x-dead-letter-exchange")
        if isinstance(dlx, str):
            key = args.get("x-dead-letter-routing-key")
            edges.append(Edge(EdgeKind.DEAD_LETTER, nid, exchange_id(dlx),
                              key if isinstance(key, str) else "",
                              policy="x-dead-letter-exchange" not in q.arguments))
    for b in bindings:
        if b.source == "" and not default_bindings:
            continue
        target = queue_id(b.destination) if b.destination_type is DestinationType.QUEUE \
            else exchange_id(b.destination)
        edges.append(Edge(EdgeKind.BINDING, exchange_id(b.source), target, b.routing_key,
                          b.arguments))
    for e in edges:  # an alternate or dead-letter exchange that does not exist
        for end in (e.source, e.target):
            if end not in nodes:
                nodes[end] = Node(end, "", {}, missing=True)
    return Graph(nodes, edges)


def predeclared(node: NodeId) -> bool:
    return node.kind == "exchange" and (node.name == "" or node.name.startswith("amq."))


def fold(graph: Graph) -> Graph:
    """Without the predeclared exchanges (``amq.*``) that nothing leads from or to."""
    used = {e.source for e in graph.edges} | {e.target for e in graph.edges}
    return Graph({n: v for n, v in graph.nodes.items() if not predeclared(n) or n in used},
                 graph.edges)


def _reach(graph: Graph, start: NodeId, forward: bool) -> set[NodeId]:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for e in graph.out_of(node) if forward else graph.into(node):
            nxt = e.target if forward else e.source
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _keep(graph: Graph, nodes: set[NodeId]) -> Graph:
    return Graph({n: v for n, v in graph.nodes.items() if n in nodes},
                 [e for e in graph.edges if e.source in nodes and e.target in nodes])


def downstream(graph: Graph, exchange: str) -> Graph:
    """The subtree of one exchange: what its messages can reach (dead letters too)."""
    return _keep(graph, _reach(graph, exchange_id(exchange), forward=True))


def upstream(graph: Graph, queue: str) -> Graph:
    """The paths that lead into one queue."""
    return _keep(graph, _reach(graph, queue_id(queue), forward=False))


class Branch(NamedTuple):
    """One line of the tree: the edge that leads to a node (None for a root), the node,
    and whether the line closes a loop or repeats a node expanded earlier (its children
    are then not shown again)."""

    edge: Edge | None
    node: Node
    children: list[Branch]
    loop: bool = False
    again: bool = False


def roots(graph: Graph) -> list[NodeId]:
    """Where the tree starts: the exchanges nothing leads to (entry points), then the
    queues nothing leads to."""
    targets = {e.target for e in graph.edges}
    return [n for kind in ("exchange", "queue") for n in sorted(graph.nodes)
            if n.kind == kind and n not in targets]


def tree(graph: Graph) -> list[Branch]:
    """The graph as trees from its roots; each node's children are expanded once."""
    expanded: set[NodeId] = set()
    out: list[Branch] = []

    def grow(edge: Edge | None, node: NodeId, path: tuple[NodeId, ...]) -> Branch:
        info = graph.nodes[node]
        if node in path:
            return Branch(edge, info, [], loop=True)
        if node in expanded and graph.out_of(node):
            return Branch(edge, info, [], again=True)
        expanded.add(node)
        edges = sorted(graph.out_of(node), key=_edge_order)
        return Branch(edge, info, [grow(e, e.target, (*path, node)) for e in edges])
    for root in roots(graph):
        if root not in expanded:
            out.append(grow(None, root, ()))
    while True:  # loops nothing enters from outside: from the node that reaches most
        rest = [n for n in sorted(graph.nodes) if n not in expanded and n.kind == "exchange"]
        if not rest:
            return out
        start = max(rest, key=lambda n: len(_reach(graph, n, forward=True) - expanded))
        out.append(grow(None, start, ()))


def _edge_order(e: Edge) -> tuple[int, str, str, str]:
    return (list(EdgeKind).index(e.kind), e.target.kind, e.target.name, e.routing_key)


def loop_edges(branches: Iterable[Branch]) -> list[Edge]:
    """The edges that close a loop, as the tree found them."""
    found: list[Edge] = []
    stack = list(branches)
    while stack:
        b = stack.pop()
        if b.loop and b.edge is not None:
            found.append(b.edge)
        stack.extend(b.children)
    return found


# --- words for a person ----------------------------------------------------------------------

def node_name(node: NodeId) -> str:
    return node.name if node.name or node.kind == "queue" else "(AMQP default)"


def node_details(node: Node) -> str:
    """``topic, internal``; ``quorum, 3 ready, 1 unacked, 2 consumers, ttl 60000 ms``."""
    if node.missing:
        return "missing"
    parts = [node.type]
    if node.id.kind == "exchange":
        if node.internal:
            parts.append("internal")
        return ", ".join(parts)
    parts.append(f"{node.messages} ready")
    if node.unacked:
        parts.append(f"{node.unacked} unacked")
    parts.append(f"{node.consumers} consumer{'s' if node.consumers != 1 else ''}")
    for key, word in (("x-message-ttl", "ttl"), ("x-expires", "expires")):
        if key in node.arguments:
            parts.append(f"{word} {node.arguments[key]} ms")
    if "x-max-length" in node.arguments:
        parts.append(f"max {node.arguments['x-max-length']}")
    return ", ".join(parts)


EDGE_WORDS = {EdgeKind.BINDING: "", EdgeKind.ALTERNATE: "alternate exchange",
              EdgeKind.DEAD_LETTER: "dead letters"}


def edge_words(edge: Edge) -> str:
    """What leads along an edge: ``'eu.#'``, ``alternate exchange``, ``dead letters (key
    'parked')``; ``[policy]`` when a policy set it."""
    if edge.kind is EdgeKind.BINDING:
        text = f"'{edge.label}'" if not edge.arguments else edge.label
    else:
        text = EDGE_WORDS[edge.kind]
        if edge.routing_key:
            text += f" (key '{edge.routing_key}')"
    return text + (" [policy]" if edge.policy else "")


def plain_lines(graph: Graph, loops: Sequence[Edge]) -> list[str]:
    """One edge a line: ``SOURCE -> TARGET  KEY``; a target that is an exchange, an
    alternate or dead-letter edge, a policy's, a loop say so in words after it."""
    lines = []
    for e in sorted(graph.edges, key=lambda e: (e.source, _edge_order(e))):
        target = node_name(e.target)
        if e.kind is EdgeKind.BINDING:
            if e.target.kind == "exchange":
                target += " (exchange)"
            words = e.label
        else:
            target += f" ({EDGE_WORDS[e.kind]})"
            words = e.routing_key
        line = f"{node_name(e.source)} -> {target}"
        line += f"  {words}" if words else ""
        if e.policy:
            line += "  [policy]"
        if e in loops:
            line += "  (loop)"
        lines.append(line)
    return lines
