"""Bodies are bytes: byte-for-byte files and stdin, lines, NUL records, JSON round trips."""

import base64
import json
import os
import subprocess


def test_binary_file_round_trip_byte_for_byte(amq, name, tmp_path):
    q = name()
    data = os.urandom(1 << 20)
    src = tmp_path / "random.bin"
    src.write_bytes(data)
    amq("send", q, "--file", str(src))
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        subprocess.run(amq_cmd() + ["receive", q, "--count", "1", "--format", "body"],
                       stdout=f, env=amq.env(), check=True, timeout=60)
    assert subprocess.run(["cmp", str(src), str(out)]).returncode == 0


def test_binary_stdin_is_one_message_byte_for_byte(amq, name):
    q = name()
    data = bytes(range(256)) * 10 + b"\n\0\r\n"
    amq("send", q, input=data)
    assert amq("receive", q, "--count", "1", "--format", "body").stdout == data
    assert amq.queue(q)["messages"] == 0


def test_lines_in_order_100000(amq, name):
    q = name()
    lines = "".join(f"{i}\n" for i in range(1, 100_001))
    r = amq("send", q, "--lines", input=lines)
    assert r.stderr == ""
    assert amq.queue(q)["messages"] == 100_000
    out = amq("receive", q, "--count", "100000", timeout=120).stdout
    assert out.decode() == lines


def test_lines_keep_empty_lines_and_a_last_line_without_newline(amq, name):
    q = name()
    amq("send", q, "--lines", input=b"a\n\nc")
    assert amq("receive", q, "--count", "3", "--format", "json").json_lines()[1]["body"] == ""
    assert amq.queue(q)["messages"] == 0


def test_nul_delimited_records(amq, name):
    q = name()
    records = [b"with\nnewline", b"", b"\xff\xfebinary", b"last"]
    amq("send", q, "--null", input=b"\0".join(records) + b"\0")
    out = amq("receive", q, "--count", "4", "--null").stdout
    assert out.split(b"\0")[:-1] == records
    amq("send", q, "-0", input=b"x\0y")
    r = subprocess.run(f"{' '.join(amq_cmd())} receive {q} --count 2 -0 | xargs -0 echo",
                       shell=True, capture_output=True, env=amq.env(), timeout=30)
    assert r.stdout == b"x y\n"


def test_json_round_trip_is_lossless(amq, name):
    q1, q2 = name("a"), name("b")
    binary = b"\x00\xff\x10binary"
    amq("send", q1, "text body", "-H", "k=v", "-H", 'blob:={"$bytes": "AAEC"}',
        "-H", "n:=42", "-p", "message_id=m1", "-p", "timestamp=1700000000")
    amq("send", q1, input=binary)
    dump = amq("receive", q1, "--count", "2", "--format", "json").stdout
    first = [json.loads(line) for line in dump.splitlines()]
    assert first[1]["body_encoding"] == "base64"
    assert base64.b64decode(first[1]["body"]) == binary
    amq("send", q2, "--format", "json", input=dump)
    again = amq("receive", q2, "--count", "2", "--format", "json").json_lines()
    for a, b in zip(first, again, strict=True):
        assert {k: v for k, v in a.items() if k not in ("routing_key", "queue", "received_at")} == \
               {k: v for k, v in b.items() if k not in ("routing_key", "queue", "received_at")}
    assert again[0]["headers"] == {"k": "v", "blob": {"$bytes": "AAEC"}, "n": 42}
    assert amq("receive", q2, "--timeout", "0.2", expect=9).stdout == b""


def test_json_input_replays_to_the_original_routing_key(amq, name):
    q = name()
    amq("declare", "queue", q)
    line = json.dumps({"body": "replayed", "exchange": "", "routing_key": q})
    amq("send", "--format", "json", input=line + "\n")
    assert amq("receive", q, "--count", "1").lines == ["replayed"]


def test_bad_json_input_is_a_usage_error(amq, name):
    r = amq("send", name(), "--format", "json", input="{not json\n", expect=2)
    assert "JSON" in r.stderr
    amq("send", name(), "--format", "json", input='{"nobody": 1}\n', expect=2)


def test_raw_output_adds_a_newline_only_when_missing(amq, name):
    q = name()
    amq("send", q, "a\n")
    amq("send", q, "b")
    assert amq("receive", q, "--count", "2").stdout == b"a\nb\n"


def test_empty_body(amq, name):
    q = name()
    amq("send", q, "")
    [m] = amq("receive", q, "--count", "1", "--format", "json").json_lines()
    assert m["body"] == ""


def test_body_and_file_together_is_a_usage_error(amq, name, tmp_path):
    f = tmp_path / "x"
    f.write_text("x")
    amq("send", name(), "body", "--file", str(f), expect=2)
    r = amq("send", name(), "--file", str(tmp_path / "missing"), expect=2)
    assert "cannot read" in r.stderr
    amq("send", name(), "--file", str(tmp_path), expect=2)


def amq_cmd():
    from conftest import AMQ_CMD
    return AMQ_CMD
