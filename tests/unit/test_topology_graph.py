"""amqp/graph.py without a broker: effective policies, the tree's roots and loops, the cuts
of --exchange and --queue, and the plain lines of a pipe."""

from amqcli.amqp import graph
from amqcli.amqp.model import Binding, DestinationType, Exchange, ExchangeType, Queue

E2E = DestinationType.EXCHANGE


def sample() -> graph.Graph:
    exchanges = [Exchange("a", ExchangeType.TOPIC, arguments={"alternate-exchange": "ae"}),
                 Exchange("b", ExchangeType.FANOUT), Exchange("ae", ExchangeType.FANOUT),
                 Exchange("amq.direct", ExchangeType.DIRECT)]
    queues = [Queue("q", arguments={"x-message-ttl": 9000}, messages=3), Queue("lost")]
    bindings = [Binding("", "q", routing_key="q"), Binding("a", "b", E2E, "k"),
                Binding("b", "a", E2E, ""), Binding("b", "q"), Binding("ae", "lost")]
    policies = {("queue", "q"): {"x-dead-letter-exchange": "gone", "x-message-ttl": 5000}}
    return graph.build(exchanges, queues, bindings, policies)


def test_policies_count_and_the_lower_limit_wins():
    g = sample()
    q = g.nodes[graph.queue_id("q")]
    assert q.arguments == {"x-dead-letter-exchange": "gone", "x-message-ttl": 5000}
    dead = [e for e in g.edges if e.kind is graph.EdgeKind.DEAD_LETTER]
    assert dead[0].policy and dead[0].target == graph.exchange_id("gone")
    assert g.nodes[graph.exchange_id("gone")].missing
    assert graph.effective({"x-max-length": 10}, {"x-max-length": 20}) == {"x-max-length": 10}


def test_a_loop_is_marked_once_and_nodes_expand_once():
    g = graph.fold(sample())
    assert graph.exchange_id("amq.direct") not in g.nodes
    branches = graph.tree(g)
    loops = graph.loop_edges(branches)
    assert len(loops) == 1 and loops[0].kind is graph.EdgeKind.BINDING
    lines = graph.plain_lines(g, loops)
    assert sum(line.endswith("(loop)") for line in lines) == 1
    assert "q -> gone (dead letters)  [policy]" in lines
    assert "a -> ae (alternate exchange)" in lines


def test_cuts():
    g = sample()
    assert set(graph.upstream(g, "lost").nodes) == {
        graph.queue_id("lost"), graph.exchange_id("ae"), graph.exchange_id("a"),
        graph.exchange_id("b")}
    assert graph.exchange_id("amq.direct") not in graph.downstream(g, "b").nodes
    assert graph.queue_id("lost") in graph.downstream(g, "b").nodes  # b -> a -> ae -> lost
