"""The AMQ_* variables a `--exec` command sees: pure functions of a delivery."""

import json

from amqcli.amqp.model import Delivery, Properties
from amqcli.cli.env import Environment
from amqcli.cli.workers import base_environment, header_variable, message_environment


def _delivery(**props):
    return Delivery(7, b"body", Properties(**props), "logs", "kern.info", True, "q1")


def test_routing_and_flags():
    env = message_environment(_delivery())
    assert env == {"AMQ_QUEUE": "q1", "AMQ_EXCHANGE": "logs", "AMQ_ROUTING_KEY": "kern.info",
                   "AMQ_REDELIVERED": "true", "AMQ_HEADERS": "{}"}


def test_one_variable_per_set_property():
    env = message_environment(_delivery(content_type="text/plain", correlation_id="c1",
                                        reply_to="r", priority=5, timestamp=1700000000))
    assert env["AMQ_CONTENT_TYPE"] == "text/plain"
    assert env["AMQ_CORRELATION_ID"] == "c1"
    assert env["AMQ_REPLY_TO"] == "r"
    assert env["AMQ_PRIORITY"] == "5"
    assert env["AMQ_TIMESTAMP"] == "1700000000"
    assert "AMQ_MESSAGE_ID" not in env


def test_headers_as_json_and_scalars_as_variables():
    headers = {"x-retry-count": 2, "ok": True, "name": "é", "tags": ["a"], "raw": b"\x00\x01"}
    env = message_environment(_delivery(headers=headers))
    assert json.loads(env["AMQ_HEADERS"]) == {
        "x-retry-count": 2, "ok": True, "name": "é", "tags": ["a"], "raw": {"$bytes": "AAE="}}
    assert env["AMQ_HEADER_X_RETRY_COUNT"] == "2"
    assert env["AMQ_HEADER_OK"] == "true"
    assert env["AMQ_HEADER_NAME"] == "é"
    assert "AMQ_HEADER_TAGS" not in env and "AMQ_HEADER_RAW" not in env


def test_values_with_nul_are_left_out():
    env = message_environment(_delivery(headers={"bad": "a\0b"}, message_id="m\0"))
    assert "AMQ_HEADER_BAD" not in env and "AMQ_MESSAGE_ID" not in env


def test_header_variable_names():
    assert header_variable("x-death.count") == "AMQ_HEADER_X_DEATH_COUNT"
    assert header_variable("Content Type") == "AMQ_HEADER_CONTENT_TYPE"


def test_base_environment_drops_stale_message_variables_and_names_the_broker():
    inherited = {"PATH": "/bin", "AMQ_ROUTING_KEY": "old", "AMQ_HEADER_X": "old",
                 "AMQ_BROKER": "prod", "AMQ_DEBUG": "1"}
    env = Environment(stdin_isatty=False, stdout_isatty=False, stderr_isatty=False,
                      url="local:/tmp/x.db")
    out = base_environment(env, inherited)
    assert out == {"PATH": "/bin", "AMQ_DEBUG": "1", "AMQ_URL": "local:/tmp/x.db"}
