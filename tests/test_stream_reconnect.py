"""A stream reader that loses its connection resumes after the last offset it received
(not from ``--offset`` again): behind ``tests/faultproxy.py``, between amq and RabbitMQ
(the local broker has no connection to lose)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import kill_and_reap, wait_until
from faultproxy import FaultProxy


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", 5672) as p:
        yield p


@pytest.mark.rabbitmq_only
def test_a_stream_reader_resumes_after_the_last_offset_it_received(amq, name, proxy,
                                                                   tmp_path):
    q = name()
    amq("declare", "queue", q, "--type", "stream", "--durable")
    sent = [f"m{i}" for i in range(60)]
    amq("send", q, "--lines", input="".join(f"{b}\n" for b in sent[:30]))
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    env = amq.env(AMQ_URL=proxy.url(amq.url) + "?heartbeat=1", AMQ_RECONNECT_BACKOFF="0.2")
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        reader = amq.popen("receive", q, "--offset", "first", "--format", "json",
                           "--prefetch", "5", "--count", "60", stdout=stdout,
                           stderr=stderr, env=env)

    def lines() -> list[dict]:
        return [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    try:
        wait_until(lambda: len(lines()) >= 10, "the first messages")
        proxy.cut()
        wait_until(lambda: "reconnected" in err.read_text(), "the reconnect", 30)
        amq("send", q, "--lines", input="".join(f"{b}\n" for b in sent[30:]))
        assert reader.wait(timeout=60) == 0, err.read_text()
    finally:
        kill_and_reap(reader)
    got = lines()
    assert [m["body"] for m in got] == sent  # each once, in order: resumed, not re-read
    offsets = [m["stream_offset"] for m in got]
    assert offsets == sorted(set(offsets))
