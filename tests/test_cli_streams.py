"""Streams on both brokers: declare rules, reading from every offset form, reading again,
what a stream refuses, retention in whole segments, several readers in several processes."""

import datetime as dt
import subprocess
import time

import pytest
from conftest import kill_and_reap


def _stream(amq, q, *extra):
    amq("declare", "queue", q, "--type", "stream", "--durable", *extra)


def _send(amq, q, *bodies):
    """One publish batch (one chunk on the local broker)."""
    amq("send", q, "--lines", input="".join(f"{b}\n" for b in bodies))


def _read(amq, q, *args):
    r = amq("receive", q, "--to-end", "--format", "json", *args)
    return r.json_lines()


def _bodies(msgs):
    return [m["body"] for m in msgs]


# --- declares ------------------------------------------------------------------------

def test_a_stream_needs_durable_not_exclusive_not_auto_delete(amq, name):
    q = name()
    for flags, word in ((["--durable", "--auto-delete"], "auto-delete"),
                        (["--durable", "--exclusive"], "exclusive-owner"),
                        ([], "non-durable")):
        r = amq("declare", "queue", q, "--type", "stream", *flags, expect=4)
        assert f"406 PRECONDITION_FAILED - invalid property '{word}' for queue '{q}'" \
            in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    _stream(amq, q, "--max-age", "7D", "--max-length-bytes", "100000",
            "--max-segment-size-bytes", "1000")
    _stream(amq, q, "--max-age", "7D", "--max-length-bytes", "100000",
            "--max-segment-size-bytes", "1000")  # the same again: fine
    r = amq("declare", "queue", q, "--type", "stream", "--durable", "--max-age", "8D",
            "--max-length-bytes", "100000", "--max-segment-size-bytes", "1000", expect=4)
    assert "inequivalent arg 'x-max-age'" in r.stderr and "received '8D' but current " \
        "is '7D'" in r.stderr


@pytest.mark.parametrize("arg, problem", [
    ("x-max-age=7x", "invalid_max_age"),
    ("x-max-age=0s", "invalid_max_age"),
    ("x-max-age=1Y2M", "invalid_max_age"),
    ("x-max-length=5", "of queue type rabbit_stream_queue"),
    ("x-message-ttl=5", "of queue type rabbit_stream_queue"),
    ("x-max-length-bytes=-1", "{value_negative,-1}"),
    ("x-stream-max-segment-size-bytes=a", "expected integer, got longstr"),
])
def test_stream_arguments_refused_as_rabbitmq_refuses_them(amq, name, arg, problem):
    q = name()
    r = amq("declare", "queue", q, "--type", "stream", "--durable", "--arg", arg, expect=4)
    assert f"invalid arg '{arg.split('=')[0]}' for queue '{q}'" in r.stderr
    assert problem in r.stderr


@pytest.mark.parametrize("kind", ["classic", "quorum"])
def test_stream_arguments_on_other_queues_refused(amq, name, kind):
    q = name()
    for flag, arg in (("--max-age", "7D"), ("--max-segment-size-bytes", "1000")):
        r = amq("declare", "queue", q, "--type", kind, "--durable", flag, arg, expect=4)
        key = "x-max-age" if flag == "--max-age" else "x-stream-max-segment-size-bytes"
        assert f"invalid arg '{key}' for queue '{q}' in vhost '{amq.vhost}' of queue " \
            f"type rabbit_{kind}_queue" in r.stderr


# --- reading ---------------------------------------------------------------------------

def test_every_offset_form(amq, name):
    q = name()
    _stream(amq, q)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    _send(amq, q, "m0", "m1", "m2")
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    _send(amq, q, "m3", "m4")
    every = [f"m{i}" for i in range(5)]
    first = _read(amq, q, "--offset", "first")
    assert _bodies(first) == every
    assert [m["stream_offset"] for m in first] == [0, 1, 2, 3, 4]
    assert all("x-stream-offset" not in m["headers"] for m in first)
    assert _bodies(_read(amq, q, "--offset", "3")) == ["m3", "m4"]
    assert _bodies(_read(amq, q, "--offset", "0")) == every
    last = _bodies(_read(amq, q, "--offset", "last"))
    assert last and last == every[-len(last):] and len(last) <= 2  # the last chunk
    stamp = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _bodies(_read(amq, q, "--offset", stamp)) == every
    assert _bodies(_read(amq, q, "--offset", "1h")) == every
    later = _bodies(_read(amq, q, "--offset", between.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert later[-2:] == ["m3", "m4"] and "m0" not in later  # seconds: RabbitMQ's chunks
    assert _read(amq, q, "--offset", "next") == []
    assert _bodies(_read(amq, q, "--offset", "first")) == every  # reading removes nothing


def test_without_offset_a_stream_is_read_from_next(amq, name):
    q = name()
    _stream(amq, q)
    _send(amq, q, "old")
    reader = amq.popen("receive", q, "--count", "2")
    try:
        amq.wait_for_consumers(q, 1, reader)
        _send(amq, q, "new1", "new2")
        out, err = reader.communicate(timeout=30)
    finally:
        kill_and_reap(reader)
    assert reader.returncode == 0, err
    assert out.decode().splitlines() == ["new1", "new2"]


def test_count_and_resume_after_the_last_offset_printed(amq, name):
    q = name()
    _stream(amq, q)
    _send(amq, q, *[f"m{i}" for i in range(6)])
    got = amq("receive", q, "--offset", "first", "--count", "2", "--format", "json",
              "--timeout", "10").json_lines()
    assert _bodies(got) == ["m0", "m1"]
    after = str(got[-1]["stream_offset"] + 1)
    assert _bodies(_read(amq, q, "--offset", after)) == ["m2", "m3", "m4", "m5"]


def test_bad_offsets_and_offsets_on_a_classic_queue(amq, name):
    q, plain = name(), name()
    _stream(amq, q)
    r = amq("receive", q, "--offset", "yesterday", expect=2)
    assert "--offset 'yesterday'" in r.stderr
    amq("declare", "queue", plain)
    r = amq("receive", plain, "--offset", "first", expect=2)
    assert f"queue '{plain}' is a classic queue" in r.stderr


# --- what a stream refuses ---------------------------------------------------------------

def test_what_cannot_apply_to_a_stream_says_so(amq, name):
    q = name()
    _stream(amq, q)
    _send(amq, q, "m0")
    where = f"queue '{q}' in vhost '{amq.vhost}'"
    r = amq("receive", q, "--offset", "first", "--no-ack", expect=11)
    assert f"540 NOT_IMPLEMENTED - automatic acknowledgement not supported by stream " \
        f"queues {where}" in r.stderr
    r = amq("receive", q, "--offset", "first", "--requeue", expect=11)
    assert f"basic.nack and basic.reject not supported by stream queues queue '{q}'" \
        in r.stderr
    r = amq("receive", q, "--offset", "first", "--exec", "false", "--on-failure", "reject",
            expect=11)
    assert "basic.nack and basic.reject not supported" in r.stderr
    r = amq("purge", q, expect=11)
    assert f"540 NOT_IMPLEMENTED - queue.purge not supported by stream queues {where}" \
        in r.stderr
    for r in (amq("receive", q, "--offset", "first", "--no-ack", expect=11),):
        assert len(r.stderr.strip().splitlines()) == 1
    assert _bodies(_read(amq, q, "--offset", "first")) == ["m0"]  # all still there


# --- retention ----------------------------------------------------------------------------

def _fill(amq, q, prefix, batches, size=100):
    """Batches of 4 messages (4 of ``size`` bytes: RabbitMQ 3.10 reads nothing back from
    a stream whose retention met a chunk larger than a segment, so chunks stay smaller)."""
    sent = []
    for i in range(batches):
        bodies = [f"{prefix}{i:02d}{j}{'x' * size}" for j in range(4)]
        _send(amq, q, *bodies)
        sent += bodies
    return sent


def test_retention_by_bytes_drops_whole_old_segments(amq, name):
    q = name()
    _stream(amq, q, "--max-length-bytes", "3000", "--max-segment-size-bytes", "1000")
    sent = _fill(amq, q, "m", 12)  # about 5 kB

    def dropped():
        kept = _read(amq, q, "--offset", "first")
        return kept if kept and kept[0]["stream_offset"] > 0 else None
    kept = amq.wait_for(dropped, timeout=30, what="old segments dropped")
    bodies = _bodies(kept)
    assert bodies == sent[-len(bodies):]  # what is kept is the newest, whole, in order
    assert len(bodies) < len(sent) - 10  # whole segments went: not an exact count
    offsets = [m["stream_offset"] for m in kept]
    assert offsets == sorted(offsets)


def test_retention_by_age(amq, name):
    q = name()
    _stream(amq, q, "--max-age", "2s", "--max-segment-size-bytes", "500")
    _fill(amq, q, "old", 3)
    time.sleep(3)

    def gone():
        _fill(amq, q, "new", 2)  # rolls segments: retention runs
        kept = _bodies(_read(amq, q, "--offset", "first"))
        return kept if kept and not kept[0].startswith("old") else None
    kept = amq.wait_for(gone, timeout=60, what="segments past the age dropped")
    assert all(b.startswith("new") for b in kept)


# --- several readers ----------------------------------------------------------------------

def test_several_readers_in_several_processes_at_different_offsets(amq, name):
    q = name()
    _stream(amq, q)
    _send(amq, q, *[f"m{i}" for i in range(5)])
    starts = {"first": 0, "2": 2, "next": 5}
    readers = {off: amq.popen("receive", q, "--offset", off, "--count",
                              str(10 - start), "--timeout", "30")
               for off, start in starts.items()}
    try:
        amq.wait_for_consumers(q, len(readers))
        _send(amq, q, *[f"m{i}" for i in range(5, 10)])
        outs = {off: p.communicate(timeout=60) for off, p in readers.items()}
    finally:
        for p in readers.values():
            kill_and_reap(p)
    for off, start in starts.items():
        out, err = outs[off]
        assert readers[off].returncode == 0, err
        assert out.decode().splitlines() == [f"m{i}" for i in range(start, 10)], off


def test_a_reader_woken_by_appends_from_another_process(amq, name):
    q = name()
    _stream(amq, q)
    reader = amq.popen("receive", q, "--offset", "first", "--count", "3")
    try:
        amq.wait_for_consumers(q, 1, reader)
        for i in range(3):
            _send(amq, q, f"m{i}")
        out, _err = reader.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the reader was not woken")
    finally:
        kill_and_reap(reader)
    assert out.decode().splitlines() == ["m0", "m1", "m2"]


# --- listing and peek ---------------------------------------------------------------------

def test_list_queues_shows_a_stream_type_and_size(amq, name):
    q, plain = name(), name()
    _stream(amq, q)
    amq("declare", "queue", plain)
    _send(amq, q, "aa", "bbb")
    found = amq.queue(q)
    assert found["type"] == "stream" and amq.queue(plain)["type"] == "classic"
    assert set(found) >= {"bytes", "first_offset", "last_offset"}
    if amq.broker == "local":  # RabbitMQ 3.10 reports a stream's size late, offsets never
        assert (found["messages"], found["bytes"]) == (2, 5)
        assert (found["first_offset"], found["last_offset"]) == (0, 1)
    assert f"\t{q}\t" not in amq("list", "queues").out  # one row per queue, tab-separated
    row = next(r for r in amq("list", "queues").lines if r.startswith(f"{q}\t"))
    assert "\tstream\t" in row


def test_peek_reads_a_stream_from_first_and_changes_nothing(amq, name):
    q = name()
    _stream(amq, q)
    _send(amq, q, *[f"m{i}" for i in range(5)])
    assert amq("peek", q).lines == [f"m{i}" for i in range(5)]
    assert amq("peek", q, "--count", "2").lines == ["m0", "m1"]
    assert amq("peek", q, "--offset", "3").lines == ["m3", "m4"]
    shown = amq("peek", q, "--offset", "1", "--count", "1", "--format", "json").json_lines()
    assert [(m["body"], m["stream_offset"]) for m in shown] == [("m1", 1)]
    assert amq("peek", q).lines == [f"m{i}" for i in range(5)]


def test_move_from_a_stream_copies_and_says_so(amq, name):
    q, dest = name(), name()
    _stream(amq, q)
    amq("declare", "queue", dest)
    _send(amq, q, "m0", "m1", "m2")
    r = amq("move", q, dest)
    assert f"'{q}' is a stream: its messages are copied" in r.stderr
    got = amq("receive", dest, "--count", "3", "--format", "json", "--timeout", "10")
    moved = got.json_lines()
    assert [m["body"] for m in moved] == ["m0", "m1", "m2"]
    assert all("x-stream-offset" not in m["headers"] for m in moved)
    assert _bodies(_read(amq, q, "--offset", "first")) == ["m0", "m1", "m2"]  # kept
