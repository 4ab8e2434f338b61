"""amq list topology: exchange-to-exchange chains with their loops, alternate and
dead-letter exchanges (by argument, and on RabbitMQ by policy), as a tree on a terminal,
one edge a line in a pipe, DOT, Mermaid and JSON."""

import json
import urllib.parse

import pydot
import pytest
from conftest import management, needs_management
from test_cli_terminal import ANSI, run_in_pty


def chain(amq, name):
    """entry (topic, alternate exchange spare) -> hop (e2e) -> work (dead letters to dlx ->
    dead), and hop -> entry: a loop."""
    n = {k: name(k) for k in ("entry", "spare", "hop", "dlx", "work", "dead", "lost")}
    amq("declare", "exchange", n["spare"], "--type", "fanout")
    amq("declare", "exchange", n["entry"], "--type", "topic", "--ae", n["spare"])
    amq("declare", "exchange", n["hop"], "--type", "topic")
    amq("declare", "exchange", n["dlx"], "--type", "fanout")
    amq("declare", "queue", n["work"], "--dlx", n["dlx"], "--dlrk", "failed", "--ttl", "5000")
    amq("declare", "queue", n["dead"])
    amq("declare", "queue", n["lost"])
    amq("bind", n["entry"], n["hop"], "--to-exchange", "-k", "orders.#")
    amq("bind", n["hop"], n["work"], "-k", "orders.eu")
    amq("bind", n["hop"], n["entry"], "--to-exchange", "-k", "again")
    amq("bind", n["dlx"], n["dead"])
    amq("bind", n["spare"], n["lost"])
    amq("send", n["work"], "one")
    amq("send", n["work"], "two")
    return n


def test_a_pipe_gets_one_edge_a_line(amq, name):
    needs_management(amq.broker)
    n = chain(amq, name)
    lines = amq("list", "topology", "--exchange", n["entry"]).lines
    loop_a = f"{n['entry']} -> {n['hop']} (exchange)  orders.#"
    loop_b = f"{n['hop']} -> {n['entry']} (exchange)  again"
    assert sorted(line.removesuffix("  (loop)") for line in lines) == sorted([
        loop_a, loop_b,
        f"{n['entry']} -> {n['spare']} (alternate exchange)",
        f"{n['hop']} -> {n['work']}  orders.eu",
        f"{n['spare']} -> {n['lost']}",
        f"{n['dlx']} -> {n['dead']}",
        f"{n['work']} -> {n['dlx']} (dead letters)  failed",
    ])
    marked = [line for line in lines if line.endswith("  (loop)")]
    assert len(marked) == 1 and marked[0].removesuffix("  (loop)") in (loop_a, loop_b)

    into = amq("list", "topology", "--queue", n["dead"]).lines
    assert f"{n['dlx']} -> {n['dead']}" in into
    assert f"{n['work']} -> {n['dlx']} (dead letters)  failed" in into
    assert f"{n['hop']} -> {n['work']}  orders.eu" in into
    assert not [line for line in into if n["lost"] in line or n["spare"] in line]


def test_json_dot_and_mermaid(amq, name):
    needs_management(amq.broker)
    n = chain(amq, name)
    data = json.loads(amq("list", "topology", "-e", n["entry"], "--format", "json").out)
    nodes = {node["id"]: node for node in data["nodes"]}
    work = nodes[f"queue:{n['work']}"]
    assert work["messages"] == 2 and work["consumers"] == 0 and work["type"] == "classic"
    assert work["arguments"]["x-message-ttl"] == 5000
    assert nodes[f"exchange:{n['entry']}"]["type"] == "topic"
    kinds = {(e["kind"], e["source"], e["target"]) for e in data["edges"]}
    assert ("alternate-exchange", f"exchange:{n['entry']}", f"exchange:{n['spare']}") in kinds
    assert ("dead-letter-exchange", f"queue:{n['work']}", f"exchange:{n['dlx']}") in kinds
    assert ("binding", f"exchange:{n['hop']}", f"exchange:{n['entry']}") in kinds
    assert sum(e["loop"] for e in data["edges"]) == 1

    dot = amq("list", "topology", "-e", n["entry"], "--format", "dot").out
    graphs = pydot.graph_from_dot_data(dot)
    assert graphs and len(graphs) == 1 and graphs[0].get_type() == "digraph"
    edges = [(e.get_source().strip('"'), e.get_destination().strip('"'))
             for e in graphs[0].get_edges()]
    assert (f"exchange:{n['hop']}", f"queue:{n['work']}") in edges
    assert len(edges) == len(data["edges"]) == 7
    assert len(graphs[0].get_nodes()) - 2 == len(data["nodes"]) == 7  # + node, edge defaults

    mermaid = amq("list", "topology", "-e", n["entry"], "--format", "mermaid").lines
    assert mermaid[0] == "flowchart LR"
    assert sum(" -.->" in line for line in mermaid) == 2  # alternate and dead letters
    assert sum(" -->" in line for line in mermaid) == 5


def test_a_terminal_gets_a_tree(amq, name):
    needs_management(amq.broker)
    n = chain(amq, name)
    code, screen = run_in_pty(amq, "list", "topology", "--exchange", n["entry"])
    assert code == 0, screen
    text = ANSI.sub("", screen)
    assert text.splitlines()[0].startswith("topology of ")
    assert f"'orders.eu' → queue {n['work']}  (classic, 2 ready, 0 consumers, ttl 5000 ms)" \
        in text
    assert f"alternate exchange → exchange {n['spare']}  (fanout)" in text
    assert f"dead letters (key 'failed') → exchange {n['dlx']}" in text
    assert "↻ loops back" in text
    assert "└── " in text


def test_predeclared_exchanges_fold_away_unless_all(amq, name):
    needs_management(amq.broker)
    q = name("q")
    amq("declare", "queue", q)
    amq("bind", "amq.topic", q, "-k", "x.#")
    default = json.loads(amq("list", "topology", "--format", "json").out)
    ids = {node["id"] for node in default["nodes"]}
    assert "exchange:amq.topic" in ids and "exchange:amq.headers" not in ids
    assert "exchange:" not in ids
    every = json.loads(amq("list", "topology", "--all", "--format", "json").out)
    ids = {node["id"] for node in every["nodes"]}
    assert {"exchange:amq.headers", "exchange:amq.match", "exchange:"} <= ids
    assert {"kind": "binding", "source": "exchange:", "target": f"queue:{q}",
            "routing_key": q, "arguments": {}, "policy": False, "loop": False} \
        in every["edges"]


def test_missing_names_are_404(amq, name):
    needs_management(amq.broker)
    r = amq("list", "topology", "--exchange", name("x"), expect=3)
    assert f"in vhost '{amq.vhost}'" in r.stderr and "no exchange" in r.stderr
    r = amq("list", "topology", "--queue", name("q"), expect=3)
    assert "no queue" in r.stderr


@pytest.mark.rabbitmq_only
def test_policies_give_dead_letter_and_alternate_edges_on_rabbitmq(amq, name):
    needs_management(amq.broker)
    x, ae, q, dlx = name("pol"), name("pol"), name("pol"), name("pol")
    amq("declare", "exchange", x, "--type", "direct")
    amq("declare", "exchange", ae, "--type", "fanout")
    amq("declare", "exchange", dlx, "--type", "fanout")
    amq("declare", "queue", q)
    amq("bind", x, q, "-k", "k")
    vhost = urllib.parse.quote(amq.vhost, safe="")
    policy = f"policies/{vhost}/{urllib.parse.quote(x, safe='')}"
    management(policy, "PUT", {"pattern": f"^({x}|{q})$", "apply-to": "all", "definition": {
        "alternate-exchange": ae, "dead-letter-exchange": dlx, "message-ttl": 7000}})
    try:
        lines = amq("list", "topology", "--exchange", x).lines
        assert f"{x} -> {ae} (alternate exchange)  [policy]" in lines
        assert f"{q} -> {dlx} (dead letters)  [policy]" in lines
        data = json.loads(amq("list", "topology", "-e", x, "--format", "json").out)
        node = next(n for n in data["nodes"] if n["id"] == f"queue:{q}")
        assert node["arguments"] == {"x-dead-letter-exchange": dlx, "x-message-ttl": 7000}
    finally:
        management(policy, "DELETE")
