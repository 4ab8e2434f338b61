"""Exchanges: default, fanout, direct, topic, headers, and subscribing with -e."""

import json

import pytest
from conftest import kill_and_reap


def test_predeclared_exchanges_exist(amq):
    rows = amq("list", "exchanges", "--format", "json").json_lines()[0]
    types = {x["name"]: x["type"] for x in rows}
    assert types[""] == "direct"
    assert types["amq.direct"] == "direct" and types["amq.fanout"] == "fanout"
    assert types["amq.topic"] == "topic"
    assert types["amq.headers"] == "headers" and types["amq.match"] == "headers"
    predeclared = ("", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match")
    assert all(x["durable"] for x in rows if x["name"] in predeclared)


def test_fanout_copies_to_every_bound_queue(amq, name):
    x, q1, q2, q3 = name("logs"), name(), name(), name()
    amq("declare", "exchange", x, "--type", "fanout")
    for q in (q1, q2):
        amq("declare", "queue", q)
        amq("bind", x, q)
    amq("declare", "queue", q3)
    amq("send", "-e", x, "ignored-key", "hi")
    assert amq("receive", q1, "--count", "1").stdout == b"hi\n"
    assert amq("receive", q2, "--count", "1").stdout == b"hi\n"
    assert amq.queue(q3)["messages"] == 0


def test_direct_routes_by_exact_key(amq, name):
    x, errs, all_ = name("direct"), name("errors"), name("all")
    amq("declare", "exchange", x, "--type", "direct")
    for q in (errs, all_):
        amq("declare", "queue", q)
    amq("bind", x, errs, "-k", "error")
    amq("bind", x, all_, "-k", "info", "-k", "warning", "-k", "error")
    for sev in ("info", "warning", "error", "debug"):
        amq("send", "-e", x, sev, f"{sev} msg", expect=7 if sev == "debug" else 0)
    assert amq("receive", errs, "--count", "1", "--timeout", "1").lines == ["error msg"]
    assert amq("receive", all_, "--count", "3").lines == ["info msg", "warning msg", "error msg"]


@pytest.mark.parametrize("pattern,key,routed", [
    ("*.orange.*", "quick.orange.rabbit", True),
    ("*.*.rabbit", "quick.orange.rabbit", True),
    ("lazy.#", "lazy.orange.male.rabbit", True),
    ("lazy.#", "lazy", True),
    ("*.orange.*", "quick.orange.male.rabbit", False),
    ("*.orange.*", "orange", False),
    ("#", "", True),
    ("a.#.d", "a.d", True),
    ("#.c", "c", True),
    ("x.*", "x", False),
])
def test_topic_routing(amq, name, pattern, key, routed):
    x, q = name("topic"), name()
    amq("declare", "exchange", x, "--type", "topic")
    amq("declare", "queue", q)
    amq("bind", x, q, "-k", pattern)
    amq("send", "-e", x, key, "m", expect=0 if routed else 7)
    assert amq.queue(q)["messages"] == (1 if routed else 0)


def test_headers_exchange_all_and_any(amq, name):
    x, q_all, q_any = name("hdr"), name("all"), name("any")
    amq("declare", "exchange", x, "--type", "headers")
    amq("declare", "queue", q_all)
    amq("declare", "queue", q_any)
    amq("bind", x, q_all, "--header", "format=pdf", "--header", "type=report")
    amq("bind", x, q_any, "--header", "format=pdf", "--header", "type=log", "--match", "any")
    amq("send", "-e", x, "", "both", "-H", "format=pdf", "-H", "type=report")
    amq("send", "-e", x, "", "pdf-only", "-H", "format=pdf")
    amq("send", "-e", x, "", "none", "-H", "format=zip", expect=7)
    assert amq("receive", q_all, "--count", "1", "--timeout", "1").lines == ["both"]
    assert amq("receive", q_any, "--count", "2").lines == ["both", "pdf-only"]


def test_typed_header_values_match_only_their_type(amq, name):
    x, q = name("hdr"), name()
    amq("declare", "exchange", x, "--type", "headers")
    amq("declare", "queue", q)
    amq("bind", x, q, "--header", "n:=5")
    amq("send", "-e", x, "", "string five", "-H", "n=5", expect=7)
    amq("send", "-e", x, "", "int five", "-H", "n:=5")
    assert amq("receive", q, "--count", "1").lines == ["int five"]


def test_invalid_x_match_is_refused(amq, name):
    x, q = name("hdr"), name()
    amq("declare", "exchange", x, "--type", "headers")
    amq("declare", "queue", q)
    r = amq("bind", x, q, "--header", "a=b", "--match", "some", expect=4)
    assert "x-match" in r.stderr


def test_send_to_missing_exchange_is_not_found(amq, name):
    x = name("nox")
    r = amq("send", "-e", x, "k", "m", expect=3)
    assert f"no exchange '{x}'" in r.stderr and "404" in r.stderr




def test_delete_exchange_if_unused(amq, name):
    x, q = name("x"), name()
    amq("declare", "exchange", x, "--type", "fanout")
    amq("declare", "queue", q)
    amq("bind", x, q)
    assert "in use" in amq("delete", "exchange", x, "--if-unused", expect=4).stderr
    amq("unbind", x, q)
    amq("delete", "exchange", x, "--if-unused")
    assert x not in [e["name"] for e in amq("list", "exchanges", "-F", "json").json_lines()[0]]
    amq("delete", "exchange", x)  # deleting a missing exchange is fine, as in RabbitMQ


def test_subscribe_to_fanout_through_a_temporary_queue(amq, name):
    x = name("logs")
    amq("declare", "exchange", x, "--type", "fanout")
    receiver, gen = amq.subscribe(x, "--count", "2", "--format", "json")
    try:
        assert gen.startswith("amq.gen-")
        info = amq.wait_for(lambda: (i := amq.queue(gen)) and i["consumers"] == 1 and i,
                            what="the subscriber's consumer")
        assert info["exclusive"]
        amq("send", "-e", x, "", "one")
        amq("send", "-e", x, "", "two")
        out, _ = receiver.communicate(timeout=20)
    finally:
        kill_and_reap(receiver)
    bodies = [json.loads(line)["body"] for line in out.decode().splitlines()]
    assert bodies == ["one", "two"]
    assert gen not in amq.queue_names()  # gone with the receiver


def test_subscribe_with_routing_keys(amq, name):
    x = name("direct")
    amq("declare", "exchange", x, "--type", "direct")
    receiver = amq.popen("receive", "-e", x, "-k", "error", "-k", "warning", "--count", "2")
    try:
        amq.wait_for(lambda: [b for b in amq("list", "bindings", "-F", "json").json_lines()[0]
                              if b["source"] == x and b["routing_key"] == "warning"],
                     what="bindings")
        amq("send", "-e", x, "info", "i", expect=7)
        amq("send", "-e", x, "error", "e")
        amq("send", "-e", x, "warning", "w")
        out, _ = receiver.communicate(timeout=20)
    finally:
        kill_and_reap(receiver)
    assert out == b"e\nw\n"


def test_subscribe_to_missing_exchange_is_not_found(amq, name):
    r = amq("receive", "-e", name("nox"), "--count", "1", expect=3)
    assert "NOT_FOUND" in r.stderr


def test_bindings_list_shows_default_and_explicit_bindings(amq, name):
    x, q = name("x"), name()
    amq("declare", "exchange", x, "--type", "topic")
    amq("declare", "queue", q)
    amq("bind", x, q, "-k", "a.#")
    rows = amq("list", "bindings", "--format", "json").json_lines()[0]
    assert {"source": "", "destination": q, "destination_type": "queue", "routing_key": q,
            "arguments": {}} in rows
    assert {"source": x, "destination": q, "destination_type": "queue", "routing_key": "a.#",
            "arguments": {}} in rows
    tsv = [line.split("\t") for line in amq("list", "bindings").lines]
    assert [x, q, "queue", "a.#", ""] in tsv


def test_bulk_send_to_missing_exchange_is_not_found(amq, name):
    lines = "".join(f"{i}\n" for i in range(50_000))  # several batches on the way
    r = amq("send", "-e", name("nox"), "k", "--lines", input=lines, expect=3)
    assert "NOT_FOUND" in r.stderr and len(r.stderr.strip().splitlines()) == 1
