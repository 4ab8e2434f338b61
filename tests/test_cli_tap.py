"""amq tap: a live copy of what is published to exchanges, taking nothing, on both brokers."""

import json

import pytest
from conftest import REQUIRE_RABBITMQ, kill_and_reap, needs_management, wait_until


def _tap_bindings(amq, exchanges):
    return [b for b in amq("list", "bindings", "-F", "json").json_lines()[0]
            if b["destination"].startswith("amq.gen-") and b["source"] in exchanges]


def _tap(amq, exchanges, *args):
    """``amq tap`` in the background, once its bindings to every exchange exist."""
    tap = amq.popen("tap", *args)
    try:
        amq.wait_for(lambda: exchanges <= {b["source"] for b in _tap_bindings(amq, exchanges)},
                     what="the tap's bindings")
    except BaseException:
        kill_and_reap(tap)
        raise
    return tap


def _out(tap):
    try:
        out, err = tap.communicate(timeout=30)
    finally:
        kill_and_reap(tap)
    return out, err.decode()


def test_tap_copies_without_taking(amq, name):
    x, t, h, q = name("fan"), name("top"), name("head"), name()
    amq("declare", "exchange", x, "--type", "fanout")
    amq("declare", "exchange", t, "--type", "topic")
    amq("declare", "exchange", h, "--type", "headers")
    amq("declare", "queue", q)
    amq("bind", x, q)
    tap = _tap(amq, {x, t, h}, x, f"{t}:kern.*", h, "--count", "4", "--format", "json")
    # the tap's own queue: server-named, bound to this test's exchanges (other server-named
    # queues on the broker are not the test's to wait for)
    tapped = {b["destination"] for b in _tap_bindings(amq, {x, t, h})}
    amq("send", "-e", x, "", "one")
    amq("send", "-e", t, "user.x", "skipped", "--allow-unroutable")
    amq("send", "-e", t, "kern.x", "two", "--allow-unroutable")
    amq("send", "-e", h, "", "three", "-H", "a=b", "--allow-unroutable")
    amq("send", "-e", h, "", "four", "--allow-unroutable")  # no headers: still a copy
    out, _ = _out(tap)
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert [(m["exchange"], m["body"]) for m in got] == [
        (x, "one"), (t, "two"), (h, "three"), (h, "four")]
    assert amq("receive", q, "--count", "1").lines == ["one"]  # the queue kept its copy
    # tap's queue is gone (RabbitMQ deletes an exclusive queue just after the connection ends)
    # (the management API's list can lag further: a passive declare asks the queue itself)
    def tap_queues_gone() -> bool:
        return all(amq("declare", "queue", n, "--passive", expect=None).code != 0
                   for n in tapped)
    wait_until(tap_queues_gone, "tap's queue to be deleted", 30)


def test_tap_where_and_binary_bodies(amq, name):
    x = name("fan")
    amq("declare", "exchange", x, "--type", "fanout")
    tap = _tap(amq, {x}, x, "--where", "headers.kind == 'a' || body == null", "--count",
               "2", "--format", "nul")
    amq("send", "-e", x, "", "no", "-H", "kind=b", "--allow-unroutable")
    amq("send", "-e", x, "", "yes", "-H", "kind=a", "--allow-unroutable")
    amq("send", "-e", x, "", "--allow-unroutable", input=b"\xff\x00")
    out, _ = _out(tap)
    assert out == b"yes\0\xff\x00\0"


def test_tap_needs_a_key_on_direct_and_refuses_the_default_exchange(amq, name):
    d = name("direct")
    amq("declare", "exchange", d, "--type", "direct")
    r = amq("tap", d, "--timeout", "2", expect=None)
    if "is unknown (no management API)" in r.stderr and not REQUIRE_RABBITMQ:
        # RabbitMQ tells an exchange's type through its management API only: without it
        # the tap says it binds '#' (and times out here, exit 9)
        assert r.code == 9 and f"({d}:KEY)" in r.stderr, r
        pytest.skip("an exchange's type needs RabbitMQ's management API")
    assert r.code == 2, r
    assert "direct exchange" in r.stderr and f"{d}:KEY" in r.stderr
    r = amq("tap", "", expect=5)
    assert "default exchange" in r.stderr and "--firehose" in r.stderr
    r = amq("tap", name("nosuch"), expect=3)
    assert "404 NOT_FOUND" in r.stderr
    r = amq("tap", expect=2)
    assert "EXCHANGE" in r.stderr


def test_tap_key_option_takes_names_whole(amq, name):
    x = name("a:b")
    amq("declare", "exchange", x, "--type", "direct")
    tap = _tap(amq, {x}, x, "-k", "k1", "--count", "1")
    amq("send", "-e", x, "k2", "no", expect=7)
    amq("send", "-e", x, "k1", "yes")
    out, _ = _out(tap)
    assert out == b"yes\n"


def test_tap_timeout(amq, name):
    x = name("fan")
    amq("declare", "exchange", x, "--type", "fanout")
    r = amq("tap", x, "--timeout", "0.5", expect=9)
    assert "no message arrived" in r.stderr


@pytest.mark.local_only
def test_tap_in_the_shell_completes_exchanges(amq, name):
    from amqcli.cli.names import PARAM_KINDS, Kind
    assert PARAM_KINDS["exchanges"] is Kind.EXCHANGE
    x = name("fan")
    amq("declare", "exchange", x, "--type", "fanout")
    r = amq("shell", input=f"tap {x} --timeout 0.3\n", expect=9)
    assert "no message arrived" in r.stderr


def _trace(amq, on):
    """Tracing on or off: `amq broker trace` locally, the vhost's setting on RabbitMQ."""
    if amq.broker == "local":
        amq("broker", "trace", "on" if on else "off")
        return
    from conftest import management, require_management
    require_management()
    vhost = amq.vhost
    if vhost == "/":
        pytest.skip("the firehose test needs a vhost of its own on RabbitMQ")
    from urllib.parse import quote
    management(f"vhosts/{quote(vhost, safe='')}", "PUT", {"tracing": on})


def test_firehose_sees_publishes_and_deliveries_with_rabbitmqs_headers(amq, name):
    needs_management(amq.broker)  # the test's assertions need the management API
    q = name()
    amq("declare", "queue", q)
    r = amq("tap", "--firehose", "--timeout", "0.3", expect=9)
    assert "tracing is off" in r.stderr
    _trace(amq, True)
    try:
        amq.wait_for(lambda: "tracing is off" not in amq(
            "tap", "--firehose", "--timeout", "0.1", expect=9).stderr, what="tracing on")
        tap = _tap(amq, {"amq.rabbitmq.trace"}, "--firehose", "--count", "2", "-F", "json",
                   "--where", f"routing_key.endsWith('{q}') || "
                              f"(routing_key == 'publish.' && '{q}' in headers.routing_keys)")
        amq("send", q, "hello", "-H", "k=v", "-p", "message_id=m1")
        assert amq("receive", q, "--count", "1").lines == ["hello"]
        out, _ = _out(tap)
    finally:
        _trace(amq, False)
    published, delivered = [json.loads(line) for line in out.decode().splitlines()]
    assert published["routing_key"] == "publish." and delivered["routing_key"] == f"deliver.{q}"
    for m in (published, delivered):
        assert m["exchange"] == "amq.rabbitmq.trace" and m["body"] == "hello"
        h = m["headers"]
        assert h["exchange_name"] == "" and h["routing_keys"] == [q]
        assert h["properties"] == {"message_id": "m1", "headers": {"k": "v"}}
        assert {"node", "vhost", "connection", "channel", "user"} <= set(h)
    assert published["headers"]["routed_queues"] == [q]
    assert delivered["headers"]["redelivered"] == 0


def test_trace_exchange_is_predeclared_and_internal(amq):
    rows = amq("list", "exchanges", "--format", "json").json_lines()[0]
    trace = next(x for x in rows if x["name"] == "amq.rabbitmq.trace")
    assert trace["type"] == "topic" and trace["durable"] and trace["internal"]


@pytest.mark.rabbitmq_only
def test_tap_reconnects_like_receive(amq, name, tmp_path):
    """Behind tests/faultproxy.py: a cut connection is reconnected, the tap bound again
    (saying that what was published meanwhile was not seen), and it goes on printing."""
    from faultproxy import FaultProxy
    x = name("fan")
    amq("declare", "exchange", x, "--type", "fanout")
    err = tmp_path / "err.txt"
    with FaultProxy("127.0.0.1", 5672) as proxy, open(err, "wb") as stderr:
        env = amq.env(AMQ_URL=proxy.url(amq.url) + "?heartbeat=1",
                      AMQ_RECONNECT_BACKOFF="0.2")
        tap = amq.popen("tap", x, "--format", "json", stderr=stderr, env=env)
        try:
            amq.wait_for(lambda: x in {b["source"] for b in amq(
                "list", "bindings", "-F", "json").json_lines()[0]}, what="the tap")
            amq("send", "-e", x, "", "before")
            assert json.loads(tap.stdout.readline())["body"] == "before"
            proxy.cut()
            amq.wait_for(lambda: "reconnected" in err.read_text(errors="replace"),
                         timeout=30, what="the reconnect")
            assert "published while disconnected were not seen" in err.read_text()
            amq.wait_for(lambda: x in {b["source"] for b in amq(
                "list", "bindings", "-F", "json").json_lines()[0]}, what="the new binding")
            amq("send", "-e", x, "", "after")
            assert json.loads(tap.stdout.readline())["body"] == "after"
        finally:
            kill_and_reap(tap)
