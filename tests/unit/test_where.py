"""--where: CEL expressions over a message's JSON fields (amqcli/where.py), no broker."""

import pytest

from amqcli import errors
from amqcli.amqp.model import Delivery, Properties
from amqcli.cli.peek import peek_limit
from amqcli.where import Where, fields


def _d(body: bytes, headers=None, key="orders.new", redelivered=False) -> Delivery:
    return Delivery(0, body, Properties(headers=headers, content_type="application/json"),
                    "shop", key, redelivered)


def test_fields_are_those_of_the_json_format():
    f = fields(_d(b'{"total": 5}', {"kind": "a", "raw": b"\xff"}))
    assert f["body"] == '{"total": 5}' and f["json"] == {"total": 5}
    assert f["headers"] == {"kind": "a", "raw": {"$bytes": "/w=="}}
    assert f["properties"] == {"content_type": "application/json"}
    assert (f["exchange"], f["routing_key"], f["redelivered"]) == ("shop", "orders.new", False)
    binary = fields(_d(b"\xff\x00"))
    assert binary["body"] is None and "json" not in binary
    assert "json" not in fields(_d(b"not json"))


@pytest.mark.parametrize(("expr", "matched"), [
    ("headers.kind == 'a'", [True, False, False]),
    ("json.total > 100", [True, False, False]),
    ("routing_key.startsWith('orders.') && !redelivered", [True, False, True]),
    ("body == null", [False, False, True]),
    ("has(headers.kind)", [True, True, False]),
])
def test_matches(expr, matched):
    messages = [_d(b'{"total": 150}', {"kind": "a"}),
                _d(b'{"total": "150"}', {"kind": "b"}, redelivered=True),  # a string total
                _d(b"\xff")]
    where = Where(expr)
    assert [where.matches(m) for m in messages] == matched


@pytest.mark.parametrize(("expr", "said"), [
    ("headers.kind ==", "--where: column 16: Syntax error"),
    ("a == 1", "--where: column 1: undeclared reference to 'a'"),
    ("redelivered + 1", "--where: column 13: found no matching overload"),
    ("size(body)", "gives int, not true or false"),
    ("true &&\n  ]", "--where: line 2, column 3: Syntax error"),
])
def test_bad_expressions_are_usage_errors_with_their_column(expr, said):
    with pytest.raises(errors.UsageError, match=r"^--where") as caught:
        Where(expr)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_peek_limit():
    assert peek_limit(None, False) == 10
    assert peek_limit(3, False) == 3
    assert peek_limit(None, True) is None
    with pytest.raises(errors.UsageError, match="exclude"):
        peek_limit(3, True)
