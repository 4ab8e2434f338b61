"""Random and mutated frames: the server answers with an error or carries on, but never
crashes, never hangs, never loses stored messages, and keeps serving other clients.

The frame reader and the connection run in-process with a fake transport for speed (many
examples), then a real server gets the same kind of input over sockets.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body, frame, header
from pamqp import commands as C

from amqcli import errors
from amqcli.amqp.model import Message
from amqcli.broker.engine import Broker
from amqcli.server import frames
from amqcli.server.auth import Users
from amqcli.server.connection import AMQPConnection
from amqcli.server.listener import Server

from .servers import Served

HANDSHAKE = (frames.PROTOCOL_HEADER
             + frame.marshal(C.Connection.StartOk(
                 client_properties={"capabilities": {"authentication_failure_close": True}},
                 mechanism="PLAIN", response="\0guest\0guest"), 0)
             + frame.marshal(C.Connection.TuneOk(2047, 131072, 0), 0)
             + frame.marshal(C.Connection.Open("/"), 0)
             + frame.marshal(C.Channel.Open(), 1) + frame.marshal(C.Channel.Open(), 2))
MESSAGE = (frame.marshal(C.Basic.Publish(routing_key="fuzz"), 1)
           + frame.marshal(header.ContentHeader(0, 3, C.Basic.Properties(
               headers={"a": 1}, expiration="60000")), 1)
           + frame.marshal(body.ContentBody(b"abc"), 1))

VALID = [
    frame.marshal(method, channel) for channel in (1, 2) for method in (
        C.Channel.Open(), C.Channel.Close(200, "bye", 0, 0), C.Channel.CloseOk(),
        C.Channel.Flow(True),
        C.Queue.Declare(queue="fuzz"), C.Queue.Declare(queue="", exclusive=True),
        C.Queue.Bind(queue="fuzz", exchange="amq.topic", routing_key="#"),
        C.Queue.Purge(queue="fuzz"), C.Basic.Qos(prefetch_count=2),
        C.Basic.Consume(queue="fuzz"), C.Basic.Consume(queue="keep", consumer_tag="k"),
        C.Basic.Get(queue="keep"), C.Basic.Ack(1), C.Basic.Ack(0, True), C.Basic.Nack(1),
        C.Basic.Reject(2, False), C.Basic.Recover(True), C.Basic.Cancel("k"),
        C.Confirm.Select(), C.Tx.Select(), C.Tx.Commit(), C.Tx.Rollback(),
        C.Exchange.Declare(exchange="fx", exchange_type="fanout"),
        C.Basic.Publish(exchange="amq.topic", routing_key="a.b", mandatory=True),
        C.Basic.Publish(routing_key="fuzz"),
    )
] + [
    frame.marshal(header.ContentHeader(0, 3, C.Basic.Properties(headers={"a": 1})), 1),
    frame.marshal(body.ContentBody(b"abc"), 1),
    frame.marshal(C.Connection.Close(200, "bye", 0, 0), 0),
    frames.HEARTBEAT_FRAME,
    MESSAGE, MESSAGE, MESSAGE,
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "truncate", "size", "type", "insert"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif how == "size" and len(data) >= 7:
            data[3:7] = struct.pack(">I", draw(st.integers(0, 2**32 - 1)))
        elif how == "type" and data:
            data[0] = draw(st.integers(0, 255))
        elif how == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(max_size=8))
    return bytes(data)


valid = st.sampled_from(VALID)
chunks = st.lists(st.one_of(valid, valid, valid, valid, mutated(), st.binary(max_size=64)),
                  max_size=30)  # mostly valid frames, to reach the states past the handshake


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 5672)}.get(
            name, default)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def feed(parts: list[bytes], handshake: bool) -> None:
    broker = Broker(None)
    keeper = broker.connect()
    keeper.declare_queue("keep", exclusive=True)  # out of the fuzzed client's reach (405)
    keeper.publish("", [Message(b"%d" % i, routing_key="keep") for i in range(3)])
    server = Server(broker, Users())
    conn = AMQPConnection(server)
    transport = FakeTransport()
    conn.connection_made(transport)
    for part in ([HANDSHAKE] if handshake else []) + parts:
        if transport.closed:
            break
        conn.data_received(part)
        await asyncio.sleep(0)  # let the dispatcher run
    conn.connection_lost(None)
    await asyncio.sleep(0)
    ok = keeper.declare_queue("keep", passive=True)
    assert ok.message_count == 3, "stored messages were lost"
    keeper.close()
    broker.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(parts=chunks, handshake=st.booleans())
def test_connection_survives_any_input(parts: list[bytes], handshake: bool) -> None:
    handler = Errors()
    logger = logging.getLogger("amq.server")
    logger.addHandler(handler)
    try:
        asyncio.run(asyncio.wait_for(feed(parts, handshake), 10))
    finally:
        logger.removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300), frame_max=st.sampled_from([4096, 131072]))
def test_frame_reader_on_random_bytes(data: bytes, frame_max: int) -> None:
    found, used, error = frames.read_frames(bytearray(data), frame_max)
    assert 0 <= used <= len(data)
    assert error is None or isinstance(error, errors.FrameError)
    for f in found:
        try:
            if f.type == frames.FRAME_METHOD:
                frames.decode_method(f.payload)
            elif f.type == frames.FRAME_HEADER:
                frames.decode_header(f.payload)
        except (errors.BrokerError, frames.UnknownMethod):
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(parts=chunks)
def test_real_server_keeps_serving(served: Served, parts: list[bytes]) -> None:
    with socket.create_connection((served.host, served.port), timeout=5) as sock:
        try:
            sock.sendall(HANDSHAKE + b"".join(parts))
            sock.settimeout(0.2)
            while sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            pass
    conn = pika.BlockingConnection(served.params())
    ch = conn.channel()
    ch.queue_declare("alive")
    ch.basic_publish("", "alive", b"ping")
    _method, _p, got = ch.basic_get("alive", auto_ack=True)
    assert got == b"ping"
    conn.close()


@pytest.fixture(autouse=True)
def _quiet_server_log() -> None:
    logging.getLogger("amq.server").setLevel(logging.ERROR)


def _garbage(rng: random.Random) -> bytes:
    """A valid frame, mutated, or random bytes (what `mutated` does, for a plain loop)."""
    data = bytearray(rng.choice(VALID))
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(data) + 1)
        if rng.random() < 0.5 and data:
            data[min(i, len(data) - 1)] ^= 1 << rng.randrange(8)
        else:
            data[i:i] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def test_bystanders_and_stored_messages_unaffected(served: Served) -> None:
    bystander = pika.BlockingConnection(served.params())
    ch = bystander.channel()
    ch.queue_declare("bystander")
    for text in (b"held", b"ready"):
        ch.basic_publish("", "bystander", text)
    held, _p, got = ch.basic_get("bystander")  # unacked while the storm goes on
    assert got == b"held"
    rng = random.Random(1234)
    for _ in range(40):
        with socket.create_connection((served.host, served.port), timeout=5) as sock:
            try:
                sock.sendall(HANDSHAKE + b"".join(_garbage(rng) for _ in range(20)))
                sock.settimeout(0.1)
                while sock.recv(65536):
                    pass
            except OSError:
                pass
    assert ch.queue_declare("bystander", passive=True).method.message_count == 1
    ch.basic_ack(held.delivery_tag)
    _m, _p, got = ch.basic_get("bystander", auto_ack=True)
    assert got == b"ready"
    bystander.close()
