"""amq peek: look into a queue without consuming it, on both brokers; --where on peek."""

import json

import pytest


def _fill(amq, q, n):
    amq("send", q, "--lines", input="".join(f"m{i:02d}\n" for i in range(n)))


def _json(amq, *args):
    return amq("peek", *args, "--format", "json").json_lines()


def test_peek_shows_the_first_ten_and_takes_nothing(amq, name):
    q = name()
    _fill(amq, q, 12)
    shown = _json(amq, q)
    assert [m["body"] for m in shown] == [f"m{i:02d}" for i in range(10)]
    assert amq("peek", q, "--count", "3").lines == ["m00", "m01", "m02"]
    assert len(_json(amq, q, "--all")) == 12
    assert amq.settled_queue(q)["messages"] == 12
    after = amq("receive", q, "--count", "12", "--format", "json").json_lines()
    assert [m["body"] for m in after] == [f"m{i:02d}" for i in range(12)]  # order kept
    flagged = [m["redelivered"] for m in after]
    if amq.broker == "local":
        assert not any(flagged)  # a true peek: no redelivered flag
    else:
        assert all(flagged)  # held by the --all peek, then requeued


def test_peek_of_an_empty_queue_prints_nothing(amq, name):
    q = name()
    amq("declare", "queue", q)
    r = amq("peek", q, "--all")
    assert r.stdout == b"" and r.stderr == ""


def test_peek_errors(amq, name):
    r = amq("peek", name(), expect=3)
    assert "404 NOT_FOUND" in r.stderr and len(r.stderr.splitlines()) == 1
    q = name()
    amq("declare", "queue", q)
    r = amq("peek", q, "--count", "2", "--all", expect=2)
    assert "--count and --all" in r.stderr


def test_peek_where_selects_and_counts_what_it_shows(amq, name):
    q = name()
    for i, kind in enumerate("abab"):
        amq("send", q, json.dumps({"total": 50 * i}), "-H", f"kind={kind}")
    amq("send", q, "plain")
    assert [json.loads(m["body"])["total"] for m in _json(amq, q, "--where",
                                                          "headers.kind == 'b'")] == [50, 150]
    # json of a body that is not JSON, a header a message lacks: no match, no error
    assert [m["body"] for m in _json(amq, q, "--where", "json.total > 60")] == [
        '{"total": 100}', '{"total": 150}']
    assert _json(amq, q, "--where", "headers.nosuch == 1") == []
    # --count N: the first N that match
    assert len(_json(amq, q, "--where", "headers.kind == 'a'", "--count", "1")) == 1
    assert [m["body"] for m in _json(amq, q, "--where", "body.startsWith('pl')")] == ["plain"]
    assert amq.settled_queue(q)["messages"] == 5


def test_peek_where_bad_expression_is_one_line_with_its_column(amq, name):
    q = name()
    amq("send", q, "x")
    r = amq("peek", q, "--where", "headers.kind == ", expect=2)
    assert r.stderr.startswith("amq: error: --where: column 17: ")
    assert len(r.stderr.splitlines()) == 1
    r = amq("peek", q, "--where", "nosuch == 1", expect=2)
    assert "undeclared reference to 'nosuch'" in r.stderr
    r = amq("peek", q, "--where", "1 + 1", expect=2)
    assert "gives int, not true or false" in r.stderr


def test_peek_binary_bodies_in_every_format(amq, name):
    q = name()
    amq("send", q, input=b"a\xff\x00b")
    amq("send", q, "text")
    shown = _json(amq, q)
    assert shown[0]["body_encoding"] == "base64" and shown[1]["body"] == "text"
    assert amq("peek", q, "-n", "1", "--format", "body").stdout == b"a\xff\x00b"
    assert amq("peek", q, "--format", "nul").stdout == b"a\xff\x00b\0text\0"
    assert amq("peek", q, "--format", "raw").stdout == b"a\xff\x00b\ntext\n"
    assert amq("peek", q, "--format", "pretty").code == 0
    # body is null where the body is not UTF-8
    binary = _json(amq, q, "--where", "body == null")
    assert [m["body_encoding"] for m in binary] == ["base64"]


def test_peek_quorum_queue_with_a_delivery_limit(amq, name):
    q = name()
    amq("declare", "queue", q, "--type", "quorum", "--durable", "--delivery-limit", "3")
    amq("send", q, "precious")
    if amq.broker == "local":  # a true peek counts nothing
        assert amq("peek", q).lines == ["precious"]
        return
    r = amq("peek", q, expect=4)
    assert "delivery limit" in r.stderr and "--force" in r.stderr
    assert amq("peek", q, "--force").lines == ["precious"]
    assert amq.settled_queue(q)["messages"] == 1


@pytest.mark.local_only
def test_peek_in_the_shell(amq, name):
    q = name()
    _fill(amq, q, 3)
    r = amq("shell", input=f"peek {q} -n 2\npeek {q} --where 'body == \"m02\"'\n")
    assert r.lines == ["m00", "m01", "m02"]
