"""``amq move`` end to end, on both brokers: order and properties kept, a missing or
unbound destination losing nothing, kill -9 mid-run losing nothing, redrive of messages
dead-lettered by ``receive --exec --on-failure reject``, ``--count``, ``--rate``, and
``--to-url`` from the local broker to RabbitMQ and back."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import (
    REQUIRE_RABBITMQ,
    Amq,
    _cleaner,
    kill_and_reap,
    rabbitmq_problem,
    rabbitmq_url,
    unique_names,
)

from amqcli import errors
from amqcli.cli.move import WINDOW

Names = Callable[[str], str]


def depth(amq: Amq, queue: str) -> int:
    """Ready messages in a queue, exactly (a passive declare through ``amq``'s backend)."""
    from amqcli.backends import open_backend
    from amqcli.config import resolve
    backend = open_backend(resolve(amq.url, None))
    try:
        return backend.declare_queue(queue, passive=True).message_count
    finally:
        backend.close()


def drain(amq: Amq, queue: str) -> list[dict[str, Any]]:
    """Every message of a queue, taken out, as ``receive --format json`` writes them."""
    out = amq("receive", queue, "--format", "json", "--timeout", "2", expect=None)
    assert out.code in (0, 9), out.stderr
    return out.json_lines()


def test_move_keeps_order_and_properties(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    bodies = "".join(f"m{i}\n" for i in range(50))
    amq("send", src, "--lines", "--header", "kind=a", "--property", "message_id=id-1",
        "--property", "content_type=text/plain", "--persistent", input=bodies)
    moved = amq("move", src, dst)
    assert "moved 50 messages" in moved.stderr
    assert depth(amq, src) == 0
    got = drain(amq, dst)
    assert [m["body"] for m in got] == [f"m{i}" for i in range(50)]
    assert all(m["headers"] == {"kind": "a"} for m in got)
    assert all(m["properties"]["message_id"] == "id-1" for m in got)
    assert all(m["properties"]["content_type"] == "text/plain" for m in got)
    assert all(m["properties"]["delivery_mode"] == 2 for m in got)
    assert not any(m["redelivered"] for m in got)


def test_move_of_an_empty_queue_ends_at_once(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    assert "moved 0 messages" in amq("move", src, dst, timeout=20).stderr


def test_missing_dest_loses_nothing_and_creates_nothing(amq: Amq, name: Names) -> None:
    src, missing = name("src"), name("typo")
    amq("declare", "queue", src)
    amq("send", src, "--lines", input="a\nb\n")
    failed = amq("move", src, missing, expect=3)
    assert "404" in failed.stderr and missing in failed.stderr
    assert "nothing was moved" in failed.stderr
    assert depth(amq, src) == 2
    with pytest.raises(errors.NotFound):
        depth(amq, missing)
    assert amq("move", name("nosrc"), src, expect=3).stderr.count("\n") == 1
    amq("move", src, "--to-exchange", name("nox"), expect=3)
    assert depth(amq, src) == 2


def test_unbound_exchange_loses_nothing(amq: Amq, name: Names) -> None:
    src, x, dst = name("src"), name("x"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    amq("declare", "exchange", x, "--type", "direct")
    amq("bind", x, dst, "-k", "good")
    amq("send", src, "--lines", input="1\n2\n3\n")
    failed = amq("move", src, "--to-exchange", x, "-k", "bad", expect=7)
    assert "reached no queue" in failed.stderr and f"stay in '{src}'" in failed.stderr
    assert depth(amq, src) == 3 and depth(amq, dst) == 0
    # the message's own routing key (src): the first ones route only when bound
    amq("bind", x, dst, "-k", src)
    assert "moved 3 messages" in amq("move", src, "--to-exchange", x).stderr
    assert [m["body"] for m in drain(amq, dst)] == ["1", "2", "3"]


def test_a_return_mid_window_leaves_exactly_the_returned_ones(amq: Amq, name: Names) -> None:
    """Through a headers exchange only some messages of a window route: those are moved
    (acknowledged, not duplicated), the others stay in SOURCE; exit 7 names the first."""
    src, x, dst = name("src"), name("hx"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    amq("declare", "exchange", x, "--type", "headers")
    amq("bind", x, dst, "--header", "ok=yes", "--match", "all")
    for i in range(6):
        amq("send", src, f"b{i}", "--header", f"ok={'yes' if i % 3 else 'no'}")
    failed = amq("move", src, "--to-exchange", x, expect=7)
    assert "message 1 " in failed.stderr, failed.stderr
    moved = sorted(m["body"] for m in drain(amq, dst))
    left = [m["body"] for m in drain(amq, src)]
    assert moved == ["b1", "b2", "b4", "b5"]
    assert left == ["b0", "b3"]


def test_count_moves_at_most_n_in_order(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    amq("send", src, "--lines", input="".join(f"{i}\n" for i in range(10)))
    assert "moved 4 messages" in amq("move", src, dst, "--count", "4").stderr
    assert [m["body"] for m in drain(amq, dst)] == ["0", "1", "2", "3"]
    assert [m["body"] for m in drain(amq, src)] == [str(i) for i in range(4, 10)]


def test_rate_caps_messages_per_second(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    amq("send", src, "--lines", input="".join(f"{i}\n" for i in range(20)))
    started = time.monotonic()
    amq("move", src, dst, "--rate", "20")
    took = time.monotonic() - started
    assert depth(amq, dst) == 20
    assert took >= 0.7, f"20 messages at 20/s took {took:.2f}s"  # about 1 s: loosely
    amq("move", src, dst, "--rate", "0", expect=2)


def test_redrive_sends_dead_letters_back_to_their_queue(amq: Amq, name: Names) -> None:
    work, dlq, dlx, other = name("work"), name("dlq"), name("dlx"), name("other")
    amq("declare", "exchange", dlx, "--type", "fanout")
    amq("declare", "queue", dlq)
    amq("bind", dlx, dlq)
    amq("declare", "queue", work, "--dlx", dlx)
    amq("declare", "queue", other)
    # `other` is bound beside `work` on their exchange: redrive must not copy to it again
    jobs = name("jobs")
    amq("declare", "exchange", jobs, "--type", "fanout")
    amq("bind", jobs, work)
    amq("bind", jobs, other)
    amq("send", "-e", jobs, "x", "--lines", "--header", "job=j", input="j1\nj2\nj3\n")
    failed = amq("receive", work, "--exec", "false", "--on-failure", "reject",
                 "--count", "3", expect=None, timeout=60)
    assert failed.code in (0, 12), failed.stderr
    amq.wait_for(lambda: depth(amq, dlq) == 3, what="three dead letters")
    amq("send", dlq, "stray")  # never dead-lettered: it stays
    redrive = amq("move", dlq, "--to-origin")
    assert "moved 3 messages" in redrive.stderr
    assert "1 without x-death left" in redrive.stderr
    back = drain(amq, work)
    assert [m["body"] for m in back] == ["j1", "j2", "j3"]
    for m in back:
        assert m["headers"]["job"] == "j"
        deaths = m["headers"]["x-death"]
        assert deaths[0]["queue"] == work and deaths[0]["reason"] == "rejected"
    assert depth(amq, other) == 3
    assert [m["body"] for m in drain(amq, dlq)] == ["stray"]


def test_kill_9_mid_move_loses_nothing(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    total = 30_000
    amq("send", src, "--lines", input="".join(f"m{i}\n" for i in range(total)), timeout=120)
    # paced (windows as without --rate) so that the kill surely lands mid-run
    mover = amq.popen("move", src, dst, "--rate", "10000")
    try:
        amq.wait_for(lambda: depth(amq, dst) >= 2 * WINDOW, timeout=60,
                     what="the move under way")
        os.kill(mover.pid, signal.SIGKILL)
    finally:
        kill_and_reap(mover)
    assert mover.returncode == -signal.SIGKILL, "the move ended before the kill"
    amq.wait_for(lambda: depth(amq, src) + depth(amq, dst) >= total, timeout=30,
                 what="unacknowledged messages back in the source")
    seen = Counter(m["body"] for q in (src, dst) for m in drain(amq, q))
    missing = [f"m{i}" for i in range(total) if f"m{i}" not in seen]
    assert not missing, f"{len(missing)} lost, e.g. {missing[:5]}"
    duplicated = sum(n - 1 for n in seen.values())
    assert duplicated <= WINDOW, f"{duplicated} duplicates: more than one window"


def test_move_help_and_usage(amq: Amq, name: Names) -> None:
    assert "--to-origin" in amq("move", "--help").out
    assert amq("move", name("q"), expect=2).stderr.startswith("amq: error: say where to")
    amq("move", "q", "q", expect=2)
    amq("move", "q", "--to-origin", "-k", "x", expect=2)


# --- across brokers ------------------------------------------------------------------

@pytest.fixture
def rabbit(request: pytest.FixtureRequest) -> Iterator[Amq]:
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"AMQ_TEST_REQUIRE_RABBITMQ is set but {problem}")
        pytest.skip(problem)
    client = Amq("rabbitmq", rabbitmq_url())
    yield client
    if client.created:
        _cleaner.delete(sorted(client.created))


@pytest.mark.local_only
def test_to_url_local_to_rabbitmq_and_back(amq: Amq, rabbit: Amq, name: Names,
                                           request: pytest.FixtureRequest) -> None:
    remote = unique_names(request, rabbit.created)("remote")
    src, back = name("src"), name("back")
    amq("declare", "queue", src)
    amq("declare", "queue", back)
    rabbit("declare", "queue", remote)
    amq("send", src, "--lines", "--header", "h=1", input="a\nb\nc\n")
    there = amq("move", src, remote, "--to-url", rabbit.url)
    assert "moved 3 messages" in there.stderr
    assert depth(amq, src) == 0 and depth(rabbit, remote) == 3
    rabbit("move", remote, back, "--to-url", amq.url)
    got = drain(amq, back)
    assert [m["body"] for m in got] == ["a", "b", "c"]
    assert all(m["headers"] == {"h": "1"} for m in got)
    assert depth(rabbit, remote) == 0
    # a DEST missing on the other broker: nothing taken
    amq("send", src, "x")
    amq("move", src, "nosuch-" + remote, "--to-url", rabbit.url, expect=3)
    assert depth(amq, src) == 1


def test_follow_moves_new_arrivals_until_stopped(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    mover = amq.popen("move", src, dst, "--follow")
    try:
        amq.wait_for_consumers(src, process=mover)
        amq("send", src, "--lines", input="late1\nlate2\n")
        amq.wait_for(lambda: depth(amq, dst) == 2, what="the arrivals moved")
        mover.send_signal(signal.SIGTERM)  # what Ctrl+C does, for a background process
        _out, err = mover.communicate(timeout=30)
    finally:
        kill_and_reap(mover)
    assert "moved 2 messages" in err.decode()
    assert [m["body"] for m in drain(amq, dst)] == ["late1", "late2"]


def test_move_in_the_shell(amq: Amq, name: Names) -> None:
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    amq("send", src, "one")
    script = f"move {src} {dst}\nmove {src} {name('typo')}\n"
    shell = amq("shell", "--keep-going", input=script, expect=3)
    assert "moved 1 message " in shell.stderr
    assert shell.stderr.count("amq: error:") == 1 and "Traceback" not in shell.stderr
    assert depth(amq, dst) == 1


def test_move_from_a_quorum_queue(amq: Amq, name: Names) -> None:
    """RabbitMQ's quorum queues take no channel-wide prefetch (540 on consume): the move
    consumes with a prefetch of its own instead."""
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src, "--durable", "--arg", "x-queue-type=quorum")
    amq("declare", "queue", dst)
    amq("send", src, "--lines", "--confirm", input="".join(f"{i}\n" for i in range(30)))
    assert "moved 5 messages" in amq("move", src, dst, "--count", "5").stderr
    assert "moved 25 messages" in amq("move", src, dst).stderr
    got = [m["body"] for m in drain(amq, dst)]
    # what RabbitMQ pushed past --count went back to the quorum queue's end
    assert got[:5] == ["0", "1", "2", "3", "4"]
    assert sorted(got, key=int) == [str(i) for i in range(30)]


def test_a_nack_leaves_the_refused_ones_exit_10(amq: Amq, name: Names) -> None:
    """A full DEST with reject-publish nacks what does not fit: those stay in SOURCE."""
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst, "--max-length", "2", "--overflow", "reject-publish")
    amq("send", src, "--lines", input="1\n2\n3\n4\n5\n")
    failed = amq("move", src, dst, expect=10)
    assert "message 3 " in failed.stderr and "nack" in failed.stderr, failed.stderr
    assert "moved 2 messages" in failed.stderr
    assert [m["body"] for m in drain(amq, dst)] == ["1", "2"]
    assert [m["body"] for m in drain(amq, src)] == ["3", "4", "5"]  # order kept


@pytest.mark.rabbitmq_only
def test_follow_survives_a_cut_connection(amq: Amq, name: Names, tmp_path: Any) -> None:
    """Behind the fault proxy, both of move's connections (source, and the publisher's
    own) are cut: it reconnects, like receive, and every message arrives in DEST."""
    from faultproxy import FaultProxy
    src, dst = name("src"), name("dst")
    amq("declare", "queue", src)
    amq("declare", "queue", dst)
    err = tmp_path / "err.txt"
    with FaultProxy("127.0.0.1", 5672) as proxy:
        env = amq.env(AMQ_URL=proxy.url(amq.url) + "?heartbeat=1",
                      AMQ_RECONNECT_BACKOFF="0.2", PYTHONFAULTHANDLER="1")
        with open(err, "wb") as stderr:
            mover = amq.popen("move", src, dst, "--follow", stderr=stderr, env=env)
        try:
            amq.wait_for_consumers(src, process=mover)
            sent = [f"m{i}" for i in range(100)]
            amq("send", src, "--lines", input="".join(f"{b}\n" for b in sent[:50]))
            amq.wait_for(lambda: depth(amq, dst) >= 50, what="the first half moved")
            proxy.cut()
            amq.wait_for(lambda: "reconnected" in err.read_text(), timeout=30,
                         what="move reconnected")
            amq("send", src, "--lines", input="".join(f"{b}\n" for b in sent[50:]))
            try:
                amq.wait_for(lambda: depth(amq, dst) >= 100, timeout=30, what="all moved")
            except AssertionError as failed:
                mover.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: where it is
                mover.wait(timeout=10)
                raise AssertionError(f"{failed}: src {depth(amq, src)}, dst {depth(amq, dst)}; "
                                     f"stderr: {err.read_text()}") from None
            lines = err.read_text().count("\n")
            time.sleep(4)  # idle past the heartbeats: the publisher's connection stays
            amq("send", src, "late")
            amq.wait_for(lambda: depth(amq, dst) >= 101, timeout=30, what="the late one")
            assert err.read_text().count("\n") == lines, err.read_text()
            mover.send_signal(signal.SIGTERM)
            mover.wait(timeout=30)
        finally:
            kill_and_reap(mover)
    assert "Traceback" not in err.read_text()
    got = {m["body"] for m in drain(amq, dst)}
    assert got == {*sent, "late"}
    assert depth(amq, src) == 0
