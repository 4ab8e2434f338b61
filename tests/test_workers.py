"""`receive --exec`: a shell command per message, acked on exit 0, a pool of --prefetch N."""

import json
import signal
import time

import pytest
from conftest import kill_and_reap


def _fill(amq, q, bodies):
    amq("send", q, "--lines", input="".join(f"{b}\n" for b in bodies))


def test_exec_runs_the_command_per_message_and_acks_on_exit_0(amq, name, tmp_path):
    q = name()
    _fill(amq, q, ["a", "b", "c"])
    out = tmp_path / "out"
    r = amq("receive", q, "--exec", f"cat >> {out}; echo >> {out}", "--count", "3")
    assert out.read_text().splitlines() == ["a", "b", "c"]
    assert r.stdout == b""
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0


def test_command_output_passes_through(amq, name):
    q = name()
    _fill(amq, q, ["x", "y"])
    r = amq("receive", q, "--exec", "cat; echo ' done' >&2", "--count", "2")
    assert r.out == "xy"
    assert r.stderr.count("done") == 2


def test_failure_requeues_by_default(amq, name):
    q = name()
    amq("send", q, "poison")
    r = amq("receive", q, "--exec", "cat >/dev/null; exit 3", "--count", "1", expect=12)
    assert "exited with status 3" in r.stderr and "requeued" in r.stderr
    again = amq("receive", q, "--count", "1", "--format", "json").json_lines()
    assert [(m["body"], m["redelivered"]) for m in again] == [("poison", True)]


def test_reject_drops_the_message(amq, name):
    q = name()
    amq("send", q, "poison")
    r = amq("receive", q, "--exec", "exit 1", "--on-failure", "reject", "--count", "1",
            expect=12)
    assert "rejected" in r.stderr
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0


def test_message_metadata_in_environment_variables(amq, name, tmp_path):
    q = name()
    amq("declare", "queue", q)
    amq("bind", "amq.direct", q, "-k", "rk")
    amq("send", "-e", "amq.direct", "rk", "body", "--header", "x=hello", "--header", "n:=5",
        "--header", "retry-count:=2", "--property", "correlation_id=c-1",
        "--property", "content_type=text/plain")
    out = tmp_path / "env"
    script = ('printf "%s\\n" "$AMQ_ROUTING_KEY" "$AMQ_EXCHANGE" "$AMQ_HEADER_X" '
              '"$AMQ_HEADER_N" "$AMQ_HEADER_RETRY_COUNT" "$AMQ_CORRELATION_ID" '
              '"$AMQ_CONTENT_TYPE" "$AMQ_REDELIVERED" "$AMQ_QUEUE" "${AMQ_REPLY_TO-unset}" '
              f'"$AMQ_HEADERS" > {out}')
    amq("receive", q, "--exec", script, "--count", "1")
    lines = out.read_text().splitlines()
    assert lines[:10] == ["rk", "amq.direct", "hello", "5", "2", "c-1", "text/plain", "false",
                          q, "unset"]
    assert json.loads(lines[10]) == {"x": "hello", "n": 5, "retry-count": 2}


def test_prefetch_3_runs_3_commands_at_once_and_never_more(amq, name, tmp_path):
    q = name()
    _fill(amq, q, range(9))
    log = tmp_path / "log"
    script = (f'echo "s $(date +%s%N)" >> {log}; sleep 0.4; cat >/dev/null; '
              f'echo "e $(date +%s%N)" >> {log}')
    amq("receive", q, "--exec", script, "--prefetch", "3", "--count", "9")
    events = sorted((int(t), kind) for kind, t in
                    (line.split() for line in log.read_text().splitlines()))
    running, most = 0, 0
    for _t, kind in events:
        running += 1 if kind == "s" else -1
        most = max(most, running)
    assert len(events) == 18
    assert most == 3
    assert amq.queue(q)["messages"] == 0


def test_count_takes_only_what_it_handles(amq, name, tmp_path):
    q = name()
    _fill(amq, q, range(5))
    out = tmp_path / "out"
    amq("receive", q, "--exec", f"cat >> {out}; echo >> {out}", "--prefetch", "3",
        "--count", "2")
    assert len(out.read_text().splitlines()) == 2
    info = amq.settled_queue(q)
    assert info["messages"] == 3 and info["unacked"] == 0


def test_timeout_with_nothing_exits_9(amq, name):
    r = amq("receive", name(), "--exec", "cat", "--timeout", "0.3", expect=9)
    assert "no message arrived" in r.stderr


def _wait_for_lines(amq, path, n):
    amq.wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= n,
                 what=f"{n} line(s) in {path.name}")


def test_ctrl_c_lets_running_commands_finish_and_requeues_the_rest(amq, name, tmp_path):
    q = name()
    _fill(amq, q, ["1", "2", "3", "4"])
    started, done = tmp_path / "started", tmp_path / "done"
    worker = amq.popen("receive", q, "--prefetch", "2", "--exec",
                       f"echo >> {started}; sleep 1; echo \"$(cat)\" >> {done}")
    try:
        _wait_for_lines(amq, started, 2)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=30) == 130
    finally:
        kill_and_reap(worker)
    assert "stopping" in worker.stderr.read().decode()
    assert sorted(done.read_text().split()) == ["1", "2"]
    info = amq.settled_queue(q)
    assert info["messages"] == 2 and info["unacked"] == 0


def test_second_ctrl_c_terminates_running_commands(amq, name, tmp_path):
    q = name()
    _fill(amq, q, ["1", "2"])
    started = tmp_path / "started"
    worker = amq.popen("receive", q, "--prefetch", "2", "--exec",
                       f"echo >> {started}; sleep 60")
    try:
        _wait_for_lines(amq, started, 2)
        worker.send_signal(signal.SIGINT)
        time.sleep(0.5)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=15) == 130
    finally:
        kill_and_reap(worker)
    again = amq("receive", q, "--count", "2", "--format", "json").json_lines()
    assert sorted(m["body"] for m in again) == ["1", "2"]
    assert all(m["redelivered"] for m in again)


def test_closed_output_stops_quietly(amq, name):
    q = name()
    _fill(amq, q, [str(i) for i in range(5)])
    worker = amq.popen("receive", q, "--exec", "cat; echo", "--timeout", "5")
    try:
        assert worker.stdout.read(1) == b"0"
        worker.stdout.close()  # like `| head -c 1`
        assert worker.wait(timeout=30) == 0
    finally:
        kill_and_reap(worker)
    assert b"Traceback" not in worker.stderr.read()
    info = amq.settled_queue(q)
    assert info["messages"] >= 1 and info["unacked"] == 0


@pytest.mark.parametrize("args", [
    ["--on-failure", "reject"],
    ["--exec", "cat", "--no-ack"],
    ["--exec", "cat", "--format", "json"],
    ["--exec", ""],
    ["--exec", "cat", "--on-failure", "sometimes"],
])
def test_bad_exec_options_are_usage_errors(amq, name, args):
    r = amq("receive", name(), *args, expect=2)
    assert r.stderr.strip()
