"""Consuming: acks after output, --no-ack, --requeue, --prefetch, --timeout, competition."""

import subprocess
import time

from conftest import kill_and_reap


def _fill(amq, q, n, size=0):
    body = "\n".join((f"{i:06d}" + "x" * size) for i in range(n)) + "\n"
    amq("send", q, "--lines", input=body)


def test_messages_are_acked_after_output(amq, name):
    q = name()
    _fill(amq, q, 5)
    assert amq("receive", q, "--count", "3").lines == ["000000", "000001", "000002"]
    info = amq.settled_queue(q)
    assert info["messages"] == 2 and info["unacked"] == 0
    assert amq("receive", q, "--count", "2").lines == ["000003", "000004"]



def test_requeue_looks_without_taking(amq, name):
    q = name()
    _fill(amq, q, 3)
    first = amq("receive", q, "--count", "2", "--requeue", "--format", "json").json_lines()
    assert [m["body"] for m in first] == ["000000", "000001"]
    assert not any(m["redelivered"] for m in first)
    assert amq.queue(q)["messages"] == 3
    again = amq("receive", q, "--count", "3", "--format", "json").json_lines()
    assert [m["body"] for m in again] == ["000000", "000001", "000002"]  # original order
    assert [m["redelivered"] for m in again] == [True, True, False]


def test_timeout_with_nothing_exits_9_and_with_something_0(amq, name):
    q = name()
    started = time.monotonic()
    r = amq("receive", q, "--timeout", "0.5", expect=9)
    assert time.monotonic() - started < 10
    assert "no message arrived" in r.stderr
    amq("send", q, "m")
    assert amq("receive", q, "--timeout", "0.5").lines == ["m"]



def test_count_takes_no_more_than_it_needs(amq, name):
    q = name()
    _fill(amq, q, 10, size=200_000)
    receiver = amq.popen("receive", q, "--count", "2")
    try:
        amq.wait_for(lambda: amq.queue(q)["unacked"] >= 1, what="a delivery")
        time.sleep(0.3)
        assert amq.queue(q)["unacked"] <= 2
    finally:
        kill_and_reap(receiver)


def test_competing_consumers_share_messages_each_once(amq, name):
    q = name()
    amq("declare", "queue", q)
    receivers = [amq.popen("receive", q, "--prefetch", "1", "--timeout", "3") for _ in range(3)]
    try:
        amq.wait_for_consumers(q, 3)
        _fill(amq, q, 300)
        outs = [r.communicate(timeout=60)[0].decode().split() for r in receivers]
    finally:
        for r in receivers:
            kill_and_reap(r)
    everything = sorted(m for out in outs for m in out)
    assert everything == [f"{i:06d}" for i in range(300)]
    assert sum(1 for out in outs if out) >= 2  # shared, not one taking all


def test_receive_into_head_exits_cleanly_and_keeps_the_rest(amq, name):
    q = name()
    _fill(amq, q, 2000, size=1000)
    cmd = f"{' '.join(amq_cmd())} receive {q} | head -1; echo \"status=${{PIPESTATUS[0]}}\""
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, env=amq.env(), timeout=60)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert out.startswith("000000x")
    assert "status=0" in out, out[-200:] + err
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipe" not in err
    info = amq.settled_queue(q)
    assert info["unacked"] == 0 and info["consumers"] == 0
    assert info["messages"] >= 2000 - 200  # what had not been written out came back


def amq_cmd():
    from conftest import AMQ_CMD
    return AMQ_CMD


def test_json_output_shows_properties_headers_and_routing(amq, name):
    q = name()
    amq("send", q, "hello", "-H", "a=1", "-H", "n:=2", "-p", "content_type=text/plain",
        "-p", "correlation-id=abc", "--persistent", "-p", "priority=3")
    [m] = amq("receive", q, "--count", "1", "--format", "json").json_lines()
    assert m["body"] == "hello" and m["body_encoding"] == "utf-8"
    assert m["exchange"] == "" and m["routing_key"] == q and m["redelivered"] is False
    assert m["headers"] == {"a": "1", "n": 2}
    assert m["properties"] == {"content_type": "text/plain", "correlation_id": "abc",
                               "delivery_mode": 2, "priority": 3}


def test_bad_property_is_a_usage_error(amq, name):
    r = amq("send", name(), "x", "-p", "colour=blue", expect=2)
    assert "unknown property" in r.stderr
    amq("send", name(), "x", "-p", "priority=300", expect=2)
    amq("send", name(), "x", "-p", "delivery_mode=x", expect=2)
    amq("send", name(), "x", "-H", "novalue", expect=2)


def test_invalid_expiration_is_406(amq, name):
    r = amq("send", name(), "x", "-p", "expiration=soon", expect=4)
    assert "invalid expiration" in r.stderr
