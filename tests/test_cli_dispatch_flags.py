"""The dispatch flags of the command line, on both brokers, with receiver processes:
``declare queue --single-active-consumer`` and ``receive --priority N``."""

from __future__ import annotations

import signal

from conftest import kill_and_reap


def _lines(amq, q, n):
    amq("send", q, "--lines", input="".join(f"{i}\n" for i in range(n)))


def test_single_active_consumer_one_receiver_gets_all_until_it_goes(amq, name, tmp_path):
    q = name()
    amq("declare", "queue", q, "--single-active-consumer")
    out = tmp_path / "first.out"
    with open(out, "wb") as f:  # into a file: each message acknowledged once written
        first = amq.popen("receive", q, stdout=f)
    amq.wait_for_consumers(q, 1, first)
    second = amq.popen("receive", q, "--timeout", "5")
    try:
        amq.wait_for_consumers(q, 2, second)
        _lines(amq, q, 20)
        amq.wait_for(lambda: out.read_text().count("\n") == 20, what="all 20 written")
        amq.wait_for(lambda: (amq.settled_queue(q) or {}).get("unacked") == 0,
                     what="all 20 acknowledged")
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)
        assert out.read_text().split() == [str(i) for i in range(20)]
        _lines(amq, q, 5)  # now the second is the active one
        out_second = second.communicate(timeout=30)[0].decode().split()
        assert out_second == [str(i) for i in range(5)]
    finally:
        kill_and_reap(first)
        kill_and_reap(second)


def test_a_higher_priority_receiver_that_keeps_up_gets_everything(amq, name):
    q = name()
    amq("declare", "queue", q)
    low = amq.popen("receive", q, "--timeout", "3")
    high = amq.popen("receive", q, "--priority", "10", "--timeout", "3")
    try:
        amq.wait_for_consumers(q, 2, high)
        _lines(amq, q, 30)
        out_high = high.communicate(timeout=30)[0].decode().split()
        out_low = low.communicate(timeout=30)[0].decode().split()
        assert out_high == [str(i) for i in range(30)]
        assert out_low == []
    finally:
        kill_and_reap(low)
        kill_and_reap(high)


def test_declare_a_quorum_queue_with_a_delivery_limit(amq, name):
    q = name()
    amq("declare", "queue", q, "--durable", "--type", "quorum", "--delivery-limit", "0")
    _lines(amq, q, 1)
    # looked at (--requeue puts it back): a return, over a limit of 0, so it is dropped
    assert amq("receive", q, "--requeue", "--count", "1").lines == ["0"]
    amq.wait_for(lambda: (amq.settled_queue(q) or {}).get("messages") == 0,
                 what="the message dropped")
