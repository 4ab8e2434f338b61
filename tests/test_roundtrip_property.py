"""Property: whatever the JSON form can express survives a JSON copy, on both brokers.

Any body, headers of every field type (bool, 64-bit integers, doubles, decimals,
timestamps, byte arrays, strings, nested arrays and tables, void) and string properties,
some of them bytes that are not UTF-8: sent on a broker, received as JSON, sent again
from that JSON and received again, they give the same JSON, which is the JSON that was
sent. In-process through the backends and the formats module (40 examples per broker,
local then RabbitMQ, and local copied to RabbitMQ), and as ``amq`` processes: one
``send --format json`` / ``receive --format json`` pair per batch of messages.
"""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from conftest import RABBITMQ_URL, REQUIRE_RABBITMQ, rabbitmq_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqcli import config
from amqcli.backends import open_backend, pika_shim
from amqcli.formats import OutputFormat, encode, message_from_json

SETTINGS = settings(max_examples=40, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def b64(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode()}


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# --- what the JSON form can express -------------------------------------------------------

TEXT = st.text(max_size=24)
NOT_UTF8 = st.binary(min_size=1, max_size=16).filter(_not_utf8)
KEYS = st.text(min_size=1, max_size=16).filter(
    lambda k: not k.startswith("$") and k.upper() not in ("CC", "BCC")
    and len(k.encode()) <= 255)
DECIMALS = st.builds(lambda unscaled, places: {"$decimal": str(Decimal(unscaled).scaleb(-places))},
                     st.integers(-(2**31), 2**31 - 1), st.integers(0, 30))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
    st.binary(max_size=24).map(b64), DECIMALS,
    st.integers(0, 253_402_300_799).map(lambda s: {"$timestamp": s}),
)


def _containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.dictionaries(st.sampled_from(["$bytes", "$x", "$table"]), children,
                        min_size=1, max_size=1).map(lambda t: {"$table": t}),
    )


VALUES = st.recursive(SCALARS, _containers, max_leaves=10)
HEADERS = st.dictionaries(KEYS, VALUES, max_size=6)
STRING_PROPERTY = st.one_of(st.text(min_size=1, max_size=40), NOT_UTF8.map(b64))
PROPERTIES = st.fixed_dictionaries({}, optional={
    "correlation_id": STRING_PROPERTY, "reply_to": STRING_PROPERTY,
    "message_id": STRING_PROPERTY, "content_type": STRING_PROPERTY,
    "priority": st.integers(0, 9), "timestamp": st.integers(0, 2**32),
    "delivery_mode": st.sampled_from([1, 2]),
})


def _as_json(body: bytes, properties: dict[str, Any], headers: dict[str, Any]) -> dict:
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {"body": text, "body_encoding": encoding, "properties": properties,
            "headers": headers}


MESSAGES = st.builds(_as_json, st.binary(max_size=4096), PROPERTIES, HEADERS)


# --- the brokers, in process ---------------------------------------------------------------

def _open(url: str) -> Any:
    return open_backend(config.resolve(url))


class Hop:
    """Publish JSON objects to a queue of a backend and read them back as JSON."""

    def __init__(self, url: str) -> None:
        self.backend = _open(url)
        self.queue = f"prop-{uuid.uuid4().hex[:10]}"
        self.backend.declare_queue(self.queue)

    def __call__(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = [json.dumps(o) for o in objects]
        messages = [message_from_json(line, "", self.queue) for line in lines]
        result = self.backend.publish("", messages, confirm=True)
        assert (result.published, result.unroutable, result.nacked) == (len(messages), 0, 0)
        sub = self.backend.consume(self.queue)
        got: list[Any] = []
        try:
            while len(got) < len(messages):
                batch = sub.fetch(len(messages) - len(got), 15)
                assert batch, f"only {len(got)} of {len(messages)} came back"
                got += batch
            sub.ack(got[-1].delivery_tag, multiple=True)
        finally:
            sub.cancel()
        return [json.loads(encode(d, OutputFormat.JSON)) for d in got]

    def close(self) -> None:
        try:
            self.backend.delete_queue(self.queue)
        finally:
            self.backend.close()


def _timeless(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects without ``received_at`` (when each copy was received: never the same)."""
    return [{k: v for k, v in o.items() if k != "received_at"} for o in objects]


def _content(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("body", "body_encoding", "properties", "headers")
    return [{k: o[k] for k in keys} for o in objects]


@pytest.fixture
def hop(amq):
    h = Hop(amq.url)
    yield h
    h.close()
    pika_shim.uninstall()  # pika as other tests of this process expect it


@SETTINGS
@given(message=MESSAGES)
def test_a_json_copy_gives_the_same_json(hop, message):
    first = hop([message])
    assert _content(first) == [message]
    again = hop(first)
    assert _timeless(again) == _timeless(first)


@pytest.fixture
def local_and_rabbitmq(tmp_path):
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)
    local, rabbit = Hop(f"local:{tmp_path}/amq.db"), Hop(RABBITMQ_URL)
    yield local, rabbit
    local.close()
    rabbit.close()
    pika_shim.uninstall()


@settings(SETTINGS, max_examples=25)
@given(message=MESSAGES)
def test_a_copy_from_the_local_broker_to_rabbitmq_and_back_gives_the_same_json(
        local_and_rabbitmq, message):
    local, rabbit = local_and_rabbitmq
    from_local = local([message])
    from_rabbit = rabbit(from_local)
    assert _content(from_rabbit) == _content(from_local) == [message]
    assert _content(local(from_rabbit)) == [message]


# --- the same as amq processes, a batch per pair ----------------------------------------------

@settings(SETTINGS, max_examples=3)
@given(batch=st.lists(MESSAGES, min_size=1, max_size=12))
def test_receive_json_piped_to_send_json_copies_every_message(amq, name, batch):
    q = name()
    lines = "".join(json.dumps(m) + "\n" for m in batch)
    amq("send", q, "--format", "json", input=lines)
    first = amq("receive", q, "--count", str(len(batch)), "--format", "json").stdout
    assert _content([json.loads(line) for line in first.splitlines()]) == batch
    amq("send", q, "--format", "json", input=first)
    again = amq("receive", q, "--count", str(len(batch)), "--format", "json").stdout
    assert _timeless([json.loads(line) for line in again.splitlines()]) == \
        _timeless([json.loads(line) for line in first.splitlines()])
