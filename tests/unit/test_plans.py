"""Unit tests for the plans of send and receive (``plan_send``, ``body_source``, also used
by rpc call, and ``plan_receive``): flags to plans, and every combination those commands
refuse, without a broker."""

from __future__ import annotations

import pytest

from amqcli.amqp.model import Properties
from amqcli.cli.consumer_options import DEFAULT_PREFETCH, PIPE_PREFETCH
from amqcli.cli.receive import (
    WINDOW_START,
    ReceivePlan,
    consumer_prefetch,
    output_format,
    plan_receive,
)
from amqcli.cli.send import LINE, NUL, BodySource, SendPlan, body_source, plan_send, split_body
from amqcli.cli.workers import OnFailure, Settings
from amqcli.errors import ExitStatus, UsageError
from amqcli.formats import OutputFormat

# --------------------------------------------------------------------------- send: refused

BOTH = "give the body as BODY or --file, not both"
NO_BODY = r"no body: give BODY, --file PATH, or pipe it on stdin"
ONE_OF = "choose one of --lines, --null and --format json"
NO_KEY = r"missing ROUTING_KEY \(the queue name, on the default exchange\)"


@pytest.mark.parametrize("kwargs, message", [
    ({"routing_key": "q", "body": "x", "format": "xml"}, "--format must be raw or json, not 'xml'"),
    ({"body": "x"}, NO_KEY),
    ({"lines": True}, NO_KEY),
    # the order of the checks is the command's: no key before conflicting framings
    ({"lines": True, "null": True}, NO_KEY),
    ({"routing_key": "q", "lines": True, "null": True}, ONE_OF),
    ({"routing_key": "q", "lines": True, "format": "json"}, ONE_OF),
    ({"null": True, "format": "json"}, ONE_OF),
    ({"routing_key": "q", "lines": True, "null": True, "format": "json"}, ONE_OF),
    ({"routing_key": "q", "body": "x", "file": "f"}, BOTH),
    ({"routing_key": "q", "body": "x", "file": "f", "stdin_isatty": True}, BOTH),
    ({"routing_key": "q", "stdin_isatty": True}, NO_BODY),
    ({"routing_key": "q", "lines": True, "stdin_isatty": True}, NO_BODY),
    ({"format": "json", "stdin_isatty": True}, NO_BODY),
    # framings are checked before the body, the body before properties and headers
    ({"routing_key": "q", "lines": True, "null": True, "stdin_isatty": True}, ONE_OF),
    ({"routing_key": "q", "stdin_isatty": True, "properties": ["nope=1"]}, NO_BODY),
    ({"routing_key": "q", "body": "x", "properties": ["nope=1"]}, "unknown property 'nope'"),
    ({"routing_key": "q", "body": "x", "headers": ["bad"]}, "--header expects KEY=VALUE"),
])
def test_plan_send_refuses(kwargs, message):
    with pytest.raises(UsageError, match=message) as caught:
        plan_send(**kwargs)
    assert caught.value.exit_status is ExitStatus.USAGE


# --------------------------------------------------------------------------- send: plans

@pytest.mark.parametrize("kwargs, source", [
    ({"body": "hi"}, BodySource(b"hi", None, None, False)),
    ({"body": "a\nb", "lines": True}, BodySource(b"a\nb", None, LINE, False)),
    ({"body": "a", "null": True}, BodySource(b"a", None, NUL, False)),
    ({"body": "{}", "format": "json"}, BodySource(b"{}", None, LINE, True)),
    ({"file": "f"}, BodySource(None, "f", None, False)),
    ({"file": "f", "lines": True}, BodySource(None, "f", LINE, False)),
    ({"file": "f", "format": "json"}, BodySource(None, "f", LINE, True)),
    ({"file": "f", "stdin_isatty": True}, BodySource(None, "f", None, False)),
    ({"body": "x", "stdin_isatty": True}, BodySource(b"x", None, None, False)),
    ({}, BodySource(None, None, None, False)),
    ({"lines": True}, BodySource(None, None, LINE, False)),
    ({"null": True}, BodySource(None, None, NUL, False)),
    ({"format": "json"}, BodySource(None, None, LINE, True)),
    ({"format": "raw"}, BodySource(None, None, None, False)),
])
def test_plan_send_body_source(kwargs, source):
    plan = plan_send("q", **kwargs)
    assert plan.source == source
    assert plan.source.stdin is (source.text is None and source.path is None)
    assert plan.bulk is (source.separator is not None)  # progress, resume line on Ctrl+C
    assert plan.json_input is source.json


def test_plan_send_defaults():
    assert plan_send("hello", "Hello World!") == SendPlan(
        exchange="", routing_key="hello", properties=Properties(),
        source=BodySource(b"Hello World!", None), declare=True, confirm=False,
        mandatory=True, verbose=False, quiet=False)


def test_plan_send_flags():
    plan = plan_send("k", "x", exchange="logs", headers=["a=b", "n:=1"],
                     properties=["correlation_id=c1"], persistent=True, no_declare=True,
                     confirm=True, allow_unroutable=True, verbose=True, quiet=True)
    assert plan == SendPlan(
        exchange="logs", routing_key="k",
        properties=Properties(correlation_id="c1", delivery_mode=2, headers={"a": "b", "n": 1}),
        source=BodySource(b"x", None), declare=False, confirm=True,
        mandatory=False, verbose=True, quiet=True)


def test_plan_send_reconnect_timeout():
    assert plan_send("q", "x").reconnect_timeout == 60
    assert plan_send("q", "x", confirm=True, reconnect_timeout=0).reconnect_timeout == 0
    for bad in (-1, float("nan")):
        with pytest.raises(UsageError, match="--reconnect-timeout must be 0 or more"):
            plan_send("q", "x", reconnect_timeout=bad)


def test_plan_send_json_needs_no_routing_key():
    plan = plan_send(None, format="json")
    assert plan.routing_key is None
    assert plan.source == BodySource(None, None, LINE, True)


def test_plan_send_body_keeps_the_shells_bytes():
    # argv words that are not UTF-8 arrive as lone surrogates: the body is those bytes
    assert plan_send("q", "\udcff\udcfe").source.text == b"\xff\xfe"


# --------------------------------------------------------------------------- bodies

def test_body_source_alone():
    assert body_source("x", None, False) == BodySource(b"x", None, None, False)
    assert body_source(None, "p", True, NUL) == BodySource(None, "p", NUL, False)
    assert body_source(None, None, False).stdin
    with pytest.raises(UsageError, match=BOTH):
        body_source("x", "p", False)
    with pytest.raises(UsageError, match=NO_BODY):
        body_source(None, None, True)


WHOLE, LINES, NULS, JSON = (None, False), (LINE, False), (NUL, False), (LINE, True)


@pytest.mark.parametrize("data, framing, records", [
    (b"a\nb\n", WHOLE, [b"a\nb\n"]),
    (b"", WHOLE, [b""]),
    (b"a\nb\n", LINES, [b"a", b"b"]),
    (b"a\nb", LINES, [b"a", b"b"]),
    (b"a\n\nb\n", LINES, [b"a", b"", b"b"]),
    (b"a\r\nb", LINES, [b"a\r", b"b"]),
    (b"", LINES, []),
    (b"\n", LINES, [b""]),
    (b"a\0b\0", NULS, [b"a", b"b"]),
    (b"a\nb\0c", NULS, [b"a\nb", b"c"]),
    (b"", NULS, []),
    (b'{"body": "a"}\r\n{"body": "b"}\n', JSON, [b'{"body": "a"}', b'{"body": "b"}']),
    (b"", JSON, []),
])
def test_split_body(data, framing, records):
    assert split_body(BodySource(data, None, *framing)) == records


# --------------------------------------------------------------------------- receive: refused

EXEC_ONLY = ("--exec acknowledges by the command's exit status: --no-ack, --requeue, "
             "--format and --null do not apply")


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"give a QUEUE, or -e EXCHANGE to subscribe \(not both\)"),
    ({"queue": "q", "exchange": "x"}, r"give a QUEUE, or -e EXCHANGE to subscribe \(not both\)"),
    ({"keys": ["a"]}, r"give a QUEUE, or -e EXCHANGE to subscribe \(not both\)"),
    ({"queue": ""}, "QUEUE is empty: name a queue, or use -e EXCHANGE"),
    ({"queue": "", "keys": ["a"]}, "QUEUE is empty"),
    ({"queue": "q", "keys": ["a"]}, "-k/--key goes with -e EXCHANGE"),
    ({"queue": "q", "requeue": True, "no_ack": True}, "--requeue and --no-ack exclude each other"),
    ({"queue": "q", "requeue": True, "no_ack": True, "exec_": "cat"},
     "--requeue and --no-ack exclude each other"),
    ({"queue": "q", "on_failure": OnFailure.REJECT}, "--on-failure goes with --exec CMD"),
    ({"queue": "q", "exec_": ""}, "--exec needs a command"),
    ({"queue": "q", "exec_": "  "}, "--exec needs a command"),
    ({"queue": "q", "exec_": "cat", "no_ack": True}, EXEC_ONLY),
    ({"queue": "q", "exec_": "cat", "requeue": True}, EXEC_ONLY),
    ({"queue": "q", "exec_": "cat", "null": True}, EXEC_ONLY),
    ({"queue": "q", "exec_": "cat", "format": OutputFormat.JSON}, EXEC_ONLY),
    ({"queue": "q", "exec_": "cat", "format": OutputFormat.RAW}, EXEC_ONLY),
    ({"exchange": "x", "exec_": "cat", "null": True}, EXEC_ONLY),
])
def test_plan_receive_refuses(kwargs, message):
    with pytest.raises(UsageError, match=message) as caught:
        plan_receive(**kwargs)
    assert caught.value.exit_status is ExitStatus.USAGE


# --------------------------------------------------------------------------- receive: plans

def test_plan_receive_defaults():
    assert plan_receive("q") == ReceivePlan(
        queue="q", exchange=None, keys=None, declare=True, format=OutputFormat.RAW, work=None,
        prefetch=DEFAULT_PREFETCH, window=0, limit=None, timeout=None, no_ack=False,
        requeue=False, banner=False)


def test_plan_receive_subscribes_without_declaring():
    plan = plan_receive(exchange="logs", keys=["a.#", "b"])
    assert (plan.queue, plan.exchange, plan.keys, plan.declare) == (None, "logs", ["a.#", "b"],
                                                                    False)
    assert plan_receive(exchange="logs").keys is None  # the default key is the broker's
    assert plan_receive("q", no_declare=True).declare is False
    assert plan_receive("q", no_declare=False).declare is True


@pytest.mark.parametrize("kwargs, fmt", [
    ({"stdout_isatty": True}, OutputFormat.PRETTY),
    ({"stdout_isatty": False}, OutputFormat.RAW),
    ({"stdout_isatty": True, "format": OutputFormat.JSON}, OutputFormat.JSON),
    ({"stdout_isatty": False, "format": OutputFormat.PRETTY}, OutputFormat.PRETTY),
    ({"stdout_isatty": True, "null": True}, OutputFormat.NUL),
    ({"stdout_isatty": False, "null": True}, OutputFormat.NUL),
    ({"null": True, "format": OutputFormat.JSON}, OutputFormat.NUL),  # --null wins
])
def test_plan_receive_format(kwargs, fmt):
    assert plan_receive("q", **kwargs).format is fmt


@pytest.mark.parametrize("kwargs, prefetch", [
    ({}, DEFAULT_PREFETCH),
    ({"prefetch": 10}, 10),
    ({"count": 3}, 3),
    ({"count": 1000}, DEFAULT_PREFETCH),
    ({"count": 3, "prefetch": 2}, 2),
    ({"count": 3, "prefetch": 10}, 3),
    ({"requeue": True}, 0),  # holds all it sees until the end: unlimited
    ({"requeue": True, "prefetch": 10}, 0),
    ({"requeue": True, "count": 5}, 5),
    ({"requeue": True, "count": 500, "prefetch": 10}, 500),
    ({"no_ack": True, "count": 7}, 7),
])
def test_plan_receive_prefetch(kwargs, prefetch):
    plan = plan_receive("q", **kwargs)
    assert plan.prefetch == prefetch
    assert plan.window == 0  # not into a pipe
    assert plan.prefetch == consumer_prefetch(kwargs.get("prefetch"), kwargs.get("count"),
                                              kwargs.get("requeue", False))


@pytest.mark.parametrize("kwargs, prefetch, window", [
    ({}, PIPE_PREFETCH, WINDOW_START),  # into a pipe messages are held until the reader used them
    ({"count": 3}, 3, 3),
    ({"count": 50_000}, PIPE_PREFETCH, WINDOW_START),
    ({"prefetch": 10}, 10, 0),  # a prefetch given: as given, no window
    ({"prefetch": 10, "count": 3}, 3, 0),
    ({"requeue": True}, 0, 0),
    ({"requeue": True, "count": 5}, 5, 0),
    ({"no_ack": True}, PIPE_PREFETCH, 0),
    ({"no_ack": True, "count": 7}, 7, 0),
])
def test_plan_receive_prefetch_into_a_pipe(kwargs, prefetch, window):
    plan = plan_receive("q", stdout_is_pipe=True, **kwargs)
    assert (plan.prefetch, plan.window) == (prefetch, window)


@pytest.mark.parametrize("kwargs, work, prefetch", [
    ({"exec_": "cat"}, Settings("cat", 1, None, None, OnFailure.REQUEUE), 1),
    ({"exec_": "cat", "prefetch": 4}, Settings("cat", 4, None, None, OnFailure.REQUEUE), 4),
    ({"exec_": "cat", "prefetch": 4, "count": 2}, Settings("cat", 4, 2, None, OnFailure.REQUEUE),
     2),
    ({"exec_": "cat", "count": 5, "timeout": 1.5},
     Settings("cat", 1, 5, 1.5, OnFailure.REQUEUE), 1),
    ({"exec_": "cat", "on_failure": OnFailure.REJECT},
     Settings("cat", 1, None, None, OnFailure.REJECT), 1),
])
def test_plan_receive_exec(kwargs, work, prefetch):
    plan = plan_receive("q", stdout_isatty=True, stderr_isatty=True, stdout_is_pipe=True,
                        **kwargs)
    assert plan.work == work
    assert plan.prefetch == work.prefetch == prefetch
    assert plan.window == 0
    assert plan.banner is False  # the worker pool says its own


@pytest.mark.parametrize("kwargs, banner", [
    ({"stdout_isatty": True, "stderr_isatty": True}, True),
    ({"stdout_isatty": True, "stderr_isatty": False}, False),
    ({"stdout_isatty": False, "stderr_isatty": True}, False),  # raw into a pipe
    ({"stdout_isatty": False, "stderr_isatty": True, "format": OutputFormat.PRETTY}, True),
    ({"stdout_isatty": True, "stderr_isatty": True, "count": 1}, False),
    ({"stdout_isatty": True, "stderr_isatty": True, "timeout": 1.0}, True),
    ({"stdout_isatty": True, "stderr_isatty": True, "format": OutputFormat.JSON}, False),
])
def test_plan_receive_banner(kwargs, banner):
    assert plan_receive("q", **kwargs).banner is banner


def test_plan_receive_passes_the_rest_through():
    plan = plan_receive("q", count=4, timeout=0.5, no_ack=True)
    assert (plan.limit, plan.timeout, plan.no_ack, plan.requeue) == (4, 0.5, True, False)
    plan = plan_receive("q", requeue=True)
    assert (plan.no_ack, plan.requeue) == (False, True)


def test_output_format():
    assert output_format(None, True) is OutputFormat.PRETTY
    assert output_format(None, False) is OutputFormat.RAW
    assert output_format(OutputFormat.BODY, True) is OutputFormat.BODY
