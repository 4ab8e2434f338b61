"""Bad bytes are input, not crashes; typed headers are the same on both brokers.

Words of the command line that are not UTF-8 reach Python as strings with lone
surrogates: a body is sent as the very bytes the shell passed, a name is a usage error
that names the argument, and header/property values keep their bytes. Strings that are not
UTF-8 in a stored message (sent by amq, or by another client in a raw frame) come out of
every output format, as ``{"$bytes": ...}`` in JSON, and a JSON copy is exact. Every
field type RabbitMQ takes in a header table reads back as the same JSON on both brokers.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from conftest import RABBITMQ_URL
from server.servers import start_server
from test_cli_terminal import ANSI, run_in_pty

FF = b"\xff"
BAD = b"q\xff"  # a name that is not UTF-8


def b64(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode()}


def one_json(amq, queue: str) -> dict[str, Any]:
    return amq("receive", queue, "--count", "1", "--timeout", "10",
               "--format", "json").json_lines()[0]


# --- bodies and names from the command line ---------------------------------------------

def test_a_body_argument_is_sent_as_the_bytes_the_shell_passed(amq, name):
    q = name()
    body = b"x\xc3\x28y\xff"  # not UTF-8: an invalid sequence and a lone 0xff
    amq("send", q, body)
    assert amq("receive", q, "--count", "1", "--format", "body").stdout == body
    amq("send", q, b"a\xfe\nb\n", "--lines")
    assert amq("receive", q, "--count", "2", "--format", "nul").stdout == b"a\xfe\0b\0"


NAME_ARGUMENTS = [
    (["send", BAD, "hi"], "ROUTING_KEY"),
    (["send", "q", "hi", "-e", BAD], "--exchange"),
    (["receive", BAD, "--count", "1"], "QUEUE"),
    (["receive", "-e", "amq.topic", "-k", BAD], "--key"),
    (["declare", "queue", BAD], "NAME"),
    (["declare", "queue", "q", "--dead-letter-exchange", BAD], "--dead-letter-exchange"),
    (["declare", "exchange", BAD, "--type", "direct"], "NAME"),
    (["bind", BAD, "q"], "EXCHANGE"),
    (["bind", "amq.direct", BAD], "QUEUE"),
    (["bind", "amq.direct", "q", "-k", BAD], "--routing-key"),
    (["unbind", "amq.direct", BAD], "QUEUE"),
    (["delete", "queue", BAD], "NAME"),
    (["delete", "exchange", BAD], "NAME"),
    (["purge", BAD], "QUEUE"),
    (["route", BAD, "k"], "EXCHANGE"),
    (["route", "amq.direct", BAD], "ROUTING_KEY"),
    (["rpc", "call", BAD, "x"], "QUEUE"),
    (["send", "q", "x", "-H", BAD + b"=1"], "--header name"),
    (["declare", "queue", "q", "--arg", BAD + b"=1"], "--arg name"),
]


def test_names_that_are_not_utf8_are_usage_errors_naming_the_argument(amq, name):
    for args, label in NAME_ARGUMENTS:
        r = amq(*args, expect=2)
        assert r.stderr.startswith(f"amq: error: {label} 'q\\xff' is not valid UTF-8"), \
            (args, r.stderr)
        assert "internal error" not in r.stderr
    assert not [n for n in amq.queue_names() if n.startswith("q\\") or n == "q"]


# --- header and property values that are not UTF-8 --------------------------------------

def test_header_and_property_values_that_are_not_utf8_keep_their_bytes(amq, name):
    q, copy = name(), name("copy")
    amq("send", q, "hi", "-H", b"k=" + FF, "-H", "t=é", "-p", b"correlation_id=c\xfe",
        "-p", b"reply_to=r\xfd")
    first = one_json(amq, q)
    assert first["headers"] == {"k": b64(FF), "t": "é"}
    assert first["properties"] == {"correlation_id": b64(b"c\xfe"), "reply_to": b64(b"r\xfd")}
    amq("send", copy, "--format", "json", input=json.dumps(first) + "\n")
    again = one_json(amq, copy)
    assert {**again, "routing_key": q, "queue": q, "received_at": first["received_at"]} == first


def test_a_message_with_bytes_fails_no_output_format(amq, name, tmp_path):
    q = name()
    for _ in range(6):
        amq("send", q, b"body\xff", "-H", b"k=" + FF, "-p", b"correlation_id=c\xfe")
    assert amq("receive", q, "--count", "1").stdout == b"body\xff\n"
    assert amq("receive", q, "--count", "1", "--format", "body").stdout == b"body\xff"
    assert amq("receive", q, "--count", "1", "--null").stdout == b"body\xff\0"
    out = tmp_path / "env"
    amq("receive", q, "--count", "1", "--exec",
        f'printf "%s|%s" "$AMQ_CORRELATION_ID" "$AMQ_HEADERS" > {out}')
    assert out.read_bytes() == b'c\xfe|{"k": {"$bytes": "/w=="}}'
    code, screen = run_in_pty(amq, "receive", q, "--count", "1")
    screen = ANSI.sub("", screen)
    assert code == 0, screen
    assert "correlation_id=c\\xfe" in screen and '"$bytes": "/w=="' in screen
    r = amq("shell", input=f"receive {q} --count 1 --format json\n")
    assert json.loads(r.stdout)["properties"] == {"correlation_id": b64(b"c\xfe")}
    assert amq.queue(q)["messages"] == 0


# --- from another client, in raw frames --------------------------------------------------

def _short(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, 1, len(payload)) + payload + b"\xce"


def raw_publish(host: str, port: int, vhost: str, exchange: bytes, routing_key: bytes,
                body: bytes, flags: int, properties: bytes) -> None:
    """Publish one message as a client that sends whatever bytes it likes would."""
    from pamqp import commands
    from server.rawclient import RawClient
    client = RawClient(host, port)
    try:
        client.handshake(vhost=vhost)
        client.open_channel(1)
        method = struct.pack(">HHH", 60, 40, 0) + _short(exchange) + _short(routing_key) + b"\0"
        header = struct.pack(">HHQH", 60, 0, len(body), flags) + properties
        client.send_raw(_frame(1, method) + _frame(2, header) + (_frame(3, body) if body else b""))
        client.send(commands.Basic.Qos(prefetch_count=0), 1)  # a round trip after it
        client.expect(commands.Basic.QosOk, 1)
        client.send(commands.Connection.Close(200, "done", 0, 0))
        client.expect(commands.Connection.CloseOk)
    finally:
        client.close()


def table(*fields: tuple[bytes, bytes]) -> bytes:
    data = b"".join(_short(key) + value for key, value in fields)
    return struct.pack(">I", len(data)) + data


def long_string(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


HEADERS_FLAG, CORRELATION_FLAG, REPLY_TO_FLAG = 0x2000, 0x0400, 0x0200


class Client:
    """Where a raw client reaches the broker of the ``amq`` fixture: RabbitMQ, or
    ``amq broker serve`` on the fixture's local store."""

    def __init__(self, amq, tmp_path) -> None:
        self.server = None
        self.vhost = amq.vhost
        if amq.broker == "rabbitmq":
            self.host, self.port = "127.0.0.1", int(RABBITMQ_URL.split(":")[-1].split("/")[0])
        else:
            self.server = start_server(amq.url.removeprefix("local:"), tmp_path / "serve.log")
            self.host, self.port = self.server.host, self.server.port

    def publish(self, *args: Any) -> None:
        raw_publish(self.host, self.port, self.vhost, *args)

    def stop(self) -> None:
        if self.server is not None:
            assert self.server.stop() == 0, self.server.log()


@pytest.fixture
def client(amq, tmp_path):
    c = Client(amq, tmp_path)
    yield c
    c.stop()


def test_header_strings_another_client_sent_as_bytes_come_out_losslessly(amq, name, client):
    q, copy = name(), name("copy")
    amq("declare", "queue", q)
    headers = table((b"s", long_string(b"S", b"\xff\xfeS")), (b"x", long_string(b"x", b"\0\xff")),
                    (b"ok", long_string(b"S", "é".encode())))
    client.publish(b"", q.encode(), b"body", HEADERS_FLAG, headers)
    first = one_json(amq, q)
    assert first["headers"] == {"s": b64(b"\xff\xfeS"), "x": b64(b"\0\xff"), "ok": "é"}
    amq("send", copy, "--format", "json", input=json.dumps(first) + "\n")
    assert one_json(amq, copy)["headers"] == first["headers"]


# RabbitMQ only: `amq broker serve` refuses short strings that are not UTF-8 (pamqp decodes
# them strictly), so the local store never holds one.
@pytest.mark.rabbitmq_only
def test_names_and_properties_another_client_sent_as_bytes_come_out_losslessly(amq, name,
                                                                                request, tmp_path):
    client = request.getfixturevalue("client")
    q = name()
    amq("declare", "queue", q)
    amq("bind", "amq.topic", q, "-k", "bytes.#")
    props = table() + _short(b"c\xfe") + _short(b"r\xfd")
    for _ in range(3):
        client.publish(b"amq.topic", b"bytes.\xff", b"b\xff", HEADERS_FLAG | CORRELATION_FLAG
                       | REPLY_TO_FLAG, props)
    first = one_json(amq, q)
    assert first["routing_key"] == b64(b"bytes.\xff")
    assert first["properties"] == {"correlation_id": b64(b"c\xfe"), "reply_to": b64(b"r\xfd")}
    code, screen = run_in_pty(amq, "receive", q, "--count", "1")
    screen = ANSI.sub("", screen)
    assert code == 0 and "routing key bytes.\\xff" in screen, screen
    out = tmp_path / "env"
    amq("receive", q, "--count", "1", "--exec", f'printf "%s" "$AMQ_ROUTING_KEY" > {out}')
    assert out.read_bytes() == b"bytes.\xff"
    amq("send", "--format", "json", input=json.dumps(first) + "\n")  # to amq.topic again
    again = one_json(amq, q)
    assert {**again, "redelivered": False, "received_at": ""} == \
        {**first, "redelivered": False, "received_at": ""}


def test_a_routing_key_that_is_not_utf8_cannot_be_copied_into_the_local_broker(amq, name):
    q = name()
    amq("declare", "queue", q)
    line = json.dumps({"body": "x", "exchange": "amq.topic", "routing_key": b64(b"k\xff")})
    if amq.broker == "rabbitmq":
        amq("send", "--format", "json", input=line + "\n", expect=7)  # no binding: 312
        return
    r = amq("send", "--format", "json", input=line + "\n", expect=2)
    assert "routing key 'k\\xff' is not valid UTF-8" in r.stderr


# --- typed headers ----------------------------------------------------------------------

TYPED = [
    ("bool", "true", True),
    ("int", "5", 5),
    ("negative", "-7", -7),
    ("int64-max", str(2**63 - 1), 2**63 - 1),
    ("int64-min", str(-(2**63)), -(2**63)),
    ("float", "1.5", 1.5),
    ("whole-float", "2.0", 2.0),
    ("tiny", "5e-324", 5e-324),
    ("decimal", '{"$decimal": "1.50"}', {"$decimal": "1.50"}),
    ("decimal-exp", '{"$decimal": "1E+2"}', {"$decimal": "100"}),
    ("decimal-neg", '{"$decimal": "-0.001"}', {"$decimal": "-0.001"}),
    ("timestamp", '{"$timestamp": 1700000000}', {"$timestamp": 1700000000}),
    ("bytes", '{"$bytes": "AP8="}', {"$bytes": "AP8="}),
    ("string", '"ünï"', "ünï"),
    ("array", '[1, 2.5, "a", null, [true]]', [1, 2.5, "a", None, [True]]),
    ("table", '{"a": {"b": 0.25}, "c": []}', {"a": {"b": 0.25}, "c": []}),
    ("dollar-table", '{"$table": {"$x": 1}}', {"$table": {"$x": 1}}),
    ("void", "null", None),
]


def test_every_field_type_round_trips_with_the_same_json_on_both_brokers(amq, name):
    q, copy = name(), name("copy")
    args = [a for key, text, _ in TYPED for a in ("-H", f"{key}:={text}")]
    amq("send", q, "typed", *args)
    first = one_json(amq, q)
    assert first["headers"] == {key: want for key, _, want in TYPED}
    assert type(first["headers"]["whole-float"]) is float
    amq("send", copy, "--format", "json", input=json.dumps(first) + "\n")
    assert one_json(amq, copy)["headers"] == first["headers"]


def test_every_wire_type_another_client_sends_reads_as_the_same_json(amq, name, client):
    q = name()
    amq("declare", "queue", q)
    fields = [
        (b"b", b"b" + struct.pack(">b", -128)), (b"B", b"B" + struct.pack(">B", 255)),
        (b"s", b"s" + struct.pack(">h", -32768)), (b"u", b"u" + struct.pack(">H", 65535)),
        (b"I", b"I" + struct.pack(">i", -(2**31))), (b"i", b"i" + struct.pack(">I", 2**32 - 1)),
        (b"l", b"l" + struct.pack(">q", -(2**63))), (b"f", b"f" + struct.pack(">f", 0.5)),
        (b"d", b"d" + struct.pack(">d", -1.25)), (b"D", b"D\x02" + struct.pack(">i", -150)),
        (b"T", b"T" + struct.pack(">Q", 1700000000)), (b"t", b"t\x01"), (b"V", b"V"),
        (b"S", long_string(b"S", b"text")), (b"x", long_string(b"x", b"\x00")),
        (b"A", long_string(b"A", b"t\x00" + b"f" + struct.pack(">f", 2.0))),
        (b"F", b"F" + table((b"in", b"d" + struct.pack(">d", 0.1)))),
    ]
    client.publish(b"", q.encode(), b"", HEADERS_FLAG, table(*fields))
    assert one_json(amq, q)["headers"] == {
        "b": -128, "B": 255, "s": -32768, "u": 65535, "I": -(2**31), "i": 2**32 - 1,
        "l": -(2**63), "f": 0.5, "d": -1.25, "D": {"$decimal": "-1.50"},
        "T": {"$timestamp": 1700000000}, "t": True, "V": None, "S": "text",
        "x": {"$bytes": "AA=="}, "A": [False, 2.0], "F": {"in": 0.1}}


@pytest.mark.parametrize("header, message", [
    ("n:=18446744073709551616", "--header 'n': integer 18446744073709551616 does not fit"),
    ('d:={"$decimal": "1E+40"}', "--header 'd': decimal 1E+40 does not fit AMQP's decimal"),
    ('d:={"$decimal": "NaN"}', "--header 'd': decimal NaN is not a finite number"),
    ('t:={"$timestamp": -1}', "--header 't': timestamp -1 is out of range"),
    ('a:=[1, {"b": 99999999999999999999}]', "--header 'a'[1].b: integer"),
])
def test_values_a_header_table_cannot_carry_are_the_same_clear_error(amq, name, header,
                                                                       message):
    q = name()
    r = amq("send", q, "x", "-H", header, expect=2)
    assert r.stderr.startswith(f"amq: error: {message}"), r.stderr
    line = json.dumps({"body": "x", "headers": {"v": {"$decimal": "1E+40"}}})
    r = amq("send", q, "--format", "json", input=line + "\n", expect=2)
    assert "header 'v': decimal 1E+40 does not fit" in r.stderr


def test_typed_arguments_reach_rabbitmq_too(amq, name):
    q = name()
    amq("declare", "queue", q, "--arg", "x-custom:=1.5", "--arg",
        'x-when:={"$decimal": "2.50"}')
    r = amq("declare", "queue", q, "--arg", "x-big:=18446744073709551616", expect=2)
    assert "--arg 'x-big': integer 18446744073709551616 does not fit in 64 bits" in r.stderr


def test_a_string_property_past_255_bytes_is_the_same_clear_error(amq, name):
    q, long = name(), "x" * 300
    r = amq("send", q, "x", "-p", f"correlation_id={long}", expect=2)
    assert r.stderr.startswith("amq: error: property correlation_id is 300 bytes long; "
                               "AMQP allows 255"), r.stderr
    line = json.dumps({"body": "x", "properties": {"message_id": long}})
    r = amq("send", q, "--format", "json", input=line + "\n", expect=2)
    assert "property message_id is 300 bytes long; AMQP allows 255" in r.stderr


def test_a_routing_key_past_255_bytes_is_the_same_clear_error(amq, name):
    long = "k" * 300
    r = amq("send", "-e", "amq.topic", long, "x", expect=2)
    assert r.stderr.startswith("amq: error: ROUTING_KEY is 300 bytes long; AMQP allows"), \
        r.stderr
    r = amq("bind", "amq.topic", name(), "-k", long, expect=2)
    assert r.stderr.startswith("amq: error: --routing-key is 300 bytes long"), r.stderr
    line = json.dumps({"body": "x", "exchange": "amq.topic", "routing_key": long})
    r = amq("send", "--format", "json", input=line + "\n", expect=2)
    assert "routing_key is longer than 255 bytes" in r.stderr
