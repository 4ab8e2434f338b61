"""Small things users reach for: --version, send -F and --allow-unroutable, what a NO_ROUTE
line names, Ctrl+C in a bulk send, store paths that are not stores, receive -e without -k,
usage lines. Behaviour tests run on both brokers."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from importlib.metadata import version

import pytest
from conftest import kill_and_reap, needs_management
from test_cli_terminal import ANSI, run_in_pty

# --- --version ------------------------------------------------------------------------------

@pytest.mark.local_only
@pytest.mark.parametrize("args", [["--version"], ["-V"], ["--url", "local:/nonexistent/x.db",
                                                           "-V"]])
def test_version_is_the_package_metadata(amq, args):
    r = amq(*args)
    assert r.out == f"amq {version('amqcli')}\n"
    assert r.stderr == ""


# --- send -F, --allow-unroutable ----------------------------------------------------------

def test_send_takes_F_for_format(amq, name):
    q, copy = name("q"), name("copy")
    amq("send", q, "one", "-H", "k=v")
    dumped = amq("receive", q, "--count", "1", "-F", "json").stdout
    record = json.loads(dumped)
    record["routing_key"] = copy
    amq("send", "-F", "json", input=json.dumps(record) + "\n")
    got = amq("receive", copy, "--count", "1", "-F", "json").json_lines()
    assert got[0]["body"] == "one" and got[0]["headers"] == {"k": "v"}


@pytest.mark.parametrize("extra", [[], ["--confirm"], ["--lines"], ["--lines", "--confirm"]])
def test_allow_unroutable_drops_without_a_word(amq, name, extra):
    x = name("x")
    amq("declare", "exchange", x, "--type", "topic")
    body = ["dropped"] if "--lines" not in extra else []
    r = amq("send", "-e", x, "nobody.listens", *body, "--allow-unroutable", *extra,
            input="a\nb\n")
    assert r.stderr == "" and r.stdout == b""
    amq("send", "-e", x, "nobody.listens", "dropped", *extra[-1:], expect=7)  # the default


def test_allow_unroutable_still_delivers_what_routes(amq, name):
    x, q = name("x"), name("q")
    amq("declare", "exchange", x, "--type", "topic")
    amq("declare", "queue", q)
    amq("bind", x, q, "-k", "logs.#")
    amq("send", "-e", x, "logs.app", "--lines", "--allow-unroutable", input="1\n2\n")
    amq("send", "-e", x, "other", "lost", "--allow-unroutable")
    assert amq("receive", q, "--count", "2").lines == ["1", "2"]
    assert amq.queue(q)["messages"] == 0


# --- what a NO_ROUTE line names ---------------------------------------------------------------

def test_unroutable_on_a_topic_exchange_names_the_exchange_and_the_key(amq, name):
    needs_management(amq.broker)  # the exchange's type comes from the API
    x = name("x")
    amq("declare", "exchange", x, "--type", "topic")
    r = amq("send", "-e", x, "x.y", "hi", expect=7)
    assert f"no binding of '{x}' matches 'x.y'" in r.stderr
    assert "there is no queue" not in r.stderr
    r = amq("send", "-e", "amq.topic", "x.y", "--lines", input="1\n2\n", expect=7)
    assert "2 of 2 message(s)" in r.stderr and "no binding of 'amq.topic' matches 'x.y'" in r.stderr


def test_unroutable_on_a_headers_exchange_names_the_headers(amq, name):
    needs_management(amq.broker)  # the exchange's type comes from the API
    x, q = name("x"), name("q")
    amq("declare", "exchange", x, "--type", "headers")
    amq("declare", "queue", q)
    amq("bind", x, q, "-H", "kind=audit")
    r = amq("send", "-e", x, "", "hi", "-H", "kind=log", "-H", "n:=3", expect=7)
    assert f"no binding of '{x}' matches the headers kind=log, n:=3" in r.stderr
    assert "routing key" not in r.stderr
    r = amq("send", "-e", x, "", "hi", expect=7)
    assert f"no binding of '{x}' matches a message without headers" in r.stderr


def test_unroutable_on_fanout_and_default_exchanges(amq, name):
    needs_management(amq.broker)  # the exchange's type comes from the API
    x, q = name("x"), name("q")
    amq("declare", "exchange", x, "--type", "fanout")
    r = amq("send", "-e", x, "any", "hi", expect=7)
    assert f"fanout exchange '{x}' has no bindings" in r.stderr
    r = amq("send", q, "hi", "--no-declare", expect=7)
    assert f"there is no queue '{q}'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --- Ctrl+C in a bulk send -----------------------------------------------------------------

@pytest.mark.parametrize("confirm", [False, True])
def test_ctrl_c_in_a_bulk_send_says_how_many_were_sent(amq, name, confirm):
    q = name("q")
    amq("declare", "queue", q)
    sender = amq.popen("send", q, "--lines", *(["--confirm"] if confirm else []),
                       stdin=subprocess.PIPE)
    try:
        assert sender.stdin is not None
        sender.stdin.write(b"".join(b"%d\n" % i for i in range(1, 301)))
        sender.stdin.flush()
        amq.wait_for(lambda: amq.queue(q)["messages"] == 300, what="300 messages in the queue")
        sender.send_signal(signal.SIGINT)
        sender.wait(timeout=30)
        stderr = sender.stderr.read().decode() if sender.stderr else ""
    finally:
        kill_and_reap(sender)
    assert sender.returncode == 130, stderr
    said = ("amq: interrupted: 300 messages sent and confirmed by the broker" if confirm else
            "amq: interrupted: 300 messages sent")
    assert f"{said} (resume from message 301)" in stderr, stderr
    assert "Traceback" not in stderr
    assert amq.queue(q)["messages"] == 300


# --- store paths ------------------------------------------------------------------------------

@pytest.mark.local_only
def test_a_missing_folder_is_an_error_not_a_new_broker(amq, tmp_path):
    folder = tmp_path / "no" / "such"
    r = amq("--url", f"local:{folder}/x.db", "send", "q", "hi", expect=8)
    assert f"the folder {folder} does not exist" in r.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.local_only
@pytest.mark.parametrize("kind", ["device", "directory", "other-sqlite", "junk"])
def test_a_path_that_is_not_a_store_is_refused(amq, tmp_path, kind):
    path = tmp_path / "thing"
    if kind == "device":
        path = "/dev/null"
    elif kind == "directory":
        path.mkdir()
    elif kind == "other-sqlite":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE notes (text)")
        db.commit()
        db.close()
    else:
        path.write_bytes(b"not sqlite at all\n" * 100)
    before = path.read_bytes() if kind in ("other-sqlite", "junk") else None
    r = amq("--url", f"local:{path}", "list", "queues", expect=8)
    assert len(r.stderr.strip().splitlines()) == 1
    assert f"local store {path}: " in r.stderr
    assert "rollback" not in r.stderr and "transaction" not in r.stderr
    expected = {"device": "not a store file", "directory": "a directory, not a store file",
                "other-sqlite": "an SQLite database of something else",
                "junk": "not an amq store"}[kind]
    assert expected in r.stderr
    if before is not None:
        assert path.read_bytes() == before  # left as it was
        assert not (tmp_path / "thing-wal").exists()


@pytest.mark.local_only
def test_a_new_store_is_noted_once(amq, tmp_path):
    store = tmp_path / "typo.db"
    code, screen = run_in_pty(amq, "--url", f"local:{store}", "declare", "queue", "q")
    assert code == 0, screen
    assert f"amq: created a new store at {store}" in ANSI.sub("", screen)
    code, screen = run_in_pty(amq, "--url", f"local:{store}", "declare", "queue", "q")
    assert code == 0 and "created" not in screen
    # In a pipe (scripts) too, once.
    r = amq("--url", f"local:{tmp_path}/piped.db", "declare", "queue", "q")
    assert r.stderr == f"amq: created a new store at {tmp_path}/piped.db\n"
    assert amq("--url", f"local:{tmp_path}/piped.db", "declare", "queue", "q").stderr == ""


@pytest.mark.local_only
def test_the_default_store_folder_is_created_silently(amq, tmp_path):
    env = amq.env(AMQ_URL="", XDG_DATA_HOME=str(tmp_path / "data"),
                  XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("AMQ_URL")
    env.pop("AMQ_BROKER", None)
    env.pop("AMQ_CONFIG", None)
    amq.url = ""  # run_in_pty takes amq.env(): the default store, not the test's
    amq.env_extra = {k: v for k, v in env.items() if k.startswith("XDG_")}
    code, screen = run_in_pty(amq, "send", "q", "hi")
    assert code == 0, screen
    assert (tmp_path / "data" / "amq" / "local.db").exists()
    assert "created" not in screen


# --- receive -e without -k -------------------------------------------------------------------

def _subscribe_and_send(amq, exchange, key, *send_args):
    receiver, _queue = amq.subscribe(exchange, "--count", "1", "--timeout", "30")
    try:
        amq("send", "-e", exchange, key, "hello", *send_args)
        out, err = receiver.communicate(timeout=40)
    finally:
        kill_and_reap(receiver)
    return receiver.returncode, out.decode(), err.decode()


def test_receive_from_a_topic_exchange_without_k_binds_hash(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "topic")
    code, out, err = _subscribe_and_send(amq, x, "kern.disk.full")
    assert code == 0 and out == "hello\n", err
    assert f"no -k given: bound with '#', every message of topic exchange '{x}'" in err
    assert len(err.strip().splitlines()) == 1


def test_receive_from_a_direct_exchange_without_k_says_what_the_empty_key_gets(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "direct")
    code, out, err = _subscribe_and_send(amq, x, "")
    assert code == 0 and out == "hello\n", err
    assert "bound with the empty key, which receives only messages sent to" in err


@pytest.mark.parametrize("kind", ["fanout", "headers"])
def test_receive_from_fanout_or_headers_without_k_gets_everything_quietly(amq, name, kind):
    x = name("x")
    amq("declare", "exchange", x, "--type", kind)
    code, out, err = _subscribe_and_send(amq, x, "any.key", "-H", "a=b")
    assert code == 0 and out == "hello\n", err
    assert err == ""


def test_receive_with_k_says_nothing_more(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "topic")
    receiver, _queue = amq.subscribe(x, "-k", "a.*", "--count", "1", "--timeout", "30")
    try:
        amq("send", "-e", x, "a.b", "hello")
        out, err = receiver.communicate(timeout=40)
    finally:
        kill_and_reap(receiver)
    assert out == b"hello\n" and err == b""


# --- help ---------------------------------------------------------------------------------

COMMANDS = [["send"], ["receive"], ["declare", "queue"], ["declare", "exchange"], ["bind"],
            ["unbind"], ["delete", "queue"], ["delete", "exchange"], ["purge"],
            ["list", "queues"], ["list", "exchanges"], ["list", "bindings"], ["route"],
            ["rpc", "call"], ["rpc", "serve"], ["completion"], ["shell"], ["broker", "serve"],
            ["declare"], ["list"], ["rpc"], ["broker"], []]


@pytest.mark.local_only
@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "amq")
def test_help_reads_like_the_readme(amq, words):
    r = amq(*words, "--help")
    usage = r.lines[0]
    assert usage.startswith(f"Usage: amq {' '.join(words)}".rstrip())
    assert "{" not in usage and "}" not in usage, usage


@pytest.mark.local_only
def test_usage_lines_name_the_arguments_as_the_readme_does(amq):
    assert amq("bind", "--help").lines[0] == "Usage: amq bind [OPTIONS] EXCHANGE QUEUE"
    assert amq("declare", "queue", "--help").lines[0] == \
        "Usage: amq declare queue [OPTIONS] NAME"
    r = amq("bind", "onlyone", expect=2)
    assert "Usage: amq bind [OPTIONS] EXCHANGE QUEUE" in r.stderr
    assert "Missing argument 'QUEUE'" in r.stderr
    assert "-F, --format" in amq("send", "--help").out
