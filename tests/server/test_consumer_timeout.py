"""The consumer timeout: ``amq broker serve --consumer-timeout 2`` against a RabbitMQ 3.10
node of its own with ``consumer_timeout = 2000`` (``tests/rabbitnodes.py``), the same
flows, the same assertions.

RabbitMQ checks a channel's oldest unacknowledged delivery on the channel's tick
(``channel_tick_interval``, 60 s by default: there, a 2 s timeout closes the channel
about 60 s after the delivery). The node here ticks each second, so that the test takes
seconds: it closes the channel 2 to 3 s after the delivery, as the server does.

The cases run at once, each on a connection of its own: a consumer that never acks, a
``basic.get`` with manual ack (by the raw client, to see the exact ``channel.close``:
RabbitMQ times those out too, with no method in the close), a consumer that acks in time,
one that acks inside an uncommitted transaction (RabbitMQ counts that delivery as
settled), a no-ack consumer, one that acks its first delivery in time but not a second
one (the oldest delivery held is what counts), and an ``amq receive --exec`` worker whose
command runs too long (it ends, exit 4, with the broker's text).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest
from pamqp import commands as C

from amqcli.cli.broker_cmd import parse_consumer_timeout

from .rawclient import RawClient
from .servers import AMQ_CMD, Target, start_server, unique

TIMEOUT = 2.0  # seconds
TICK = "[{rabbit, [{channel_tick_interval, 1000}]}]."  # the node's tick: 1 s, not 60
WATCH = 4.5  # seconds a case waits after its delivery: the timeout, a tick, and a margin
SECOND_WATCH = 1.5 + WATCH  # the same after a second delivery, 1.5 s after the first
TEXT = re.compile(r"PRECONDITION_FAILED - delivery acknowledgement on channel (\d+) timed "
                  r"out\. Timeout value used: (\d+) ms\. This timeout value can be "
                  r"configured, see consumers doc guide to learn more")


def expected_text(channel: int) -> str:
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed "
            f"out. Timeout value used: {int(TIMEOUT * 1000)} ms. This timeout value can be "
            "configured, see consumers doc guide to learn more")


@pytest.fixture(params=["served", pytest.param(
    "rabbitmq", marks=[pytest.mark.slow, pytest.mark.rabbitmq_only])])
def timed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A broker whose consumer timeout is 2 s: the server, or a RabbitMQ node."""
    if request.param == "rabbitmq":
        nodes = request.getfixturevalue("rabbit_nodes")
        node, = nodes.start(config=[f"consumer_timeout = {int(TIMEOUT * 1000)}"],
                            advanced=TICK)
        yield Target("rabbitmq", "127.0.0.1", node.port)
        return
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--consumer-timeout", str(TIMEOUT))
    try:
        yield Target("served", server.host, server.port)
    finally:
        code = server.stop()
        log = server.log()
    assert "Traceback" not in log, log
    assert code == 0, f"server exited {code}\n{log}"


@dataclass
class Outcome:
    got: float  # when the message arrived
    closed: float | None = None  # when the channel was closed by the broker
    code: int | None = None
    text: str = ""
    class_id: int | None = None
    method_id: int | None = None

    @property
    def after(self) -> float:
        assert self.closed is not None
        return self.closed - self.got


def consume(target: Target, queue: str, *, auto_ack: bool = False,
            ack_after: float | None = None, tx: bool = False,
            second_after: float | None = None, watch: float = WATCH) -> Outcome:
    """Take the queue's message and hold it for ``watch`` seconds, acking it after
    ``ack_after`` seconds (inside a transaction left open, with ``tx``); with
    ``second_after``, publish a second message that long after the first arrived, and
    hold that one."""
    conn = pika.BlockingConnection(target.params())
    try:
        ch = conn.channel()
        if tx:
            ch.tx_select()
        got: float | None = None
        tag: int | None = None  # the first message's, until it is acked
        second = second_after is not None
        began = time.monotonic()
        try:
            for method, _props, _body in ch.consume(queue, auto_ack=auto_ack,
                                                    inactivity_timeout=0.05):
                now = time.monotonic()
                if method is not None and got is None:
                    got, tag = now, method.delivery_tag
                if got is None:
                    assert now - began < 10, f"nothing delivered from {queue}"
                    continue
                if second and second_after is not None and now - got >= second_after:
                    ch.basic_publish("", queue, b"second")
                    second = False
                if ack_after is not None and tag is not None and now - got >= ack_after:
                    ch.basic_ack(tag)
                    tag = None
                if now - got >= watch:
                    break
        except pika.exceptions.ChannelClosedByBroker as err:
            assert got is not None
            return Outcome(got, time.monotonic(), err.reply_code, err.reply_text)
        assert got is not None
        ch.basic_qos(prefetch_count=0)  # a round trip: the channel is still open
        return Outcome(got)
    finally:
        conn.close()


def get(target: Target, queue: str, channel: int = 3) -> Outcome:
    """``basic.get`` with manual ack on a raw connection, then wait for a close."""
    client = RawClient(target.host, target.port, timeout=10)
    try:
        client.handshake()
        client.open_channel(channel)
        client.send(C.Basic.Get(queue=queue), channel)
        client.expect(C.Basic.GetOk, channel)
        got = time.monotonic()
        client.read_method()  # the content header and body
        client.read_method()
        try:
            number, close = client.read_method(timeout=WATCH)
        except TimeoutError:
            return Outcome(got)
        closed = time.monotonic()
        assert number == channel and isinstance(close, C.Channel.Close), close
        client.send(C.Channel.CloseOk(), channel)
        return Outcome(got, closed, close.reply_code, close.reply_text, close.class_id,
                       close.method_id)
    finally:
        client.close()


def amq_worker(target: Target, queue: str) -> Outcome:
    """``amq receive --exec`` whose command outlasts the timeout: the broker closes its
    channel, and amq ends with exit 4 and the broker's text (not waiting forever on a
    channel that is gone)."""
    began = time.monotonic()
    proc = subprocess.run(AMQ_CMD + ["--url", target.url, "receive", queue, "--no-declare",
                                     "--exec", "sleep 8"],
                          capture_output=True, timeout=40, check=False)
    text = proc.stderr.decode(errors="replace")
    found = TEXT.search(text)
    return Outcome(began, time.monotonic(), proc.returncode, found.group(0) if found else text)


def test_consumer_timeout(timed: Target) -> None:
    cases: dict[str, Callable[[Target, str], Outcome]] = {
        "amq": amq_worker,
        "late": lambda t, q: consume(t, q),
        "get": get,
        "prompt": lambda t, q: consume(t, q, ack_after=TIMEOUT / 2),
        "tx": lambda t, q: consume(t, q, ack_after=TIMEOUT / 2, tx=True),
        "no-ack": lambda t, q: consume(t, q, auto_ack=True),
        # The oldest delivery held counts: the first is acked in time, the second not.
        "second": lambda t, q: consume(t, q, ack_after=TIMEOUT * 0.9, second_after=1.5,
                                       watch=SECOND_WATCH),
    }
    queues = {case: unique(f"ct-{case}") for case in cases}
    conn = pika.BlockingConnection(timed.params())
    try:
        ch = conn.channel()
        for case, queue in queues.items():
            ch.queue_declare(queue)
            ch.basic_publish("", queue, case.encode())
        with ThreadPoolExecutor(len(cases)) as pool:
            running = {case: pool.submit(run, timed, queues[case])
                       for case, run in cases.items()}
            out = {case: future.result() for case, future in running.items()}
        timings = {case: round(o.after, 2) for case, o in out.items() if o.closed}
        print(f"{timed.kind}: closed after {timings} s (timeout {TIMEOUT} s)")

        late = out["late"]
        assert late.code == 406 and late.text == expected_text(1), late
        assert TEXT.fullmatch(late.text)
        assert late.after >= TIMEOUT - 0.2, late  # never before the timeout
        held = out["get"]
        assert (held.code, held.text, held.class_id, held.method_id) == \
            (406, expected_text(3), 0, 0), held
        second = out["second"]
        assert second.code == 406 and second.text == expected_text(1), second
        assert second.after >= 1.5 + TIMEOUT - 0.2, second  # timed from the second one
        worker = out["amq"]  # exit 4, the text, once the timeout passed: not at 8 s
        assert worker.code == 4 and TEXT.fullmatch(worker.text), worker
        assert TIMEOUT - 0.2 <= worker.after < 7.5, worker
        for case in ("prompt", "tx", "no-ack"):
            assert out[case].closed is None, (case, out[case])

        # What the closed channels held is back, flagged; the rest was acked or taken.
        counts = {case: ch.queue_declare(q, passive=True).method.message_count
                  for case, q in queues.items()}
        assert counts == {"amq": 1, "late": 1, "get": 1, "prompt": 0, "tx": 1, "no-ack": 0,
                          "second": 1}, counts
        for case, sent in (("late", b"late"), ("get", b"get"), ("second", b"second")):
            method, _props, body = next(ch.consume(queues[case], inactivity_timeout=10))
            assert method is not None and body == sent
            assert method.redelivered is True
            ch.basic_ack(method.delivery_tag)
            ch.cancel()
        for queue in queues.values():
            ch.queue_delete(queue)
    finally:
        conn.close()


# --- the option -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("1800", 1800.0), ("2", 2.0), ("0.5", 0.5), ("0", None), ("0.0", None), ("off", None),
    ("OFF", None)])
def test_consumer_timeout_option(text: str, seconds: float | None) -> None:
    assert parse_consumer_timeout(text) == seconds


@pytest.mark.parametrize("text", ["-1", "soon", "nan", "inf", ""])
def test_bad_consumer_timeout_is_a_usage_error(text: str) -> None:
    done = subprocess.run(AMQ_CMD + ["broker", "serve", "--memory", "--port", "0",
                                     "--consumer-timeout", text],
                          capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--consumer-timeout" in lines[0], done.stderr
