"""`amq rpc call` and `amq rpc serve`: RabbitMQ's RPC tutorial in two commands."""

import signal

from conftest import kill_and_reap


def _serve(amq, q, command, *args):
    server = amq.popen("rpc", "serve", q, "--exec", command, *args)
    amq.wait_for_consumers(q)
    return server


def _stop(server):
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=15)
    finally:
        kill_and_reap(server)
    return server.stderr.read().decode()


def test_call_gets_the_reply_of_serve(amq, name):
    q = name()
    server = _serve(amq, q, "tr a-z A-Z")
    try:
        assert amq("rpc", "call", q, "hello", "--timeout", "20").out == "HELLO\n"
        assert amq("rpc", "call", q, "--timeout", "20", input="from stdin").out == "FROM STDIN\n"
    finally:
        _stop(server)
    info = amq.settled_queue(q)
    assert info["messages"] == 0 and info["unacked"] == 0


def test_reply_carries_the_correlation_id(amq, name):
    q = name()
    server = _serve(amq, q, "cat")
    try:
        reply = amq("rpc", "call", q, "x", "--property", "correlation_id=abc-1",
                    "--timeout", "20", "--format", "json").json_lines()
    finally:
        _stop(server)
    assert [(m["body"], m["properties"]["correlation_id"]) for m in reply] == [("x", "abc-1")]


def test_call_times_out_with_exit_9(amq, name):
    q = name()
    r = amq("rpc", "call", q, "anyone?", "--timeout", "0.5", expect=9)
    assert "no reply" in r.stderr
    assert amq.queue(q)["messages"] == 1  # the request waits for a server


def test_call_to_a_missing_queue_without_declaring_exits_7(amq, name):
    r = amq("rpc", "call", name(), "x", "--no-declare", "--timeout", "5", expect=7)
    assert "NO_ROUTE" in r.stderr


def test_concurrent_calls_each_get_their_own_reply(amq, name):
    q = name()
    server = _serve(amq, q, "sleep 0.3; tr a-z A-Z", "--prefetch", "4")
    try:
        callers = {body: amq.popen("rpc", "call", q, body, "--timeout", "30")
                   for body in ("alpha", "beta", "gamma", "delta", "epsilon")}
        for body, caller in callers.items():
            try:
                out, err = caller.communicate(timeout=60)
            finally:
                kill_and_reap(caller)
            assert caller.returncode == 0, err
            assert out == body.upper().encode() + b"\n"
    finally:
        _stop(server)


def test_request_without_reply_to_is_acked_and_reported(amq, name, tmp_path):
    q = name()
    ran = tmp_path / "ran"
    server = _serve(amq, q, f"touch {ran}; cat")
    try:
        amq("send", q, "no reply_to")
        amq.wait_for(lambda: amq.queue(q)["messages"] == 0 and amq.queue(q)["unacked"] == 0,
                     what="the request acknowledged")
    finally:
        stderr = _stop(server)
    assert "no reply_to" in stderr
    assert not ran.exists()


def test_failing_command_rejects_the_request_without_reply(amq, name):
    q = name()
    server = _serve(amq, q, "exit 5")
    try:
        amq("rpc", "call", q, "x", "--timeout", "1", expect=9)
        amq.wait_for(lambda: amq.queue(q)["unacked"] == 0, what="the request settled")
        assert amq.queue(q)["messages"] == 0  # rejected: dropped (no dead-letter exchange)
    finally:
        stderr = _stop(server)
    assert "exited with status 5" in stderr and "rejected" in stderr


def test_serve_count_stops_after_n_requests(amq, name):
    q = name()
    server = amq.popen("rpc", "serve", q, "--exec", "cat", "--count", "2")
    try:
        amq.wait_for_consumers(q)
        assert amq("rpc", "call", q, "1", "--timeout", "20").out == "1\n"
        assert amq("rpc", "call", q, "2", "--timeout", "20").out == "2\n"
        assert server.wait(timeout=20) == 0
    finally:
        kill_and_reap(server)


def test_serve_needs_exec(amq, name):
    amq("rpc", "serve", name(), expect=2)
