"""``amq move --where`` on both brokers (a matching subset moves, the rest stays in the
source in order, counted in the final line; ``--count`` counts moved ones), and the local
broker's in-engine move under kill -9 (nothing lost, nothing in both queues)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable

import pytest
from conftest import Amq, kill_and_reap
from test_move import depth, drain

from amqcli.cli.move import WINDOW

Names = Callable[[str], str]


def fill(amq: Amq, queue: str, n: int) -> None:
    """``n`` messages m0..m(n-1): kind a for even i, b for odd, JSON bodies with a total."""
    amq("declare", "queue", queue)
    for kind in ("a", "b"):
        lines = "".join(json.dumps({"body": json.dumps({"i": i, "total": 10 * i}),
                                    "headers": {"kind": kind, "i": i}}) + "\n"
                        for i in range(n) if (i % 2 == 0) == (kind == "a"))
        amq("send", queue, "--format", "json", input=lines)


def numbers(messages: list[dict[str, object]]) -> list[int]:
    return [json.loads(str(m["body"]))["i"] for m in messages]


def test_where_moves_the_matching_subset(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    fill(amq, src, 20)  # sent a's first, then b's: the queue holds 0 2 4 ... 18 1 3 ... 19
    amq("declare", "queue", dst)
    moved = amq("move", src, dst, "--where", "headers.kind == 'b' && json.total > 50")
    assert "moved 7 messages" in moved.stderr, moved.stderr
    assert "13 not matching --where left in" in moved.stderr, moved.stderr
    got = drain(amq, dst)
    assert numbers(got) == [7, 9, 11, 13, 15, 17, 19]
    assert all(m["headers"]["kind"] == "b" for m in got)
    assert numbers(drain(amq, src)) == [*range(0, 20, 2), 1, 3, 5]  # the rest, in order


def test_where_with_count_counts_moved_ones(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    fill(amq, src, 10)
    amq("declare", "queue", dst)
    moved = amq("move", src, dst, "--where", "headers.kind == 'b'", "--count", "3")
    assert "moved 3 messages" in moved.stderr, moved.stderr
    assert numbers(drain(amq, dst)) == [1, 3, 5]
    assert numbers(drain(amq, src)) == [0, 2, 4, 6, 8, 7, 9]


def test_where_matching_nothing_and_everything(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    fill(amq, src, 6)
    amq("declare", "queue", dst)
    none = amq("move", src, dst, "--where", "headers.missing == 'x'")  # missing: no match
    assert "moved 0 messages" in none.stderr and "6 not matching" in none.stderr
    assert depth(amq, src) == 6 and depth(amq, dst) == 0
    every = amq("move", src, dst, "--where", "has(headers.kind)")
    assert "moved 6 messages" in every.stderr and "not matching" not in every.stderr
    assert depth(amq, src) == 0


def test_where_with_redrive(amq: Amq, name: Names) -> None:
    """--where beside --to-origin: a dead letter that does not match stays, and so does a
    message without x-death; both are counted."""
    work, dlq = name("work"), name("dlq")
    amq("declare", "queue", work)
    amq("declare", "queue", dlq)
    dead = [{"body": f"j{i}", "headers": {"x-death": [{"queue": work, "reason": "rejected",
                                                       "count": 1}], "n": i}}
            for i in range(4)]
    amq("send", dlq, "--format", "json",
        input="".join(json.dumps(m) + "\n" for m in dead))
    amq("send", dlq, "stray")
    out = amq("move", dlq, "--to-origin", "--where", "body != 'j2'")
    assert "moved 3 messages" in out.stderr, out.stderr
    assert "1 without x-death and 1 not matching --where left" in out.stderr, out.stderr
    assert [m["body"] for m in drain(amq, work)] == ["j0", "j1", "j3"]
    assert [m["body"] for m in drain(amq, dlq)] == ["j2", "stray"]


def test_a_bad_where_is_one_line_and_moves_nothing(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    fill(amq, src, 2)
    amq("declare", "queue", dst)
    bad = amq("move", src, dst, "--where", "headers.kind ==", expect=2)
    assert bad.stderr.count("\n") == 1 and "column" in bad.stderr, bad.stderr
    assert depth(amq, src) == 2 and depth(amq, dst) == 0


@pytest.mark.local_only
def test_kill_9_of_a_local_move_puts_nothing_in_both(amq: Amq, name: Names) -> None:
    """The local broker moves in the engine, one transaction per window: killed at any
    instant, every message is in one queue or the other, exactly once, none flagged."""
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    total = 30_000
    amq("send", src, "--lines", input="".join(f"m{i}\n" for i in range(total)), timeout=120)
    for at in (WINDOW, 5 * WINDOW, 11 * WINDOW):  # three kills, at different points
        mover = amq.popen("move", src, dst, "--rate", "20000")
        try:
            amq.wait_for(lambda at=at: depth(amq, dst) >= at, timeout=60,
                         what="the move under way")
            os.kill(mover.pid, signal.SIGKILL)
        finally:
            kill_and_reap(mover)
        assert mover.returncode == -signal.SIGKILL, "the move ended before the kill"
        assert depth(amq, src) + depth(amq, dst) == total
    got = [m for q in (dst, src) for m in drain(amq, q)]
    seen = Counter(m["body"] for m in got)
    assert sorted(seen) == sorted(f"m{i}" for i in range(total))
    assert max(seen.values()) == 1, "a message in both queues"
    assert not any(m["redelivered"] for m in got)
    order = [int(m["body"][1:]) for m in got]
    assert order == sorted(order)  # dst then src: FIFO across the kills
