"""declare, bind, unbind, delete, purge, list: RabbitMQ's rules and reply codes."""

import json
import subprocess

from conftest import kill_and_reap


def test_declare_queue_is_idempotent_and_mismatch_is_406(amq, name):
    q = name()
    assert amq("declare", "queue", q, "--durable").out.strip() == q
    amq("declare", "queue", q, "--durable")
    r = amq("declare", "queue", q, expect=4)
    assert f"inequivalent arg 'durable' for queue '{q}'" in r.stderr
    assert "received 'false' but current is 'true'" in r.stderr
    r = amq("declare", "queue", q, "--durable", "--ttl", "1000", expect=4)
    assert "inequivalent arg 'x-message-ttl'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1



def test_passive_declare(amq, name):
    q = name()
    r = amq("declare", "queue", q, "--passive", expect=3)
    assert f"no queue '{q}' in vhost '{amq.vhost}'" in r.stderr
    amq("declare", "queue", q)
    amq("send", q, "m")
    assert amq("declare", "queue", q, "--passive").out.strip() == q
    assert q not in amq("declare", "queue", name(), "--passive", expect=3).out


def test_server_named_queue(amq):
    out = amq("declare", "queue", "").out.strip()
    amq.created.add(out)
    assert out.startswith("amq.gen-") and len(out) > 10
    assert out in amq.queue_names()  # non-exclusive: it outlives the declaring process


def test_reserved_prefix_and_long_names(amq):
    r = amq("declare", "queue", "amq.mine", expect=5)
    assert "reserved prefix 'amq.*'" in r.stderr
    r = amq("declare", "queue", "a" * 256, expect=2)
    assert "255" in r.stderr
    amq.created.add("é" * 127)
    amq("declare", "queue", "é" * 127)  # 254 bytes of UTF-8: fine
    amq("declare", "queue", "é" * 128, expect=2)  # 256 bytes
    amq("send", "b" * 256, "x", expect=2)


def test_bad_queue_arguments_are_406(amq, name):
    r = amq("declare", "queue", name(), "--arg", "x-max-length=abc", expect=4)
    assert "invalid arg 'x-max-length'" in r.stderr
    r = amq("declare", "queue", name(), "--max-length", "-1", expect=4)
    assert "invalid arg 'x-max-length'" in r.stderr
    r = amq("declare", "queue", name(), "--overflow", "sideways", expect=4)
    assert "invalid arg 'x-overflow'" in r.stderr
    r = amq("declare", "queue", name(), "--max-priority", "256", expect=4)
    assert "x-max-priority" in r.stderr
    r = amq("declare", "queue", name(), "--dlrk", "k", expect=4)
    assert "x-dead-letter-routing-key" in r.stderr
    r = amq("declare", "queue", name(), "--type", "quorum", expect=4)
    assert "invalid property 'non-durable'" in r.stderr
    amq("declare", "queue", name(), "--type", "quorum", "--durable")
    r = amq("declare", "queue", name(), "--arg", "x-max-length", expect=2)
    assert "KEY=VALUE" in r.stderr


def test_typed_and_friendly_arguments_are_stored_typed(amq, name):
    q = name()
    amq("declare", "queue", q, "--ttl", "60000", "--arg", "x-max-length=10",
        "--arg", 'x-custom:={"a": [1, 2]}', "--dlx", "dead")
    assert amq.queue(q)["arguments"] == {
        "x-message-ttl": 60000, "x-max-length": 10, "x-custom": {"a": [1, 2]},
        "x-dead-letter-exchange": "dead"}


def test_delete_queue_if_empty_and_if_unused(amq, name):
    q = name()
    amq("send", q, "m")
    assert "not empty" in amq("delete", "queue", q, "--if-empty", expect=4).stderr
    receiver = amq.popen("receive", q, stdout=subprocess.DEVNULL)  # acked once written
    try:
        amq.wait_for_consumers(q)
        assert "in use" in amq("delete", "queue", q, "--if-unused", expect=4).stderr
    finally:
        kill_and_reap(receiver)
    assert amq("delete", "queue", q).out.strip() == "0"  # the message was consumed
    assert q not in amq.queue_names()
    assert amq("delete", "queue", q).out.strip() == "0"  # missing: fine, as in RabbitMQ


def test_delete_queue_reports_messages_and_cancels_its_consumer(amq, name):
    q = name()
    amq("send", q, "a")
    amq("send", q, "b")
    assert amq("delete", "queue", q).out.strip() == "2"
    receiver = amq.popen("receive", q)
    try:
        amq.wait_for_consumers(q)
        amq("delete", "queue", q)
        assert receiver.wait(timeout=10) == 3
        assert "cancelled" in receiver.stderr.read().decode()
    finally:
        kill_and_reap(receiver)


def test_purge(amq, name):
    q = name()
    for i in range(3):
        amq("send", q, str(i))
    assert amq("purge", q).out.strip() == "3"
    assert amq.queue(q)["messages"] == 0
    assert "NOT_FOUND" in amq("purge", name(), expect=3).stderr



def test_unbind_of_what_does_not_exist_is_fine(amq, name):
    """As RabbitMQ 3.10: no binding, whatever is missing, is no error (cleanup relies on
    it); the default exchange is still refused."""
    x, q, nx, nq = name("x"), name(), name("nox"), name("noq")
    amq("declare", "exchange", x, "--type", "direct")
    amq("declare", "queue", q)
    for source, destination, more in ((x, nq, ()), (nx, q, ()), (nx, nq, ()),
                                      (x, nx, ("--to-exchange",)), (nx, x, ("--to-exchange",)),
                                      (nx, name("noy"), ("--to-exchange",))):
        r = amq("unbind", source, destination, "-k", "k", *more)
        assert r.stderr == "", (source, destination, r.stderr)
    assert "default exchange" in amq("unbind", "", q, "-k", q, expect=5).stderr
    assert "default exchange" in amq("unbind", "", nq, "-k", "k", expect=5).stderr


def test_list_queues_formats(amq, name):
    q = name()
    amq("declare", "queue", q, "--durable")
    amq("send", q, "m")
    rows = [line.split("\t") for line in amq("list", "queues").lines]
    assert [q, "1", "0", "0", "yes", "", "", "", "classic", "", ""] in rows
    data = json.loads(amq("list", "queues", "--format", "json").out)
    mine = next(r for r in data if r["name"] == q)
    assert mine == {"name": q, "messages": 1, "unacked": 0, "consumers": 0, "durable": True,
                    "exclusive": False, "auto_delete": False, "arguments": {},
                    "type": "classic"}


def test_exclusive_queue_is_locked_to_its_owner(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "fanout")
    receiver, gen = amq.subscribe(x)
    try:
        for args in (("purge", gen), ("declare", "queue", gen, "--passive"),
                     ("receive", gen, "--count", "1"), ("delete", "queue", gen),
                     ("bind", x, gen)):
            r = amq(*args, expect=6)
            assert "RESOURCE_LOCKED" in r.stderr, args
        assert "reserved prefix" in amq("declare", "queue", gen, expect=5).stderr
    finally:
        kill_and_reap(receiver)


def test_auto_delete_queue_goes_with_its_last_consumer(amq, name):
    q = name()
    amq("declare", "queue", q, "--auto-delete")
    amq("send", q, "m")
    amq("receive", q, "--count", "1", "--no-declare")  # never consumed before: now it has
    assert q not in amq.queue_names()
