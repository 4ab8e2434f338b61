"""Virtual hosts on both brokers: `amq vhost add|list|delete`, every command reaching a vhost
through its URL (`local:PATH?vhost=NAME`, `amqp://.../NAME`), vhosts isolated from each
other with RabbitMQ's "in vhost 'x'" texts, and an unknown vhost refused with 530, exit 11.
On RabbitMQ the vhosts are made through the management API (the test's own names, deleted
after)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import Amq, needs_management


def in_vhost(amq: Amq, vhost: str) -> Amq:
    """``amq`` on the same broker, in another vhost."""
    if amq.broker == "local":
        url = f"{amq.url.split('?')[0]}?vhost={urllib.parse.quote(vhost, safe='')}"
    else:
        parts = urllib.parse.urlsplit(amq.url)
        url = urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(
            vhost, safe="")))
    return Amq(amq.broker, url, dict(amq.env_extra))


@pytest.fixture
def vhosts(amq: Amq) -> Iterator[Callable[[str], str]]:
    """A maker of vhosts with unique names (``vh-NAME-1a2b3c``), added with `amq vhost
    add` and deleted after the test."""
    if amq.broker == "rabbitmq":
        needs_management(amq.broker)
    made: list[str] = []

    def make(label: str = "v") -> str:
        name = f"amq-test-vh-{label}-{uuid.uuid4().hex[:6]}"
        amq("vhost", "add", name)
        made.append(name)
        return name
    yield make
    for name in made:
        amq("vhost", "delete", name, expect=None)


def test_add_list_and_delete(amq, vhosts):
    name = f"amq-test-vh-{uuid.uuid4().hex[:6]}"
    try:
        amq("vhost", "add", name, "--description", "the orders", "--tag", "a", "--tag", "b")
        listed = {v["name"]: v for v in amq("vhost", "list", "-F", "json").json_lines()[0]}
        assert "/" in listed
        assert listed[name]["description"] == "the orders"
        assert sorted(listed[name]["tags"]) == ["a", "b"]
        again = amq("vhost", "add", name)  # there already: left as it is, said so
        assert again.code == 0 and f"vhost '{name}' exists already" in again.stderr
    finally:
        amq("vhost", "delete", name)
    assert name not in [v["name"] for v in amq("vhost", "list", "-F", "json").json_lines()[0]]
    r = amq("vhost", "delete", name, expect=None)
    assert r.code == 3 and f"404 NOT_FOUND - no vhost '{name}'" in r.stderr, r


def test_vhosts_are_isolated(amq, vhosts, name):
    a, b = in_vhost(amq, vhosts("a")), in_vhost(amq, vhosts("b"))
    q, x = name(), name("x")
    for side, body in ((a, "in a"), (b, "in b")):  # the same names, in each vhost
        side("declare", "queue", q)
        side("declare", "exchange", x, "--type", "fanout")
        side("bind", x, q)
        side("send", "-e", x, "", body)
    a("send", q, "more in a")
    assert b("receive", q, "--count", "1").lines == ["in b"]
    assert a("receive", q, "--count", "2").lines == ["in a", "more in a"]
    assert q not in amq.queue_names()  # nor in the URL's own vhost
    r = amq("declare", "queue", q, "--passive", expect=None)
    assert r.code == 3 and f"no queue '{q}' in vhost '{amq.vhost}'" in r.stderr
    b("delete", "queue", q)
    assert q in a.queue_names() and q not in b.queue_names()
    r = b("declare", "queue", q, "--passive", expect=None)
    assert r.code == 3, r
    vhost_b = b.vhost
    assert f"404 NOT_FOUND - no queue '{q}' in vhost '{vhost_b}'" in r.stderr
    r = b("bind", name("nox"), name("noq"), expect=None)
    assert r.code == 3 and f"in vhost '{vhost_b}'" in r.stderr, r


def test_an_unknown_vhost_is_530_exit_11(amq):
    missing = f"amq-test-vh-none-{uuid.uuid4().hex[:6]}"
    elsewhere = in_vhost(amq, missing)
    for args in (("list", "queues"), ("send", "q", "x"), ("declare", "queue", "q")):
        r = elsewhere(*args, expect=None)
        assert r.code == 11, r
        assert f"530 NOT_ALLOWED - vhost {missing} not found" in r.stderr, r
        assert "Traceback" not in r.stderr


def test_topology_and_definitions_per_vhost(amq, vhosts, name, tmp_path):
    a, b = in_vhost(amq, vhosts("a")), in_vhost(amq, vhosts("b"))
    q, x = name(), name("x")
    a("declare", "queue", q, "--durable")
    a("declare", "exchange", x, "--type", "topic", "--durable")
    a("bind", x, q, "-k", "k.#")
    exported = a("definitions", "export").out
    document = json.loads(exported)
    assert [e["name"] for e in document["queues"]] == [q]
    assert [(e["source"], e["destination"]) for e in document["bindings"]] == [(x, q)]
    assert x in a("list", "topology", "-F", "text").out
    assert x not in b("list", "topology", "-F", "text").out
    top = [row["name"] for row in a("top", "--once", "-F", "json", "-i", "0.2").json_lines()[0]]
    assert top == [q]
    assert b("top", "--once", "-F", "json", "-i", "0.2").json_lines()[0] == []
    (tmp_path / "defs.json").write_text(exported)
    b("definitions", "import", str(tmp_path / "defs.json"))  # into the other vhost
    assert q in b.queue_names()
    b("send", "-e", x, "k.1", "routed in b")
    assert b("receive", q, "--count", "1").lines == ["routed in b"]
    assert a("list", "queues", "-F", "json").json_lines()[0][0]["messages"] == 0


def test_deleting_a_vhost_deletes_what_it_holds(amq, name):
    if amq.broker == "rabbitmq":
        needs_management(amq.broker)
    vhost = f"amq-test-vh-gone-{uuid.uuid4().hex[:6]}"
    amq("vhost", "add", vhost)
    inside = in_vhost(amq, vhost)
    q = name()
    try:
        inside("send", q, "kept?")
        assert inside.queue_names() == [q]
    finally:
        amq("vhost", "delete", vhost)
    r = inside("list", "queues", expect=None)
    assert r.code == 11 and f"vhost {vhost} not found" in r.stderr
    amq("vhost", "add", vhost)  # the same name again: a new, empty vhost
    try:
        assert inside.queue_names() == []
    finally:
        amq("vhost", "delete", vhost)


def test_bad_vhost_names_and_urls(amq, tmp_path):
    r = amq("vhost", "add", "x" * 300, expect=None)
    assert r.code == 2 and "at most 255" in r.stderr, r
    r = amq("vhost", "add", b"bad-\xff".decode("utf-8", "surrogateescape"), expect=None)
    assert r.code == 2 and "not valid UTF-8" in r.stderr, r
    if amq.broker == "local":
        for url, said in ((f"local:{tmp_path}/s.db?vhost=", "?vhost= needs a name"),
                          (f"local:{tmp_path}/s.db?host=x", "the one parameter it takes"),
                          ("local?vhost=a&vhost=b", "the one parameter it takes")):
            r = amq("--url", url, "list", "queues", expect=None)
            assert r.code == 2 and said in r.stderr, r
        r = amq("vhost", "delete", "/", "--yes", expect=None)
        assert r.code != 0 and "does not delete it" in r.stderr, r
    # '/' only with --yes, on both brokers: refused before anything is asked of the broker
    # (on RabbitMQ with a management API that is not there, so that a refusal that went
    # wrong could not delete the machine's '/')
    guarded = amq if amq.broker == "local" else Amq(
        amq.broker, amq.url, dict(amq.env_extra, AMQ_MANAGEMENT_URL="http://127.0.0.1:1"))
    r = guarded("vhost", "delete", "/", expect=None)
    assert r.code == 2 and "add --yes" in r.stderr and "Traceback" not in r.stderr, r


def test_a_waiting_receiver_ends_when_its_vhost_is_deleted(amq, name):
    """RabbitMQ cancels the consumer as it deletes the queue (exit 3); the local broker
    closes the connection as the vhost goes (320), and the reconnect finds no vhost (530,
    exit 11). Either way the receiver ends, saying why, within seconds."""
    if amq.broker == "rabbitmq":
        needs_management(amq.broker)
    vhost = f"amq-test-vh-wait-{uuid.uuid4().hex[:6]}"
    amq("vhost", "add", vhost)
    inside = in_vhost(amq, vhost)
    q = name()
    try:
        inside("declare", "queue", q)
        receiver = inside.popen("receive", q)
        inside.wait_for(lambda: inside("list", "queues", "-F", "json").json_lines()[0][0][
            "consumers"] == 1, what="the receiver's consumer")
    except BaseException:
        amq("vhost", "delete", vhost)
        raise
    amq("vhost", "delete", vhost)
    try:
        _out, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
        receiver.wait()
    assert receiver.returncode in (3, 11), (receiver.returncode, err)
    said = err.decode()
    # the queue or vhost "was deleted"/"is deleted"; RabbitMQ may say its vhost "is
    # down", then the reconnect finds it "not found"
    assert any(word in said for word in ("deleted", "is down", "not found")), said
    assert "Traceback" not in said
