"""The pika shim: every field type RabbitMQ takes in a table, through pika's own
``BasicProperties`` encode/decode, and the pika internals the shim relies on."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import pika
import pika.data
import pika.spec
import pytest

from amqcli.amqp.model import Properties
from amqcli.backends import pika_shim
from amqcli.errors import UsageError


@pytest.fixture(autouse=True)
def shim():
    """The shim in pika for each test, and pika's own codec back after it: other tests in
    this process use pika as the reference client of ``amq broker serve``."""
    pika_shim.install()
    yield
    pika_shim.uninstall()

UTC = dt.UTC

EVERY_TYPE = {
    "bool": True,
    "false": False,
    "int": 5,
    "negative": -7,
    "int32-max": 2**31 - 1,
    "int64-min": -(2**63),
    "int64-max": 2**63 - 1,
    "float": 1.5,
    "float-whole": 2.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "decimal": Decimal("1.50"),
    "decimal-negative": Decimal("-0.001"),
    "decimal-int": Decimal(100),
    "decimal-max": Decimal("21474.83647"),
    "timestamp": dt.datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC),
    "epoch": dt.datetime(1970, 1, 1, tzinfo=UTC),
    "bytes": b"\x00\xff",
    "empty-bytes": b"",
    "string": "ünïcødé",
    "empty": "",
    "array": [1, 1.25, "s", None, [Decimal("0.5"), {"in": 2.5}]],
    "table": {"a": {"b": {"c": 0.1}}},
    "void": None,
}


def round_trip(headers: dict) -> dict:
    encoded = b"".join(pika.BasicProperties(headers=headers).encode())
    decoded = pika.BasicProperties()
    decoded.decode(encoded)
    return decoded.headers


def test_every_field_type_round_trips_through_pika() -> None:
    back = round_trip(EVERY_TYPE)
    assert back == EVERY_TYPE
    for key, value in EVERY_TYPE.items():
        assert type(back[key]) is type(value) or isinstance(back[key], type(value)), key
    assert str(back["decimal"]) == "1.50"  # pika alone sends 1.5
    assert str(back["decimal-int"]) == "100"


def test_decimals_keep_their_places_on_the_wire() -> None:
    pieces: list[bytes] = []
    pika_shim.encode_value(pieces, Decimal("1.50"))
    assert b"".join(pieces) == b"D\x02" + struct.pack(">i", 150)


def test_floats_are_doubles_and_float32_decodes_as_float() -> None:
    pieces: list[bytes] = []
    pika_shim.encode_value(pieces, 1.5)
    assert b"".join(pieces) == b"d" + struct.pack(">d", 1.5)
    assert pika.data.decode_value(b"f" + struct.pack(">f", 0.5), 0) == (0.5, 5)
    assert pika.data.decode_value(b"d" + struct.pack(">d", -2.25), 0) == (-2.25, 9)


def test_strings_with_lone_surrogates_go_out_as_the_bytes_they_stand_for() -> None:
    pieces: list[bytes] = []
    pika_shim.encode_value(pieces, "k\udcff")
    assert b"".join(pieces) == b"S\x00\x00\x00\x02k\xff"
    assert round_trip({"k": "k\udcff"}) == {"k": b"k\xff"}  # pika: not UTF-8 stays bytes


@pytest.mark.parametrize("headers, path, problem", [
    ({"n": 2**64}, "n", "does not fit in 64 bits"),
    ({"n": -(2**63) - 1}, "n", "does not fit in 64 bits"),
    ({"a": {"b": [1, 2**70]}}, "a.b[1]", "does not fit in 64 bits"),
    ({"d": Decimal("1E+20")}, "d", "does not fit AMQP's decimal"),
    ({"d": Decimal("NaN")}, "d", "not a finite number"),
    ({"d": Decimal("1E-300")}, "d", "does not fit AMQP's decimal"),
    ({"t": dt.datetime(1960, 1, 1, tzinfo=UTC)}, "t", "timestamp -315619200 is out of range"),
    ({"o": object()}, "o", "AMQP has no field type"),
    ({"k" * 256: 1}, "k" * 60 + "...", "longer than 255 bytes"),
])
def test_values_that_cannot_be_encoded_say_which_and_why(headers, path, problem) -> None:
    with pytest.raises(pika_shim.FieldError) as caught:
        round_trip(headers)
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_the_backend_reports_an_unencodable_header_as_a_usage_error() -> None:
    from amqcli.backends.rabbitmq import encode_properties
    with pytest.raises(UsageError) as caught:
        encode_properties(Properties(headers={"x": {"y": 2**64}}))
    assert str(caught.value) == \
        "cannot send header 'x.y': integer 18446744073709551616 does not fit in 64 bits"


def test_install_is_idempotent_and_uninstall_gives_pika_its_codec_back() -> None:
    pika_shim.install()
    assert pika.data.encode_value is pika_shim.encode_value
    assert pika.data.encode_table is pika_shim.encode_table
    assert pika.data.decode_value is pika_shim.decode_value
    pika_shim.uninstall()
    assert pika.data.decode_value is pika_shim._pika_decode_value
    with pytest.raises(pika.exceptions.UnsupportedAMQPFieldException):
        round_trip({"f": 1.5})  # pika alone
    pika_shim.install()
    assert round_trip({"f": 1.5}) == {"f": 1.5}


def test_the_pika_internals_the_shim_relies_on_are_still_there() -> None:
    """If this fails after a pika upgrade, read pika_shim's docstring: pika's table codec
    moved, and floats or decimals will not survive RabbitMQ until the shim follows it."""
    for name in ("encode_table", "decode_table", "encode_value", "decode_value",
                 "encode_short_string", "decode_short_string"):
        assert callable(getattr(pika.data, name, None)), f"pika.data.{name} is gone"
    # pika.spec reaches the table codec through the pika.data module, at call time
    assert pika.spec.data is pika.data
    # pika's decode_table finds decode_value as a global of pika.data (so arrays and
    # tables nested in a header are decoded by the shim too)
    assert "decode_value" in pika.data.decode_table.__code__.co_names
    assert pika.data.decode_table.__globals__ is vars(pika.data)
    nested = b"A" + struct.pack(">I", 9) + b"d" + struct.pack(">d", 0.25)
    assert pika.data.decode_value(nested, 0)[0] == [0.25]


def test_a_long_property_is_a_usage_error_not_pikas_text() -> None:
    from amqcli.backends.rabbitmq import encode_properties
    with pytest.raises(UsageError, match="a property is longer than 255 bytes"):
        encode_properties(Properties(app_id="x" * 300))



# What pika_shim's adapter functions reach into: (on what, attribute, where it is checked:
# on pika's class, or on a live connection since pika sets it in __init__).
ADAPTER_PRIVATES = [
    ("BlockingConnection", "_flush_output", "class"),
    ("BlockingConnection", "_impl", "live"),
    ("BlockingConnection._impl", "_output_marshaled_frames", "class"),
    ("BlockingConnection._impl", "_body_max_length", "live"),
    ("BlockingConnection._impl", "server_properties", "live"),
    ("BlockingChannel", "_impl", "live"),
    ("BlockingChannel", "_closing_reason", "live"),
    ("BlockingChannel._impl", "confirm_delivery", "class"),
    ("BlockingConnection", "_request_channel_dispatch", "class"),
    ("BlockingConnection._impl", "_on_data_available", "class"),
    ("BlockingConnection._impl", "_process_frame", "class"),
    ("BlockingConnection._impl", "_frame_buffer", "live"),
    ("BlockingConnection._impl", "bytes_received", "live"),
    ("BlockingConnection._impl", "frames_received", "live"),
]


def lacking(objects: dict[str, object], where: str) -> str:
    """One line per private the shim needs that ``objects`` (by owner name) lack."""
    return "\n".join(
        f"pika {pika.__version__} lacks {owner}.{attribute}, which amqcli/backends/"
        f"pika_shim.py uses: read its docstring and follow the change"
        for owner, attribute, kind in ADAPTER_PRIVATES
        if kind == where and not hasattr(objects[owner], attribute))


def test_the_adapter_methods_the_shim_calls_are_on_pikas_classes() -> None:
    import pika.channel
    import pika.connection
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
    classes = {"BlockingConnection": BlockingConnection, "BlockingChannel": BlockingChannel,
               "BlockingConnection._impl": pika.connection.Connection,
               "BlockingChannel._impl": pika.channel.Channel}
    assert not lacking(classes, "class"), lacking(classes, "class")


def test_the_adapter_state_the_shim_reads_is_on_a_live_connection() -> None:
    """On the test RabbitMQ: pika sets these in ``__init__``, so only a connection has them.
    The shim's functions then do what ``backends/rabbitmq.py`` relies on."""
    from conftest import RABBITMQ_URL, REQUIRE_RABBITMQ, rabbitmq_problem
    problem = rabbitmq_problem()
    if problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(problem)
        pytest.skip(problem)
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        live = {"BlockingConnection": connection, "BlockingChannel": channel,
                "BlockingConnection._impl": getattr(connection, "_impl", None),
                "BlockingChannel._impl": getattr(channel, "_impl", None)}
        assert not lacking(live, "live"), lacking(live, "live")
        assert pika_shim.body_frame_size(connection) == connection._impl.params.frame_max - 8
        assert pika_shim.closing_reason(channel) is None
        assert pika_shim.server_properties(connection)["product"] in ("RabbitMQ", b"RabbitMQ")
        acks: list[object] = []
        selected: list[object] = []
        pika_shim.select_confirms(channel, acks.append, selected.append)
        pika_shim.wait_until(connection, lambda: bool(selected))
        channel.basic_publish("", "amq.no-such-queue.shim-test", b"x")
        pika_shim.wait_until(connection, lambda: bool(acks))
        assert isinstance(acks[0].method, pika.spec.Basic.Ack)
        channel.close()
        assert isinstance(pika_shim.closing_reason(channel), pika.exceptions.ChannelClosed)
    finally:
        connection.close()


# --- Deliveries: basic.deliver read in place ----------------------------------------------

class _FakeImpl:
    """The parts of ``pika.connection.Connection`` that ``Deliveries`` uses."""

    def __init__(self) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames_received = 0
        self.processed: list[object] = []

    def _process_frame(self, value: object) -> None:
        self.processed.append(value)


class _FakeBlocking:
    def __init__(self) -> None:
        self._impl = _FakeImpl()
        self.dispatch: list[int] = []

    def _request_channel_dispatch(self, number: int) -> None:
        self.dispatch.append(number)


class _FakeChannel:
    def __init__(self, connection: _FakeBlocking, number: int) -> None:
        self.connection, self.channel_number = connection, number


def _message_frames(channel: int, tag: int, body: bytes, frame_max: int,
                    props: pika.spec.BasicProperties, redelivered: bool = False) -> bytes:
    import pika.frame
    out = [pika.frame.Method(channel, pika.spec.Basic.Deliver(
        "ctag", tag, redelivered, "ex", "key.\u00e9")).marshal(),
        pika.frame.Header(channel, len(body), props).marshal()]
    out += [pika.frame.Body(channel, body[i:i + frame_max]).marshal()
            for i in range(0, len(body), frame_max)]
    return b"".join(out)


def test_deliveries_are_read_in_place_whatever_the_reads_cut() -> None:
    """Whole messages come out in order with their bodies, properties and flags, however
    the socket's reads cut the frames (byte by byte included), bodies over several frames
    and empty ones too; other channels' frames and heartbeats go to pika, in order; pika's
    counters see every byte."""
    import random

    import pika.frame
    props = pika.spec.BasicProperties(content_type="text/plain", headers={"n": 1.5})
    bodies = [b"one", b"", b"x" * 10_000, bytes(range(256)) * 3, b"last"]
    stream = []
    for i, body in enumerate(bodies, 1):
        stream.append(_message_frames(3, i, body, 4000, props, redelivered=i == 2))
        if i == 2:
            stream.append(pika.frame.Heartbeat().marshal())
            stream.append(pika.frame.Method(5, pika.spec.Basic.QosOk()).marshal())
    data = b"".join(stream)
    for cut in ("whole", "bytes", "random"):
        blocking = _FakeBlocking()
        got: list[tuple[object, ...]] = []
        reader = pika_shim.Deliveries(_FakeChannel(blocking, 3),  # type: ignore[arg-type]
                                      lambda *m, got=got: got.append(m))
        reader.install()
        impl = blocking._impl
        if cut == "whole":
            pieces = [data]
        elif cut == "bytes":
            pieces = [data[i:i + 1] for i in range(len(data))]
        else:
            rng, pieces, i = random.Random(7), [], 0
            while i < len(data):
                n = rng.randint(1, 9000)
                pieces.append(data[i:i + n])
                i += n
        for piece in pieces:
            impl._on_data_available(piece)
        assert [(m[0], m[1], m[2], m[3], m[5]) for m in got] == [
            (i, i == 2, "ex", "key.\u00e9", body) for i, body in enumerate(bodies, 1)], cut
        decoded = pika.spec.BasicProperties()
        decoded.decode(got[0][4])
        assert (decoded.content_type, decoded.headers) == ("text/plain", {"n": 1.5})
        assert [type(f).__name__ for f in impl.processed] == ["Heartbeat", "Method"], cut
        assert impl.bytes_received == len(data) and impl._frame_buffer == b""
        assert set(blocking.dispatch) == {-3}
        reader.remove()
        impl._on_data_available(_message_frames(3, 9, b"to pika", 4000, props))
        assert len(got) == len(bodies) and len(impl.processed) == 5  # method, header, body


def test_a_bad_frame_end_is_pikas_error() -> None:
    import pika.exceptions
    blocking = _FakeBlocking()
    pika_shim.Deliveries(_FakeChannel(blocking, 1), lambda *m: None).install()  # type: ignore[arg-type]
    frames = bytearray(_message_frames(1, 1, b"body", 4000, pika.spec.BasicProperties()))
    frames[-1] = 0
    with pytest.raises(pika.exceptions.InvalidFrameError):
        blocking._impl._on_data_available(bytes(frames))
