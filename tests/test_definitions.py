"""amq definitions export/import: RabbitMQ's definitions JSON, on both brokers, and between
them (local -> RabbitMQ -> a fresh local store), and files RabbitMQ itself wrote."""

import json
import urllib.parse
import uuid
from pathlib import Path

import pytest
from conftest import RABBITMQ_URL, Amq, management, needs_management, require_management

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "rabbitmqctl-definitions.json"  # rabbitmqctl export_definitions, RabbitMQ 3.10.8


def exported(amq, path=None):
    """The export of amq's vhost, decoded."""
    if path is None:
        return json.loads(amq("definitions", "export").out)
    amq("definitions", "export", str(path))
    return json.loads(Path(path).read_text())


def mine(document, names):
    """The queues, exchanges and bindings of a document that concern ``names`` only (the
    RabbitMQ test vhost is shared by every test of a run)."""
    return {
        "queues": [q for q in document["queues"] if q["name"] in names],
        "exchanges": [x for x in document["exchanges"] if x["name"] in names],
        "bindings": [b for b in document["bindings"]
                     if b["destination"] in names or b["source"] in names],
    }


def build_topology(amq, name):
    """Exchanges, queues and bindings of every kind an export carries; their names."""
    orders, unrouted, dlx, audit = name("x"), name("x"), name("x"), name("x")
    eu, parked, lost, log = name("q"), name("q"), name("q"), name("q")
    amq("declare", "exchange", unrouted, "--type", "fanout", "--durable")
    amq("declare", "exchange", orders, "--type", "topic", "--durable",
        "--alternate-exchange", unrouted)
    amq("declare", "exchange", dlx, "--type", "fanout")
    amq("declare", "exchange", audit, "--type", "headers", "--internal", "--auto-delete")
    amq("declare", "queue", eu, "--durable", "--ttl", "60000", "--dlx", dlx,
        "--max-length", "1000", "--arg", 'x-note:={"a": [1, "b"]}')
    amq("declare", "queue", parked, "--auto-delete")
    amq("declare", "queue", lost)
    amq("declare", "queue", log, "--type", "quorum", "--durable")
    amq("bind", orders, eu, "-k", "eu.#", "-k", "eu.*.urgent")
    amq("bind", dlx, parked)
    amq("bind", unrouted, lost)
    amq("bind", orders, audit, "--to-exchange", "-k", "#")
    amq("bind", audit, log, "--header", "kind=order", "--header", "n:=5", "--match", "any")
    amq("bind", "amq.topic", eu, "-k", "orders.eu")
    return {orders, unrouted, dlx, audit, eu, parked, lost, log}


def test_export_carries_what_was_declared_and_import_is_idempotent(amq, name, tmp_path):
    needs_management(amq.broker)
    names = build_topology(amq, name)
    server_named = amq("declare", "queue", "").out.strip()
    amq.created.add(server_named)
    document = exported(amq, tmp_path / "defs.json")
    assert not [q for q in document["queues"] if q["name"].startswith("amq.")]
    assert not [x for x in document["exchanges"] if x["name"] in ("", "amq.topic")]
    assert not [b for b in document["bindings"] if b["source"] == ""]
    got = mine(document, names)
    queues = {q["name"]: q for q in got["queues"]}
    exchanges = {x["name"]: x for x in got["exchanges"]}
    assert len(queues) == 4 and len(exchanges) == 4 and len(got["bindings"]) == 7
    eu = next(b["destination"] for b in got["bindings"] if b["routing_key"] == "eu.#")
    assert queues[eu]["durable"] is True
    assert queues[eu]["arguments"]["x-message-ttl"] == 60000
    assert queues[eu]["arguments"]["x-note"] == {"a": [1, "b"]}
    assert {"source": "amq.topic", "destination": eu, "destination_type": "queue",
            "routing_key": "orders.eu", "arguments": {}} in got["bindings"]
    audit = next(x for x in exchanges.values() if x["type"] == "headers")
    assert audit["internal"] is True and audit["auto_delete"] is True
    headers = next(b for b in got["bindings"] if b["source"] == audit["name"])
    assert headers["arguments"] == {"kind": "order", "n": 5, "x-match": "any"}
    assert "vhost" not in json.dumps(got)  # the per-vhost form

    again = amq("definitions", "import", str(tmp_path / "defs.json"))
    assert not [line for line in again.lines if not line.startswith("exists ")], again.out
    assert mine(exported(amq), names) == got  # importing twice changes nothing


def test_conflict_creates_nothing_and_dry_run_says_what_would_happen(amq, name, tmp_path):
    needs_management(amq.broker)
    new_q, new_x, clash = name("q"), name("x"), name("q")
    amq("declare", "queue", clash, "--durable")
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({
        "queues": [{"name": new_q, "durable": True, "auto_delete": False, "arguments": {}},
                   {"name": clash, "durable": False, "auto_delete": False, "arguments": {}}],
        "exchanges": [{"name": new_x, "type": "fanout", "durable": False,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": new_x, "destination": new_q, "destination_type": "queue",
                      "routing_key": "", "arguments": {}}]}))
    r = amq("definitions", "import", str(file), expect=4)
    assert (f"406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{clash}' in "
            f"vhost '{amq.vhost}': received 'false' but current is 'true'") in r.stderr
    assert "nothing was created" in r.stderr
    assert new_q not in amq.queue_names()
    assert new_x not in [x["name"] for x in
                         amq("list", "exchanges", "--format", "json").json_lines()[0]]
    dry = amq("definitions", "import", str(file), "--dry-run", expect=4)
    assert f"would create queue '{new_q}'" in dry.lines
    assert f"would create exchange '{new_x}' (fanout)" in dry.lines
    assert f"conflict: queue '{clash}'" in dry.stderr
    assert new_q not in amq.queue_names()

    fixed = json.loads(file.read_text())
    fixed["queues"][1]["durable"] = True
    file.write_text(json.dumps(fixed))
    amq.created.update({new_q, new_x})
    dry = amq("definitions", "import", str(file), "--dry-run")
    assert "would create 1 exchange, 1 queue, 1 binding (1 existed already)" in dry.stderr
    assert new_q not in amq.queue_names()
    done = amq("definitions", "import", str(file))
    assert f"created queue '{new_q}'" in done.lines and f"exists queue '{clash}'" in done.lines
    amq("send", "-e", new_x, "", "through the imported binding")
    assert amq("receive", new_q, "--count", "1").out == "through the imported binding\n"


def test_a_binding_whose_end_is_nowhere_is_404(amq, name, tmp_path):
    needs_management(amq.broker)
    q, missing = name("q"), name("x")
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({
        "queues": [{"name": q, "durable": False, "auto_delete": False, "arguments": {}}],
        "bindings": [{"source": missing, "destination": q, "destination_type": "queue",
                      "routing_key": "k", "arguments": {}}]}))
    r = amq("definitions", "import", str(file), expect=3)
    assert f"no exchange '{missing}' in vhost '{amq.vhost}'" in r.stderr
    assert q not in amq.queue_names()


@pytest.mark.parametrize("content, words", [
    ("not json", "is not JSON"),
    ("[1, 2]", "not a definitions file"),
    ('{"queues": {"a": 1}}', "'queues' must be a list of objects"),
    ('{"queues": [{"durable": true}]}', "queues[0]: 'name' must be a string"),
    ('{"queues": [{"name": "q", "vhost": "a"}, {"name": "r", "vhost": "b"}]}',
     "several vhosts ('a', 'b'): pick one with --vhost NAME"),
])
def test_bad_files_are_usage_errors(amq, tmp_path, content, words):
    file = tmp_path / "defs.json"
    file.write_text(content)
    r = amq("definitions", "import", str(file), expect=2)
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = amq("definitions", "import", str(tmp_path / "nothing.json"), expect=2)
    assert "cannot read" in r.stderr


@pytest.mark.local_only
def test_rabbitmqctl_export_imports_into_the_local_broker(amq):
    r = amq("definitions", "import", str(SAMPLE), expect=2)
    assert "'amq-defs-other', 'amq-defs-sample'" in r.stderr
    r = amq("definitions", "import", str(SAMPLE), "--vhost", "amq-defs-sample")
    assert "amq: skipped 1 users (import loads queues, exchanges and bindings)" in r.stderr
    assert "amq: skipped 1 policies" in r.stderr
    assert len([line for line in r.lines if line.startswith("created ")]) == 4 + 5 + 6
    queues = {q["name"]: q for q in amq("list", "queues", "--format", "json").json_lines()[0]}
    assert "elsewhere" not in queues  # the other vhost's
    assert queues["jobs"]["arguments"] == {"x-queue-type": "quorum", "x-delivery-limit": 5}
    assert queues["orders.eu"]["arguments"]["x-dead-letter-exchange"] == "dlx"
    route = amq("route", "orders", "eu.order.created", "-H", "kind=order").out
    assert "'audit.log'" in route and "'orders.eu'" in route
    exchanges = {x["name"]: x for x in amq("list", "exchanges", "--format", "json").json_lines()[0]}
    assert exchanges["orders"]["arguments"] == {"alternate-exchange": "unrouted"}
    r = amq("definitions", "import", str(SAMPLE), "--vhost", "amq-defs-sample")
    assert not [line for line in r.lines if not line.startswith("exists ")]


@pytest.mark.rabbitmq
def test_round_trip_local_to_rabbitmq_to_a_fresh_local_store(tmp_path, request):
    """Designed locally, deployed to RabbitMQ in one command, pulled back into a new store:
    the same queues, exchanges, bindings and arguments; and RabbitMQ's own whole-broker
    export (the format of rabbitmqctl export_definitions) imports with --vhost."""
    from conftest import rabbitmq_problem
    if rabbitmq_problem():
        pytest.skip(rabbitmq_problem() or "")
    require_management()
    from amqcli.broker.store import Store
    Store(f"{tmp_path}/first.db").close()
    Store(f"{tmp_path}/second.db").close()
    Store(f"{tmp_path}/third.db").close()
    first = Amq("local", f"local:{tmp_path}/first.db")
    counter = iter(range(100))
    names = build_topology(first, lambda prefix: f"{prefix}{next(counter)}")
    original = exported(first, tmp_path / "first.json")

    vhost = f"amq-test-defs-{uuid.uuid4().hex[:8]}"
    quoted = urllib.parse.quote(vhost, safe="")
    management(f"vhosts/{quoted}", "PUT", {})
    try:
        management(f"permissions/{quoted}/guest", "PUT",
                   {"configure": ".*", "write": ".*", "read": ".*"})
        parts = urllib.parse.urlsplit(RABBITMQ_URL)
        rabbit = Amq("rabbitmq", urllib.parse.urlunsplit(parts._replace(path="/" + quoted)))
        r = rabbit("definitions", "import", str(tmp_path / "first.json"))
        assert len([line for line in r.lines if line.startswith("created ")]) == 4 + 4 + 7
        from_rabbit = exported(rabbit, tmp_path / "rabbit.json")
        assert mine(from_rabbit, names) == mine(original, names)
        whole = management("definitions")  # every vhost, with vhost fields: rabbitmqctl's form
        (tmp_path / "whole.json").write_text(json.dumps(whole))
        rabbit("definitions", "import", str(tmp_path / "rabbit.json"))  # again: nothing new
        assert exported(rabbit) == from_rabbit
    finally:
        management(f"vhosts/{quoted}", "DELETE")

    second = Amq("local", f"local:{tmp_path}/second.db")
    second("definitions", "import", str(tmp_path / "rabbit.json"))
    assert exported(second) == original
    third = Amq("local", f"local:{tmp_path}/third.db")
    third("definitions", "import", str(tmp_path / "whole.json"), "--vhost", vhost)
    assert exported(third) == original


def test_an_argument_the_broker_would_refuse_stops_the_import_before_anything(amq, name,
                                                                               tmp_path):
    needs_management(amq.broker)
    good, bad = name("q"), name("q")
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({"queues": [
        {"name": good, "durable": True, "auto_delete": False, "arguments": {}},
        {"name": bad, "durable": True, "auto_delete": False,
         "arguments": {"x-max-priority": 300}}]}))
    r = amq("definitions", "import", str(file), expect=4)
    assert f"invalid arg 'x-max-priority' for queue '{bad}' in vhost '{amq.vhost}'" in r.stderr
    assert good not in amq.queue_names()
