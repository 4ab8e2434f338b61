"""amqp/definitions.py without a broker: reading both forms of the format, what is left out,
and the plan of an import (create, exists, conflict with the broker's text)."""

import pytest

from amqcli import errors
from amqcli.amqp.definitions import Action, export, parse, plan
from amqcli.amqp.model import Binding, DestinationType, Exchange, ExchangeType, Queue


def test_whole_broker_form_needs_a_vhost_and_reads_only_its_entries():
    doc = {"queues": [{"name": "a", "vhost": "one", "durable": True},
                      {"name": "b", "vhost": "two"}],
           "policies": [{"name": "p", "vhost": "one"}, {"name": "p", "vhost": "two"}],
           "users": [{"name": "guest"}]}
    with pytest.raises(errors.UsageError, match="several vhosts"):
        parse(doc, None, "f.json")
    with pytest.raises(errors.UsageError, match="no definitions of vhost 'three'"):
        parse(doc, "three", "f.json")
    got = parse(doc, "one", "f.json")
    assert got.queues == [Queue("a", durable=True)]
    assert got.skipped == {"users": 1, "policies": 1}


def test_left_out_server_named_exclusive_predeclared_and_plugin_types():
    doc = {"queues": [{"name": "amq.gen-x"}, {"name": "mine", "exclusive": True},
                      {"name": "q"}],
           "exchanges": [{"name": "amq.topic", "type": "topic"},
                         {"name": "later", "type": "x-delayed-message"}],
           "bindings": [{"source": "amq.topic", "destination": "q", "routing_key": "k"},
                        {"source": "amq.topic", "destination": "mine"},
                        {"source": "", "destination": "q", "routing_key": "q"}]}
    got = parse(doc, None, "f.json")
    assert [q.name for q in got.queues] == ["q"]
    assert got.exchanges == []
    assert got.bindings == [Binding("amq.topic", "q", DestinationType.QUEUE, "k")]
    assert len(got.left_out) == 6
    assert any("x-delayed-message" in line for line in got.left_out)


def test_plan_creates_skips_equivalents_and_names_conflicts_in_the_target_vhost():
    wanted = parse({
        "exchanges": [{"name": "x", "type": "topic"}, {"name": "y", "type": "fanout"}],
        "queues": [{"name": "q", "arguments": {"x-message-ttl": 5}}, {"name": "r"}],
        "bindings": [{"source": "x", "destination": "q", "routing_key": "a.#"},
                     {"source": "x", "destination": "gone", "routing_key": ""}]},
        None, "f.json")
    steps = plan(wanted, [Exchange("x", ExchangeType.TOPIC)],
                 [Queue("q", arguments={"x-message-ttl": 6})],
                 [Binding("x", "q", DestinationType.QUEUE, "a.#")], "v")
    assert [(s.action, s.describe()) for s in steps] == [
        (Action.EXISTS, "exchange 'x' (topic)"),
        (Action.CREATE, "exchange 'y' (fanout)"),
        (Action.CONFLICT, "queue 'q'"),
        (Action.CREATE, "queue 'r'"),
        (Action.EXISTS, "binding 'x' -> queue 'q' key 'a.#'"),
        (Action.CONFLICT, "binding 'x' -> queue 'gone' key ''"),
    ]
    assert str(steps[2].problem) == (
        "406 PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost "
        "'v': received '5' but current is '6'")
    assert isinstance(steps[5].problem, errors.NotFound)


def test_export_then_parse_is_the_same_topology():
    queues = [Queue("q", True, False, False, {"x-max-length": 3}), Queue("amq.gen-1"),
              Queue("excl", exclusive=True)]
    exchanges = [Exchange("", ExchangeType.DIRECT), Exchange("e", ExchangeType.HEADERS,
                                                             internal=True)]
    bindings = [Binding("", "q", DestinationType.QUEUE, "q"),
                Binding("e", "q", DestinationType.QUEUE, "", {"x-match": "any", "k": 1}),
                Binding("e", "excl", DestinationType.QUEUE, "")]
    got = parse(export(exchanges, queues, bindings, "1"), None, "f.json")
    assert got.queues == [queues[0]]
    assert got.exchanges == [exchanges[1]]
    assert got.bindings == [bindings[1]]
    assert got.left_out == [] and got.skipped == {}


def test_arguments_the_broker_would_refuse_are_conflicts_before_anything_is_made():
    wanted = parse({"queues": [{"name": "q", "arguments": {"x-max-priority": 300}},
                               {"name": "r", "arguments": {"x-queue-type": "quorum"}}]},
                   None, "f.json")
    steps = plan(wanted, [], [], [], "/")
    assert [s.action for s in steps] == [Action.CONFLICT, Action.CONFLICT]
    assert "invalid arg 'x-max-priority' for queue 'q'" in str(steps[0].problem)
    assert "invalid property 'non-durable' for queue 'r'" in str(steps[1].problem)
